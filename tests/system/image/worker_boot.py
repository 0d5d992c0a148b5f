#!/usr/bin/env python
"""What the Beam SDK image's /opt/apache/beam/boot does for one worker, in Python, for the
image tests (mounted at /checks; the stand-in base has only a placeholder boot).

The real boot (Beam's Go program, sdks/python/container/boot.go) in worker-pool mode runs
`python -m apache_beam.runners.worker.worker_pool_main --service_port=50000
--container_executable=/opt/apache/beam/boot`; the pool then runs boot once per worker with
the runner's endpoints, and boot
  1. asks the provision service for the job's pipeline options and dependencies,
  2. fetches every staged artifact from the artifact service into a staging folder,
  3. pip-installs what among them is installable (requirements file, extra packages, an SDK
     tarball, wheels, a setup.py package),
  4. starts `python -m apache_beam.runners.worker.sdk_worker_main` with PIPELINE_OPTIONS,
     CONTROL_API_SERVICE_DESCRIPTOR, LOGGING_API_SERVICE_DESCRIPTOR and
     SEMI_PERSISTENT_DIRECTORY in its environment.

This does 1, 2 and 4, and instead of 3 it writes down (log line `boot: would pip-install
...`, and STAGED_LOG) what it would have installed: the test requires that there is nothing.
The worker's own log (sdk_worker_main's) also goes to stderr, each line with its process id,
which the test reads from the worker container's log; a worker that exits says so in one line
`boot: worker ID exited with status N: LAST LINE`.

    worker_boot.py --id=ID --provision_endpoint=HOST:PORT --artifact_endpoint=... \
        --control_endpoint=... --logging_endpoint=...
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# Where boot's staged artifacts would be pip-installed from (their names, as staged).
INSTALLABLE = (
    "requirements.txt",
    "extra_packages.txt",
    "dataflow_python_sdk.tar",
    "setup.py",
    "workflow.tar.gz",
)
INSTALLABLE_SUFFIXES = (".whl", ".tar.gz", ".zip", ".tar", ".egg")
# Where the test reads what each worker was handed (one JSON line per worker).
STAGED_LOG = Path(os.environ.get("BOOT_STANDIN_STAGED_LOG", "/worker-log/staged.jsonl"))

WORKER = r"""
import logging, sys
handler = logging.StreamHandler(sys.stderr)
handler.setFormatter(logging.Formatter(
    "%(asctime)s worker pid=%(process)d %(levelname)s %(name)s: %(message)s"))
logging.getLogger().addHandler(handler)
from apache_beam.runners.worker import sdk_worker_main
sdk_worker_main.main(sys.argv)
"""


def say(line: str) -> None:
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} boot pid={os.getpid()}: {line}\n")
    sys.stderr.flush()


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in (
        "id",
        "provision_endpoint",
        "artifact_endpoint",
        "control_endpoint",
        "logging_endpoint",
    ):
        parser.add_argument(f"--{name}", required=True)
    args, _ = parser.parse_known_args()

    import grpc
    from apache_beam.portability import common_urns
    from apache_beam.portability.api import (
        beam_artifact_api_pb2,
        beam_artifact_api_pb2_grpc,
        beam_provision_api_pb2,
        beam_provision_api_pb2_grpc,
        beam_runner_api_pb2,
    )
    from google.protobuf import json_format

    metadata = [("worker_id", args.id)]
    with grpc.insecure_channel(args.provision_endpoint) as channel:
        info = (
            beam_provision_api_pb2_grpc.ProvisionServiceStub(channel)
            .GetProvisionInfo(beam_provision_api_pb2.GetProvisionInfoRequest(), metadata=metadata)
            .info
        )
    options = json_format.MessageToJson(info.pipeline_options)

    # 2. The artifacts, fetched as boot fetches them.
    staging = Path("/tmp/staged") / args.id
    staging.mkdir(parents=True, exist_ok=True)
    staged = []
    dependencies = list(info.dependencies)
    if dependencies:
        with grpc.insecure_channel(args.artifact_endpoint) as channel:
            stub = beam_artifact_api_pb2_grpc.ArtifactRetrievalServiceStub(channel)
            resolved = stub.ResolveArtifacts(
                beam_artifact_api_pb2.ResolveArtifactsRequest(artifacts=dependencies),
                metadata=metadata,
            ).replacements
            for artifact in resolved:
                name = artifact.type_urn
                if artifact.role_urn == common_urns.artifact_roles.STAGING_TO.urn:
                    name = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(
                        artifact.role_payload
                    ).staged_name
                size = 0
                with open(staging / Path(name).name, "wb") as out:
                    for chunk in stub.GetArtifact(
                        beam_artifact_api_pb2.GetArtifactRequest(artifact=artifact),
                        metadata=metadata,
                    ):
                        out.write(chunk.data)
                        size += len(chunk.data)
                staged.append(
                    {
                        "name": name,
                        "bytes": size,
                        "type": artifact.type_urn,
                        "role": artifact.role_urn,
                    }
                )
                say(f"staged artifact {name} ({size} bytes)")
    installable = [
        a["name"]
        for a in staged
        if a["name"] in INSTALLABLE or a["name"].endswith(INSTALLABLE_SUFFIXES)
    ]
    if installable:
        say(f"would pip-install {installable}")  # 3. what boot would install
    say(
        f"worker {args.id}: {len(staged)} artifacts, nothing to install"
        if not installable
        else f"worker {args.id}: {len(staged)} artifacts"
    )
    if STAGED_LOG.parent.is_dir():
        with STAGED_LOG.open("a") as log:
            log.write(
                json.dumps({"worker": args.id, "artifacts": staged, "would_install": installable})
                + "\n"
            )

    # 4. The SDK harness, with the environment boot gives it.
    semi_persistent = Path("/tmp/semi_persistent") / args.id
    semi_persistent.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        WORKER_ID=args.id,
        PIPELINE_OPTIONS=options,
        SEMI_PERSISTENT_DIRECTORY=str(semi_persistent),
        LOGGING_API_SERVICE_DESCRIPTOR=f'url: "{args.logging_endpoint}"',
        CONTROL_API_SERVICE_DESCRIPTOR=f'url: "{args.control_endpoint}"',
        RUNNER_CAPABILITIES=" ".join(info.runner_capabilities),
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER], env=env, stderr=subprocess.PIPE, text=True, errors="replace"
    )
    last = ""
    for line in worker.stderr:
        sys.stderr.write(line)
        sys.stderr.flush()
        if line.strip():
            last = line.strip()
    status = worker.wait()
    say(f"worker {args.id} exited with status {status}: {last[-500:]}")
    return status


if __name__ == "__main__":
    sys.exit(main())
