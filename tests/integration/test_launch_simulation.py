"""Each template launches as the Flex launcher would run it, and the job request is right."""

from __future__ import annotations

import json

import pytest

from pipelines.registry import TEMPLATES, job_module
from tests.support.gcs_emulator import storage_client
from tests.support.launch import (
    BUCKET,
    environment_options,
    image_uri,
    render_registered_spec,
    simulate_launch,
    upload,
)
from tests.support.processes import REPO


# Template -> (parameters the launcher passes, step names the job must have, job type).
# Stable top-level step names are what `--update` of a running job matches on.
def launch_cases(gcs_host):
    text = upload(gcs_host, "in/kinglear.txt", (REPO / "data" / "kinglear.txt").read_bytes())
    mnist_csv = upload(gcs_host, "in/mnist.csv", (REPO / "data" / "mnist_sample.csv").read_bytes())
    return {
        "wordcount": (
            [f"--input={text}", f"--output=gs://{BUCKET}/result/wordcount"],
            {
                "Read",
                "Decode",
                "WriteDeadLetters",
                "CountWords",
                "Format",
                "Write",
                "RemoveStaleOutput",
            },
            "FNAPI_BATCH",
        ),
        "wordcount2": (
            [
                f"--input={text}",
                f"--output=gs://{BUCKET}/result/words",
                f"--output2=gs://{BUCKET}/result/letters",
            ],
            {
                "Read",
                "Decode",
                "WriteDeadLetters",
                "ExtractWords",
                "CountAToFWords",
                "FormatWords",
                "WriteWords",
                "CountFirstCharacters",
                "FormatCharacters",
                "WriteCharacters",
                "RemoveStaleWords",
                "RemoveStaleCharacters",
            },
            "FNAPI_BATCH",
        ),
        "mnist_batch": (
            [f"--input={mnist_csv}", f"--output=gs://{BUCKET}/result/predict"],
            {
                "Read",
                "ParseImages",
                "PredictDigits",
                "WritePredictions",
                "MergeDeadLetters",
                "WriteDeadLetters",
            },
            "FNAPI_BATCH",
        ),
        "mnist_stream": (
            [
                "--input_subscription=projects/lab-project/subscriptions/mnist_image-sub",
                "--output=projects/lab-project/topics/mnist_predict",
                "--dead_letter=projects/lab-project/topics/mnist_dead_letter",
            ],
            {"Read", "Classify", "Publish", "DeadLetters"},
            "FNAPI_STREAMING",
        ),
        "pedestrian_depth": (
            [
                "--input_subscription=projects/lab-project/subscriptions/camera_frames-sub",
                "--output=projects/lab-project/topics/pedestrian_depth",
                "--dead_letter=projects/lab-project/topics/pedestrian_dead_letter",
            ],
            {"Read", "Detect", "Publish", "DeadLetters"},
            "FNAPI_STREAMING",
        ),
    }


# Anything here would make workers install packages at start, which the image exists to avoid.
INSTALLED_AT_START = (
    "requirements.txt",
    "workflow.tar.gz",
    "dataflow_python_sdk.tar",
    "extra_packages.txt",
    "setup.py",
)


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_launch_uses_the_templates_image_and_stages_nothing_to_install(name, gcs_emulator):
    cases = launch_cases(gcs_emulator)
    assert name in cases, f"add launch parameters for the new template {name}"
    parameters, steps, job_type = cases[name]
    job = simulate_launch(gcs_emulator, name, parameters)
    assert job.container_images == {image_uri(name)}
    assert job.worker_pool["workerHarnessContainerImage"] == image_uri(name)
    assert not [f for f in job.staged_files if f.endswith(INSTALLED_AT_START)], job.staged_files
    assert job.staged_files <= {"pickled_main_session", "submission_environment_dependencies.txt"}
    assert job.top_level_steps == steps
    assert job.job_type == job_type


# Optional each, but one of them is needed (pipelines.io.pubsub.resolve_input): a console user
# fills in the subscription picker.
ONE_OF_REQUIRED = {"input_subscription"}


def required_only(name: str, parameters: list[str]) -> list[str]:
    metadata = json.loads((REPO / "metadata" / f"{name}.json").read_text(encoding="utf-8"))
    required = {p["name"] for p in metadata["parameters"] if not p["isOptional"]}
    required |= {p["name"] for p in metadata["parameters"]} & ONE_OF_REQUIRED
    kept = [a for a in parameters if a[2:].split("=", 1)[0] in required]
    assert {a[2:].split("=", 1)[0] for a in kept} == required, "a required parameter has no case"
    return kept


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_console_launch_with_only_required_parameters_gets_the_spec_defaults(
    name, gcs_emulator, tmp_path
):
    """A console launch names the spec and fills in the required parameters, nothing else:
    the service account, locations, worker cap, labels and Streaming Engine all come from
    the registered spec's defaultEnvironment, which the launcher hands the job."""
    spec = render_registered_spec(name, tmp_path, overrides={"_BUCKET": BUCKET})
    # The public sample an optional input defaults to, as Dataflow would find it.
    samples = storage_client(gcs_emulator).bucket("dataflow-samples")
    if not samples.exists():
        samples.create()
        samples.blob("shakespeare/kinglear.txt").upload_from_string(
            (REPO / "data" / "kinglear.txt").read_bytes()
        )
    parameters = required_only(name, launch_cases(gcs_emulator)[name][0])
    job = simulate_launch(gcs_emulator, name, parameters, environment=environment_options(spec))

    environment = job.request["environment"]
    assert environment["serviceAccountEmail"] == spec["defaultEnvironment"]["serviceAccountEmail"]
    assert environment["serviceAccountEmail"].startswith("dataflow-worker@")
    assert environment["tempStoragePrefix"].startswith(f"storage.googleapis.com/{BUCKET}/temp/")
    assert {p["location"].split("/")[2] for p in job.worker_pool["packages"]} == {"staging"}
    assert job.worker_pool["autoscalingSettings"]["maxNumWorkers"] == 2
    assert job.request["labels"] == {
        "template": name,
        "tag": spec["defaultEnvironment"]["additionalUserLabels"]["tag"],
    }
    streaming = job_module(name).TEMPLATE.streaming
    assert ("enable_streaming_engine" in environment["experiments"]) is streaming
    assert job.container_images == {image_uri(name)}


@pytest.mark.parametrize("name", sorted(n for n in TEMPLATES if job_module(n).TEMPLATE.streaming))
def test_stream_time_limit_reaches_dataflow_as_an_experiment(name, gcs_emulator):
    # ops/flex run passes the service option with --additional-experiments, as Google's page
    # says for Flex Templates (https://cloud.google.com/dataflow/docs/reference/service-options):
    # the launcher hands it to the job as --experiments, which must accept it (it refuses
    # unknown options) and pass it on, or the limit would silently not exist.
    parameters = required_only(name, launch_cases(gcs_emulator)[name][0])
    job = simulate_launch(
        gcs_emulator,
        name,
        [*parameters, "--experiments=max_workflow_runtime_walltime_seconds=14400"],
    )
    assert (
        "max_workflow_runtime_walltime_seconds=14400" in job.request["environment"]["experiments"]
    )
