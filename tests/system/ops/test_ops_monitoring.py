"""ops/flex's day-two watch (issue 26): setup's dashboard and alert policies (idempotent, gone
after teardown, printed by a dry run), update keeping the running job's streaming mode, jobs
flagging stream jobs past --max-hours, and the launcher base's newer tags. Against the
recording fake cloud (tests/support/fake_gcloud.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ops import monitoring
from ops.answers import AT_LEAST_ONCE
from ops.commands.launcher import DOCKERFILE, pinned
from ops.lab import Catalog
from tests.support.fake_gcloud import PLAYED_EMAIL
from tests.support.flex import PROJECT, experiments, flag, ok
from tests.support.markers import missing

REPO = Path(__file__).resolve().parents[3]
CATALOG = Catalog.from_registry()
POLICY_COUNT = 1 + len(monitoring.POLICY_FILES) * len(CATALOG.streaming)


def setup_args(tmp_path, *more: str) -> list[str]:
    return ["--project", PROJECT, "--csv", str(tmp_path / "m.csv"), "setup", *more]


# --- setup and teardown ---------------------------------------------------------------


def test_a_first_setup_creates_the_dashboard_and_policies_from_the_files(flex, tmp_path):
    r = ok(flex(*setup_args(tmp_path)))
    assert "monitoring.googleapis.com" in r.one("gcloud", "services", "enable")
    board = r.one("gcloud", "monitoring", "dashboards", "create")
    path = REPO / flag(board, "config-from-file")
    assert json.loads(path.read_text()) == monitoring.dashboard(CATALOG, PROJECT)
    created = r.find("gcloud", "alpha", "monitoring", "policies", "create")
    assert len(created) == POLICY_COUNT
    written = {
        json.loads((REPO / flag(c, "policy-from-file")).read_text())["displayName"] for c in created
    }
    assert written == {p["displayName"] for _, p in monitoring.policies(CATALOG, PROJECT, [])}
    # No address given: no channel, and policies that notify nobody (the console shows them).
    assert not r.find("gcloud", "beta", "monitoring", "channels", "create")
    for c in created:
        assert (
            json.loads((REPO / flag(c, "policy-from-file")).read_text())["notificationChannels"]
            == []
        )
    # Each is looked for before it is made.
    checks = [c[:5] for c in r.checks]
    assert ["gcloud", "monitoring", "dashboards", "list", f"--project={PROJECT}"] in checks


def test_alert_email_adds_one_channel_that_every_policy_notifies(flex, tmp_path):
    r = ok(flex(*setup_args(tmp_path, "--alert-email", "staff@example.org")))
    channel = r.one("gcloud", "beta", "monitoring", "channels", "create")
    assert flag(channel, "type") == "email"
    assert flag(channel, "channel-labels") == "email_address=staff@example.org"
    assert flag(channel, "display-name") == monitoring.channel_name("staff@example.org")
    for c in r.find("gcloud", "alpha", "monitoring", "policies", "create"):
        policy = json.loads((REPO / flag(c, "policy-from-file")).read_text())
        assert policy["notificationChannels"] == [
            f"projects/{PROJECT}/notificationChannels/CHANNEL_ID"
        ]


def test_a_second_setup_updates_ours_in_place_and_creates_none(flex, tmp_path):
    (tmp_path / "m.csv").write_text("ID,Image\n")
    r = flex(*setup_args(tmp_path, "--alert-email", PLAYED_EMAIL), dry=False, state="present")
    assert r.returncode == 0, r.stderr
    monitoring_calls = [c for c in r.calls if "monitoring" in c[:3]]
    assert not [c for c in monitoring_calls if "create" in c]
    (board,) = [c for c in monitoring_calls if c[2:4] == ["dashboards", "update"]]
    assert board[4] == "d1"
    # The etag it listed: an edit made since then is not overwritten.
    assert json.loads((REPO / flag(board, "config-from-file")).read_text())["etag"] == "e1"
    updated = [c for c in monitoring_calls if c[3:5] == ["policies", "update"]]
    assert sorted(c[5] for c in updated) == sorted(f"p{i}" for i in range(POLICY_COUNT))
    for c in updated:  # the existing channel, found by its address, is reused
        policy = json.loads((REPO / flag(c, "policy-from-file")).read_text())
        assert policy["notificationChannels"] == [f"projects/{PROJECT}/notificationChannels/c1"]


def test_a_second_setup_without_an_address_keeps_the_channel_an_earlier_one_added(flex, tmp_path):
    (tmp_path / "m.csv").write_text("ID,Image\n")
    r = flex(*setup_args(tmp_path), dry=False, state="present")
    assert r.returncode == 0, r.stderr
    updated = [c for c in r.calls if c[3:5] == ["policies", "update"]]
    assert len(updated) == POLICY_COUNT
    assert not [c for c in r.calls if c[3:5] == ["channels", "create"]]
    for c in updated:
        policy = json.loads((REPO / flag(c, "policy-from-file")).read_text())
        assert policy["notificationChannels"] == [f"projects/{PROJECT}/notificationChannels/c1"]


def test_someone_elses_dashboard_is_neither_updated_nor_deleted(flex, tmp_path):
    (tmp_path / "m.csv").write_text("ID,Image\n")
    theirs = {
        "dashboards": [{"name": f"projects/{PROJECT}/dashboards/x9", "displayName": "Course"}],
        "policies": [
            {"name": f"projects/{PROJECT}/alertPolicies/x8", "displayName": "CPU high"},
            {"name": "garbage"},
        ],
        "channels": [],
    }
    r = flex(*setup_args(tmp_path), dry=False, state="present", monitored=theirs)
    assert r.returncode == 0, r.stderr
    assert len([c for c in r.calls if c[2:4] == ["dashboards", "create"]]) == 1
    assert len([c for c in r.calls if c[3:5] == ["policies", "create"]]) == POLICY_COUNT
    r = flex(
        "--project", PROJECT, "teardown", "--yes", dry=False, state="present", monitored=theirs
    )
    assert r.returncode == 0, r.stderr
    assert not [c for c in r.calls if "delete" in c and "monitoring" in c[:3]]


def test_teardown_deletes_our_policies_then_channels_then_dashboard(flex):
    r = flex("--project", PROJECT, "teardown", "--yes", dry=False, state="present")
    assert r.returncode == 0, r.stderr
    deletes = [c for c in r.calls if "monitoring" in c[:3] and "delete" in c]
    groups = [next(g for g in ("policies", "channels", "dashboards") if g in c) for c in deletes]
    assert groups == ["policies"] * POLICY_COUNT + ["channels", "dashboards"]
    assert all("--quiet" in c and flag(c, "project") == PROJECT for c in deletes)
    dry = ok(flex("--project", PROJECT, "teardown"))
    assert len([c for c in dry.commands if "monitoring" in c[:3]]) == POLICY_COUNT + 2


def test_a_failing_policy_create_stops_setup_there(flex, tmp_path):
    (tmp_path / "m.csv").write_text("ID,Image\n")
    r = flex(*setup_args(tmp_path), dry=False, fail="policies create")
    assert r.returncode == 1 and "this command failed" in r.stderr
    assert len([c for c in r.calls if c[3:5] == ["policies", "create"]]) == 1
    assert "setup done" not in r.stderr


# --- update keeps the mode -----------------------------------------------------------

RUNNING = [dict(id="2026-01-01_00_00_00-42", name="mnist-stream", state="Running")]


def launches(r):
    return [c for c in r.calls if c[1:4] == ["dataflow", "flex-template", "run"]]


@pytest.mark.parametrize(
    "mode, flags, at_least_once, said",
    [
        ("STREAMING_MODE_AT_LEAST_ONCE", [], True, "at least once, as the running"),
        ("STREAMING_MODE_EXACTLY_ONCE", [], False, "exactly once, as the running"),
        ("STREAMING_MODE_AT_LEAST_ONCE", ["--exactly-once"], False, "exactly once (--exactly"),
        ("STREAMING_MODE_EXACTLY_ONCE", ["--at-least-once"], True, "at least once (--at-least"),
    ],
)
def test_update_keeps_the_running_jobs_mode_unless_told(flex, mode, flags, at_least_once, said):
    jobs = [{**RUNNING[0], "mode": mode}]
    r = flex("--project", PROJECT, "update", "mnist_stream", *flags, dry=False, state="present",
             jobs=jobs)  # fmt: skip
    assert r.returncode == 0, r.stderr
    check, replace = launches(r)
    for launch in (check, replace):  # the graph check is asked about the same job
        assert (AT_LEAST_ONCE in experiments(launch)) is at_least_once
    assert f"streaming mode: {said}" in r.stderr


def test_update_without_a_readable_mode_stops_before_launching(flex):
    job = RUNNING[0]["id"]
    described = {job: {"id": job, "environment": {"streamingMode": "STREAMING_MODE_UNSPECIFIED"}}}
    r = flex("--project", PROJECT, "update", "mnist_stream", dry=False, state="present",
             jobs=RUNNING, described=described)  # fmt: skip
    assert r.returncode == 1
    assert "cannot read the streaming mode" in r.stderr and "--exactly-once" in r.stderr
    assert launches(r) == []
    # An environment that is not an object is an answer of another shape (ops/answers.py).
    r = flex("--project", PROJECT, "update", "mnist_stream", dry=False, state="present",
             jobs=RUNNING, described={job: {"id": job, "environment": "odd"}})  # fmt: skip
    assert r.returncode == 1 and "answered a job whose environment is a string" in r.stderr
    assert launches(r) == []


def test_a_job_launched_with_the_experiment_reads_as_at_least_once(flex):
    job = RUNNING[0]["id"]
    described = {job: {"id": job, "environment": {"experiments": ["a", AT_LEAST_ONCE, 3]}}}
    r = flex("--project", PROJECT, "update", "mnist_stream", "--skip-check", dry=False,
             state="present", jobs=RUNNING, described=described)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert AT_LEAST_ONCE in experiments(launches(r)[0])


# --- jobs flags stream jobs past --max-hours --------------------------------------------


def listed(hours_ago: float, **job) -> dict:
    created = datetime.now(UTC) - timedelta(hours=hours_ago)
    return {**job, "creationTime": created.strftime("%Y-%m-%d %H:%M:%S")}


def test_jobs_flags_each_stream_job_past_max_hours_with_its_drain(flex):
    jobs = [
        listed(5, id="2026-01-01_00_00_00-1", name="mnist-stream", state="Running"),
        listed(1, id="2026-01-01_00_00_00-2", name="pedestrian-depth", state="Running"),
        listed(9, id="2026-01-01_00_00_00-3", name="wordcount-x", state="Running", type="Batch"),
    ]
    r = flex("--project", PROJECT, "jobs", "--max-hours", "4", dry=False, jobs=jobs)
    assert r.returncode == 0, r.stderr
    flagged = [line for line in r.stderr.splitlines() if "OVER 4 h" in line]
    assert len(flagged) == 1
    assert "mnist-stream (2026-01-01_00_00_00-1)" in flagged[0]
    assert flagged[0].endswith("ops/flex drain 2026-01-01_00_00_00-1")
    r = flex("--project", PROJECT, "jobs", "--max-hours", "0", dry=False, jobs=jobs)
    assert "OVER" not in r.stderr  # 0: no limit asked for, none to remind of
    r = flex("--project", PROJECT, "jobs", dry=False, jobs=jobs, env={"MAX_HOURS": "1"})
    assert len([line for line in r.stderr.splitlines() if "OVER 1 h" in line]) == 1


def test_jobs_survives_an_odd_creation_time(flex):
    jobs = [{"id": "2026-01-01_00_00_00-1", "name": "mnist-stream", "state": "Running",
             "creationTime": None}]  # fmt: skip
    r = flex("--project", PROJECT, "jobs", dry=False, jobs=jobs)
    assert r.returncode == 0, r.stderr
    assert "OVER" not in r.stderr and "?" in r.stdout  # its age is unknown, said as ?


# --- the launcher base's newer tags ----------------------------------------------------


def test_launcher_lists_newer_dated_tags_and_prints_the_line_to_change(flex):
    name, current = pinned(DOCKERFILE.read_text())
    newer = "29990101_RC00"
    tags = [
        {"digest": "sha256:aa", "tags": [newer, "latest"]},
        {"digest": "sha256:bb", "tags": [current]},
        {"digest": "sha256:cc", "tags": ["20200101_RC00"]},
        {"digest": "sha256:dd"},  # untagged
    ]
    r = flex("--project", PROJECT, "launcher", dry=False, tags=tags)
    assert r.returncode == 0, r.stderr
    (call,) = r.calls
    assert call[:5] == ["gcloud", "container", "images", "list-tags", name]
    lines = r.stdout.splitlines()
    assert lines[1].split() == [newer, "sha256:aa"] and len(lines) == 3
    assert lines[-1] == f"ARG LAUNCHER_IMAGE={name}:{newer}"
    assert not [c for c in r.calls if c[1] != "container"]  # read-only


def test_launcher_says_when_the_pin_is_the_newest(flex):
    name, current = pinned(DOCKERFILE.read_text())
    r = flex(
        "--project",
        PROJECT,
        "launcher",
        dry=False,
        tags=[{"digest": "sha256:bb", "tags": [current]}],
    )
    assert r.returncode == 0 and r.stdout == ""
    assert f"{name}:{current} is the newest dated tag" in r.stderr


@pytest.mark.parametrize(
    "odd",
    [
        [{"tags": "odd"}],
        ["garbage"],
        {"tags": []},
        # The reader refuses these, so the launcher's own loop need not look again.
        [{"tags": ["29990101_RC00"]}],
        [{"digest": 7, "tags": ["29990101_RC00"]}],
        [{"digest": "sha256:aa", "tags": "29990101_RC00"}],
        [{"digest": "sha256:aa", "tags": ["29990101_RC00", 20990101]}],
    ],
)
def test_launcher_refuses_a_listing_of_another_shape_in_one_line(flex, odd):
    r = flex("--project", PROJECT, "launcher", dry=False, tags=odd)
    assert r.returncode == 1 and r.stdout == ""
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("ops/flex: error: gcloud container images list-tags ")


@pytest.mark.slow
def test_gcloud_accepts_the_update_lines_of_a_second_setup(flex, tmp_path):
    """The dry runs that test_ops_cli feeds to gcloud play a first setup (creates); a second
    one updates: those lines, with the files they name, go through gcloud's own parser too."""
    import shutil
    import subprocess

    from tests.system.ops.test_ops_cli import cli_env

    if shutil.which("gcloud") is None:
        missing("the gcloud CLI is not installed")
    (tmp_path / "m.csv").write_text("ID,Image\n")
    r = flex(*setup_args(tmp_path), dry=False, state="present")
    updates = [c for c in r.calls if "monitoring" in c[:3] and "update" in c]
    shapes = {tuple(a.split("=", 1)[0] for a in c[:4]): c for c in updates}
    assert len(shapes) == 2  # the dashboard's, and one policy's
    for argv in shapes.values():
        done = subprocess.run(
            argv, capture_output=True, text=True, env=cli_env(tmp_path), cwd=REPO, timeout=120
        )
        assert done.returncode != 0 and "authenticated account" in done.stderr, done.stderr
