"""Simulates what the Flex Template launcher does, offline.

The launcher runs the template file with the DataflowRunner. With --template_location Beam
writes the job request to Cloud Storage instead of submitting it; against a local Cloud
Storage emulator and with anonymous credentials that works here. The request and the
pipeline proto it points to are what Dataflow would have received.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.support.gcs_emulator import PROJECT, storage_client
from tests.support.processes import REPO, run_template, template_env

REGION = "northamerica-northeast2"
BUCKET = "lab-bucket"


def image_uri(name: str) -> str:
    return f"{REGION}-docker.pkg.dev/{PROJECT}/dataflow-templates/{name}:sim"


# Built-in substitutions of a Cloud Build run; cloudbuild.yaml's own defaults do the rest.
BUILD_SUBSTITUTIONS = {"PROJECT_ID": PROJECT, "BUILD_ID": "0f3c2a9e-1b2d-4c5e-8f90-a1b2c3d4e5f6"}


def _substituted(text: str, subs: dict) -> str:
    while match := re.search(r"\$\{(\w+)\}", text):
        text = text.replace(match.group(0), subs[match.group(1)])
    return text


def render_registered_spec(name: str, out_dir: Path, *, overrides: dict | None = None) -> dict:
    """The spec that cloudbuild.yaml's register step for `name` would write, rendered by the
    installed gcloud (--print-only, offline) with the substitutions' defaults (or overrides)."""
    from tools import register_template

    gcloud = shutil.which("gcloud")
    if gcloud is None:
        from tests.support.markers import missing

        missing("the Google Cloud CLI (gcloud) is not installed")
    config = yaml.safe_load((REPO / "cloudbuild.yaml").read_text(encoding="utf-8"))
    subs = {**BUILD_SUBSTITUTIONS}
    for key, value in config["substitutions"].items():
        subs[key] = (overrides or {}).get(key) or _substituted(str(value), subs)
    (step,) = [s for s in config["steps"] if s["id"] == f"register-{name}"]
    assert step["args"][0] == "tools/register_template.py"
    spec_file = out_dir / f"{name}.json"
    args = [_substituted(a, subs) for a in step["args"][1:]]
    args = [f"--spec={spec_file}" if a.startswith("--spec=") else a for a in args]
    assert register_template.main(["--gcloud", gcloud, *args]) == 0
    return json.loads(spec_file.read_text(encoding="utf-8"))


# What the Flex launcher hands the program for each field of the spec's defaultEnvironment,
# in Beam's option names. The launcher itself does not run offline: this is its part.
ENVIRONMENT_OPTIONS = {
    "serviceAccountEmail": lambda v: [f"--service_account_email={v}"],
    "tempLocation": lambda v: [f"--temp_location={v}"],
    "stagingLocation": lambda v: [f"--staging_location={v}"],
    "maxWorkers": lambda v: [f"--max_num_workers={v}"],
    "additionalUserLabels": lambda v: [f"--labels={key}={value}" for key, value in v.items()],
    "enableStreamingEngine": lambda v: ["--enable_streaming_engine"] if v else [],
}


def environment_options(spec: dict) -> list[str]:
    options = []
    for field, value in spec["defaultEnvironment"].items():
        options += ENVIRONMENT_OPTIONS[field](value)  # a new field needs its mapping here
    return options


@dataclass
class LaunchedJob:
    request: dict
    pipeline: object  # beam_runner_api_pb2.Pipeline
    stderr: str

    @property
    def worker_pool(self) -> dict:
        (pool,) = self.request["environment"]["workerPools"]
        return pool

    @property
    def container_images(self) -> set[str]:
        return {c["containerImage"] for c in self.worker_pool.get("sdkHarnessContainerImages", [])}

    @property
    def staged_files(self) -> set[str]:
        return {p["name"] for p in self.worker_pool.get("packages", [])}

    @property
    def top_level_steps(self) -> set[str]:
        transforms = self.pipeline.components.transforms
        # Beam wraps the graph in one unnamed root; the user's steps are its parts.
        return {
            transforms[part].unique_name
            for root in self.pipeline.root_transform_ids
            for part in transforms[root].subtransforms
        }

    @property
    def job_type(self) -> str:
        return self.request["environment"]["version"]["job_type"]


DEFAULT_LOCATIONS = (
    f"--temp_location=gs://{BUCKET}/tmp",
    f"--staging_location=gs://{BUCKET}/staging",
)


def simulate_launch(
    gcs_host: str,
    name: str,
    parameters: list[str],
    *,
    extra_env: dict | None = None,
    environment: list[str] | tuple = DEFAULT_LOCATIONS,
) -> LaunchedJob:
    """Runs templates/<name>.py as the launcher would, with the image's SDK_CONTAINER_IMAGE;
    `environment` is the options the launcher adds from the launch's and spec's environment."""
    from apache_beam.portability.api import beam_runner_api_pb2

    client = storage_client(gcs_host)
    if not client.bucket(BUCKET).exists():
        client.create_bucket(BUCKET)
    location = f"templates/jobs/{name}"
    env = template_env(
        {
            "STORAGE_EMULATOR_HOST": gcs_host,
            "SDK_CONTAINER_IMAGE": image_uri(name),
            **(extra_env or {}),
        },
        anonymous_gcp=True,
    )
    completed = run_template(
        name,
        [
            "--runner=DataflowRunner",
            f"--project={PROJECT}",
            f"--region={REGION}",
            *environment,
            f"--template_location=gs://{BUCKET}/{location}",
            *parameters,
        ],
        env=env,
        timeout=300,
    )
    request = json.loads(client.bucket(BUCKET).blob(location).download_as_text())
    pipeline_url = request["environment"]["sdkPipelineOptions"]["options"]["pipelineUrl"]
    blob_name = pipeline_url.removeprefix(f"gs://{BUCKET}/")
    pipeline = beam_runner_api_pb2.Pipeline.FromString(
        client.bucket(BUCKET).blob(blob_name).download_as_bytes()
    )
    return LaunchedJob(request=request, pipeline=pipeline, stderr=completed.stderr)


def upload(gcs_host: str, path: str, data: bytes) -> str:
    client = storage_client(gcs_host)
    if not client.bucket(BUCKET).exists():
        client.create_bucket(BUCKET)
    client.bucket(BUCKET).blob(path).upload_from_string(data)
    return f"gs://{BUCKET}/{path}"
