"""Each template launches as the Flex launcher would run it, and the job request is right."""

from __future__ import annotations

import pytest

from pipelines.registry import TEMPLATES
from tests.support.launch import BUCKET, image_uri, simulate_launch, upload
from tests.support.processes import REPO

# Template -> (parameters the launcher passes, step names the job must have, job type).
# Stable top-level step names are what `--update` of a running job matches on.
def launch_cases(gcs_host):
    text = upload(gcs_host, "in/kinglear.txt", (REPO / "data" / "kinglear.txt").read_bytes())
    mnist_csv = upload(gcs_host, "in/mnist.csv", (REPO / "data" / "mnist_sample.csv").read_bytes())
    return {
        "wordcount": ([f"--input={text}", f"--output=gs://{BUCKET}/result/wordcount"],
                      {"Read", "Decode", "WriteDeadLetters", "CountWords", "Format", "Write"},
                      "FNAPI_BATCH"),
        "wordcount2": ([f"--input={text}", f"--output=gs://{BUCKET}/result/words",
                        f"--output2=gs://{BUCKET}/result/letters"],
                       {"Read", "Decode", "WriteDeadLetters", "ExtractWords", "CountAToFWords",
                        "FormatWords", "WriteWords",
                        "CountFirstCharacters", "FormatCharacters", "WriteCharacters"},
                       "FNAPI_BATCH"),
        "mnist_batch": ([f"--input={mnist_csv}", f"--output=gs://{BUCKET}/result/predict"],
                        {"Read", "ParseImages", "PredictDigits", "WritePredictions",
                         "MergeDeadLetters", "WriteDeadLetters"}, "FNAPI_BATCH"),
        "mnist_stream": (["--input=projects/lab-project/subscriptions/mnist_image-sub",
                          "--output=projects/lab-project/topics/mnist_predict",
                          "--dead_letter=projects/lab-project/topics/mnist_dead_letter"],
                         {"Read", "Classify", "Publish", "DeadLetters"}, "FNAPI_STREAMING"),
        "pedestrian_depth": (["--input=projects/lab-project/subscriptions/camera_frames-sub",
                              "--output=projects/lab-project/topics/pedestrian_depth",
                              "--dead_letter=projects/lab-project/topics/pedestrian_dead_letter"],
                             {"Read", "Detect", "Publish", "DeadLetters"}, "FNAPI_STREAMING"),
    }


# Anything here would make workers install packages at start, which the image exists to avoid.
INSTALLED_AT_START = ("requirements.txt", "workflow.tar.gz", "dataflow_python_sdk.tar",
                      "extra_packages.txt", "setup.py")


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
