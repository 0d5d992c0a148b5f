"""Simulates what the Flex Template launcher does, offline.

The launcher runs the template file with the DataflowRunner. With --template_location Beam
writes the job request to Cloud Storage instead of submitting it; against a local Cloud
Storage emulator and with anonymous credentials that works here. The request and the
pipeline proto it points to are what Dataflow would have received.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tests.support.gcs_emulator import PROJECT, storage_client
from tests.support.processes import run_template, template_env

REGION = "northamerica-northeast2"
BUCKET = "lab-bucket"


def image_uri(name: str) -> str:
    return f"{REGION}-docker.pkg.dev/{PROJECT}/dataflow-templates/{name}:sim"


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
        return {transforms[part].unique_name
                for root in self.pipeline.root_transform_ids
                for part in transforms[root].subtransforms}

    @property
    def job_type(self) -> str:
        return self.request["environment"]["version"]["job_type"]


def simulate_launch(gcs_host: str, name: str, parameters: list[str], *,
                    extra_env: dict | None = None) -> LaunchedJob:
    """Runs templates/<name>.py as the launcher would, with the image's SDK_CONTAINER_IMAGE."""
    from apache_beam.portability.api import beam_runner_api_pb2

    client = storage_client(gcs_host)
    if not client.bucket(BUCKET).exists():
        client.create_bucket(BUCKET)
    location = f"templates/jobs/{name}"
    env = template_env({"STORAGE_EMULATOR_HOST": gcs_host,
                        "SDK_CONTAINER_IMAGE": image_uri(name), **(extra_env or {})},
                       anonymous_gcp=True)
    completed = run_template(name, [
        "--runner=DataflowRunner", f"--project={PROJECT}", f"--region={REGION}",
        f"--temp_location=gs://{BUCKET}/tmp", f"--staging_location=gs://{BUCKET}/staging",
        f"--template_location=gs://{BUCKET}/{location}", *parameters], env=env, timeout=300)
    request = json.loads(client.bucket(BUCKET).blob(location).download_as_text())
    pipeline_url = request["environment"]["sdkPipelineOptions"]["options"]["pipelineUrl"]
    blob_name = pipeline_url.removeprefix(f"gs://{BUCKET}/")
    pipeline = beam_runner_api_pb2.Pipeline.FromString(
        client.bucket(BUCKET).blob(blob_name).download_as_bytes())
    return LaunchedJob(request=request, pipeline=pipeline, stderr=completed.stderr)


def upload(gcs_host: str, path: str, data: bytes) -> str:
    client = storage_client(gcs_host)
    if not client.bucket(BUCKET).exists():
        client.create_bucket(BUCKET)
    client.bucket(BUCKET).blob(path).upload_from_string(data)
    return f"gs://{BUCKET}/{path}"
