"""versions and rollback (the way back from a bad build), and the two day-two commands replay
and cost, against the recording fake cloud."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.fake_gcloud import FakeGcloud
from tests.support.flex import BUCKET, PROJECT, REGION, flag, ok

TAG_OLD = "0f3c2a9e-1b2d-4c5e-8f90-a1b2c3d4e5f6"
TAG_NEW = "7a7a7a7a-1b2d-4c5e-8f90-a1b2c3d4e5f6"
IMAGE = f"{REGION}-docker.pkg.dev/{PROJECT}/dataflow-templates/mnist_stream"
KEPT = f"gs://{BUCKET}/templates/versions/mnist_stream"
VERSIONS = {
    f"{KEPT}/{TAG_OLD}.json": ("2026-01-01T10:00:00.000Z", f"{IMAGE}:{TAG_OLD}"),
    f"{KEPT}/{TAG_NEW}.json": ("2026-02-01T10:00:00.000Z", f"{IMAGE}:{TAG_NEW}"),
    f"gs://{BUCKET}/templates/versions/wordcount/{TAG_OLD}.json": ("2026-01-01T10:00:00Z", "x"),
}


def test_versions_lists_tag_time_and_image_newest_first(flex):
    r = flex("--project", PROJECT, "versions", "mnist_stream", dry=False, versions=VERSIONS)
    assert r.returncode == 0, r.stderr
    (listing,) = r.called("gcloud", "storage", "objects", "list")
    assert listing[4] == f"{KEPT}/*.json" and "--raw" in listing and "--format=json" in listing
    rows = [line.split() for line in r.stdout.splitlines()]
    assert rows == [
        ["TAG", "CREATED", "IMAGE"],
        [TAG_NEW, "2026-02-01", "10:00:00", f"{IMAGE}:{TAG_NEW}"],
        [TAG_OLD, "2026-01-01", "10:00:00", f"{IMAGE}:{TAG_OLD}"],
    ]
    assert "ops/flex rollback mnist_stream TAG" in r.stderr


def test_versions_of_a_template_never_built_says_deploy(flex):
    r = flex("--project", PROJECT, "versions", "wordcount2", dry=False, versions=VERSIONS)
    assert r.returncode == 0 and r.stdout == "" and "ops/flex deploy" in r.stderr


def test_rollback_dry_run_shows_the_check_and_the_copy(flex):
    r = ok(flex("--project", PROJECT, "rollback", "mnist_stream", TAG_OLD))
    kept = f"{KEPT}/{TAG_OLD}.json"
    assert ["gcloud", "storage", "objects", "describe", kept, f"--project={PROJECT}"] in r.checks
    assert r.commands == [
        ["gcloud", "storage", "cp", kept, f"gs://{BUCKET}/templates/mnist_stream.json",
         f"--project={PROJECT}"]
    ]  # fmt: skip


def test_rollback_copies_the_kept_version_over_the_current_spec(flex):
    r = flex(
        "--project", PROJECT, "rollback", "mnist_stream", TAG_OLD, dry=False, versions=VERSIONS
    )
    assert r.returncode == 0, r.stderr
    (copy,) = r.called("gcloud", "storage", "cp")
    assert copy[3:5] == [f"{KEPT}/{TAG_OLD}.json", f"gs://{BUCKET}/templates/mnist_stream.json"]
    assert f"{IMAGE}:{TAG_OLD}" in r.stderr and "ops/flex update mnist_stream" in r.stderr


def test_rollback_to_a_version_that_was_never_kept_copies_nothing(flex):
    r = flex("--project", PROJECT, "rollback", "mnist_stream", "nope", dry=False, versions=VERSIONS)
    assert r.returncode == 1
    assert "no version nope of mnist_stream" in r.stderr and "ops/flex versions" in r.stderr
    assert not r.called("gcloud", "storage", "cp")


@pytest.mark.parametrize(
    "template, subscription, topic",
    [
        ("mnist_stream", "mnist_dead_letter-sub", "mnist_image"),
        ("pedestrian_depth", "pedestrian_dead_letter-sub", "camera_frames"),
    ],
)
def test_replay_runs_the_tool_from_the_dead_letters_to_the_input(
    flex, template, subscription, topic
):
    r = ok(flex("--project", PROJECT, "replay", template))
    (command,) = r.commands
    assert command == [
        "python3", "-m", "tools.replay_dead_letters",
        "--subscription", f"projects/{PROJECT}/subscriptions/{subscription}",
        "--topic", f"projects/{PROJECT}/topics/{topic}",
    ]  # fmt: skip
    real = flex("--project", PROJECT, "replay", template, dry=False)
    assert real.returncode == 0 and real.calls == [command]


def test_cost_plan_reads_the_job_and_its_metrics_as_json(flex):
    r = ok(flex("--project", PROJECT, "cost", "2026-01-01_00_00_00-42"))
    assert r.commands == []
    describe, metrics = r.checks
    assert describe[:5] == ["gcloud", "dataflow", "jobs", "describe", "2026-01-01_00_00_00-42"]
    assert metrics[:6] == [
        "gcloud",
        "beta",
        "dataflow",
        "metrics",
        "list",
        "2026-01-01_00_00_00-42",
    ]
    for check in (describe, metrics):
        assert flag(check, "region") == REGION and flag(check, "format") == "json"
    assert flag(metrics, "source") == "all"
    # Only the full view has the environment that says how Streaming Engine bills the job.
    assert "--full" in describe


def test_cost_of_a_template_is_its_newest_job(flex):
    r = ok(flex("--project", PROJECT, "cost", "mnist_stream"))
    listing, describe, _ = r.checks
    assert listing[:4] == ["gcloud", "dataflow", "jobs", "list"] and "--status=all" in listing
    assert describe[4] == "JOB_ID_OF_mnist-stream"


RECORDED = Path(__file__).resolve().parents[2] / "support" / "recorded"


@pytest.mark.parametrize(
    "name", ["mnist_batch_done", "mnist_stream_running", "pedestrian_stream_drained"]
)
def test_cost_reports_on_gclouds_recorded_answers(flex, name):
    # End to end: ops/flex reads the job and its metrics as gcloud answers them (day two's
    # recordings), and prints ops.cost.report of exactly those answers.
    from ops.cost import report

    job = json.loads((RECORDED / f"{name}.describe.json").read_text(encoding="utf-8"))
    metrics = json.loads((RECORDED / f"{name}.metrics.json").read_text(encoding="utf-8"))
    r = flex(
        "--project", PROJECT, "--region", job["location"], "cost", job["id"],
        dry=False, described={job["id"]: job}, metrics=metrics,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout == report(job, metrics) + "\n"
    describe, listing = r.calls
    assert describe == [
        "gcloud", "dataflow", "jobs", "describe", job["id"], f"--project={PROJECT}",
        f"--region={job['location']}", "--full", "--format=json",
    ]  # fmt: skip
    assert listing == [
        "gcloud", "beta", "dataflow", "metrics", "list", job["id"], f"--project={PROJECT}",
        f"--region={job['location']}", "--source=all", "--format=json",
    ]  # fmt: skip


def test_a_failing_metrics_read_stops_before_the_report(flex):
    r = flex("--project", PROJECT, "cost", "2026-01-01_00_00_00-42", dry=False, fail="metrics list")
    assert r.returncode == 1 and "this command failed" in r.stderr and r.stdout == ""


def test_the_fake_is_the_real_runner():
    # Only the process start and the sleep are played: printing, dry-run answers and failure
    # reports are the code users run.
    from ops.gcloud import Gcloud

    overridden = {k for k in vars(FakeGcloud) if callable(vars(FakeGcloud)[k])} & set(vars(Gcloud))
    assert overridden == {"__init__", "_execute", "sleep"}


def test_each_build_uploads_the_kept_version_then_the_current_spec(monkeypatch, tmp_path):
    """cloudbuild.yaml's register step, as tools/register_template.py runs it: the same spec
    to both --spec locations, kept version first, each carrying its image as metadata."""
    import json as json_

    from tools import register_template

    metadata = tmp_path / "m.json"
    metadata.write_text(json_.dumps({"name": "mnist_stream", "streaming": True}))
    image = f"{IMAGE}:{TAG_NEW}"
    monkeypatch.setattr(
        register_template, "render_spec", lambda *a, **k: {"image": image, "metadata": {}}
    )
    uploads = []

    def record(argv, check):
        uploads.append((argv, json_.loads(Path(argv[-2]).read_text(encoding="utf-8"))))

    monkeypatch.setattr(register_template.subprocess, "run", record)
    kept, current = f"{KEPT}/{TAG_NEW}.json", f"gs://{BUCKET}/templates/mnist_stream.json"
    args = ["--metadata", str(metadata), "--image", image, "--spec", kept, "--spec", current]
    assert register_template.main(args) == 0
    assert [argv[-1] for argv, _ in uploads] == [kept, current]
    for argv, spec in uploads:
        assert argv[:4] == ["gcloud", "storage", "cp", f"--custom-metadata=image={image}"]
        assert spec["image"] == image and spec["metadata"]["streaming"] is True


@pytest.mark.parametrize("template", ["mnist_stream", "pedestrian_depth"])
def test_the_replay_tool_takes_the_command_replay_prints(flex, monkeypatch, template):
    from tools import replay_dead_letters

    (command,) = ok(flex("--project", PROJECT, "replay", template)).commands
    assert command[1:3] == ["-m", "tools.replay_dead_letters"]
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "localhost:9")  # no credentials asked for
    args = replay_dead_letters.parse_arguments(command[3:])
    assert args.subscription == command[command.index("--subscription") + 1]
    assert args.topic == command[command.index("--topic") + 1]
