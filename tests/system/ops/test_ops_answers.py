"""gcloud's answers are not taken on their word: each command that reads one, against each
shape of answer a broken gcloud, proxy or API change could give, ends in one line naming the
gcloud command, exit 1 (or, for a valid answer, does its work); and a gcloud that never
answers is stopped after OPS_GCLOUD_TIMEOUT seconds."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ops.cli import main
from ops.gcloud import DEFAULT_TIMEOUT, SLOW, Gcloud, build_limit
from tests.support.fake_gcloud import CHECK_JOB_ID
from tests.support.flex import BUCKET, PROJECT, REGION

JOB_ID = "2026-01-01_00_00_00-42"
TAG = "0f3c2a9e-1b2d-4c5e-8f90-a1b2c3d4e5f6"
IMAGE = f"{REGION}-docker.pkg.dev/{PROJECT}/dataflow-templates/mnist_stream:{TAG}"
KEPT = f"gs://{BUCKET}/templates/versions/mnist_stream/{TAG}.json"
RUNNING = [dict(id=JOB_ID, name="mnist-stream", state="Running", template="mnist_stream")]

# A valid answer of each kind, as gcloud --format=json gives it.
LISTED = [
    {
        "id": JOB_ID,
        "name": "mnist-stream",
        "state": "Running",
        "type": "Streaming",
        "creationTime": "2026-01-01 00:00:00",
    }
]
DESCRIBED = {
    "id": JOB_ID,
    "name": "mnist-stream",
    "currentState": "JOB_STATE_DONE",
    "type": "JOB_TYPE_STREAMING",
    "location": REGION,
    "labels": {"template": "mnist_stream"},
    "environment": {
        "streamingMode": "STREAMING_MODE_EXACTLY_ONCE",
        "workerPools": [{"numWorkers": 1, "autoscalingSettings": {"maxNumWorkers": 2}}],
    },
}
METRICS = [{"name": {"origin": "dataflow/v1b3", "name": "TotalVcpuTime"}, "scalar": 3600}]
OBJECTS = [
    {
        "name": f"templates/versions/mnist_stream/{TAG}.json",
        "timeCreated": "2026-01-01T10:00:00.000Z",
        "metadata": {"image": IMAGE},
    }
]
SPEC = {"image": IMAGE, "sdkInfo": {"language": "PYTHON"}, "metadata": {"name": "mnist_stream"}}
LAUNCHED = {"job": {"id": CHECK_JOB_ID, "name": "mnist-stream"}}
BILLING = {"billingAccountName": "billingAccounts/0A0A0A-1B1B1B-2C2C2C", "billingEnabled": True}
BUDGETS = [{"name": "billingAccounts/0A0A0A-1B1B1B-2C2C2C/budgets/b1"}]
NUMBERED = {"projectNumber": "123456789012"}
CONNECTION = {"installationState": {"stage": "COMPLETE"}}
POLICY = {"etag": "BwYAAAAAAAA=", "bindings": [{"role": "roles/viewer", "members": ["user:a@b.c"]}]}
TAGS = [{"digest": "sha256:aa", "tags": ["20200101_RC00", "latest"]}]
POLICIES = [{"name": "projects/p/alertPolicies/x8", "displayName": "CPU high"}]
REPOSITORIES = [{"name": "projects/p/locations/l/connections/github/repositories/dataflow-lab"}]

TRIGGER = ["trigger", "--github", "someone/dataflow-lab"]
# (command, the played cloud, the call whose answer is replaced, its valid answer)
SLOTS = {
    "jobs/list": (["jobs"], {}, "dataflow jobs list", LISTED),
    "jobs/describe": (["jobs"], {"jobs": RUNNING}, "dataflow jobs describe", DESCRIBED),
    "logs/list": (["logs", "mnist_stream"], {}, "dataflow jobs list", LISTED),
    "drain/list": (["drain", "mnist_stream"], {}, "dataflow jobs list", LISTED),
    "versions/list": (["versions", "mnist_stream"], {}, "storage objects list", OBJECTS),
    "rollback/cat": (
        ["rollback", "mnist_stream", TAG],
        {"versions": {KEPT: ("2026-01-01T10:00:00Z", IMAGE)}},
        "storage cat",
        SPEC,
    ),
    "cost/list": (["cost", "mnist_stream"], {"jobs": RUNNING}, "dataflow jobs list", LISTED),
    "cost/describe": (["cost", JOB_ID], {}, "dataflow jobs describe", DESCRIBED),
    "cost/metrics": (["cost", JOB_ID], {}, "dataflow metrics list", METRICS),
    "update/list": (
        ["update", "mnist_stream", "--skip-check"],
        {"state": "present"},
        "dataflow jobs list",
        LISTED,
    ),
    "update/launch": (
        ["update", "mnist_stream"],
        {"state": "present", "jobs": RUNNING},
        "flex-template run",
        LAUNCHED,
    ),
    "update/describe": (
        ["update", "mnist_stream"],
        {"state": "present", "jobs": RUNNING},
        "dataflow jobs describe",
        DESCRIBED,
    ),
    "budget/billing": (["budget", "--amount", "50"], {}, "billing projects describe", BILLING),
    "budget/list": (["budget", "--amount", "50"], {}, "billing budgets list", BUDGETS),
    "trigger/project": (TRIGGER, {"state": "present"}, "gcloud projects describe", NUMBERED),
    "trigger/connection": (TRIGGER, {"state": "present"}, "connections describe", CONNECTION),
    "teardown/policy": (["teardown", "--yes"], {"state": "present"}, "get-iam-policy", POLICY),
    "launcher/tags": (["launcher"], {}, "images list-tags", TAGS),
    "teardown/monitoring": (["teardown", "--yes"], {"state": "present"}, "policies list", POLICIES),
    "teardown/links": (
        ["teardown", "--yes"],
        {"state": "present"},
        "repositories list",
        REPOSITORIES,
    ),
}


def nulls(value):
    """The valid answer's shape with every value null."""
    if isinstance(value, dict):
        return {key: nulls(item) for key, item in value.items()}
    if isinstance(value, list):
        return [nulls(item) for item in value] or [None]
    return None


def fieldless(value):
    return [{"unexpected": 1}] if isinstance(value, list) else {"unexpected": 1}


SHAPES = {
    "list of numbers": lambda valid: json.dumps([1, 2, 3]),
    "object without the fields": lambda valid: json.dumps(fieldless(valid)),
    "string": lambda valid: json.dumps("JOB_STATE_RUNNING"),
    "number": lambda valid: "42",
    "nulls": lambda valid: json.dumps(nulls(valid)),
    "empty output": lambda valid: "",
    "non-JSON": lambda valid: "<html><body>502 Bad Gateway</body></html>",
    "valid": lambda valid: json.dumps(valid),
}


def run(args: list[str], capsys, **cloud):
    from tests.support.fake_gcloud import FakeGcloud

    fake = FakeGcloud(**cloud)
    code = main(["--project", PROJECT, *args], gcloud=fake, env={"PYTHON": "python3"})
    out, err = capsys.readouterr()
    return code, out, err, fake


def messages(err: str) -> list[str]:
    """stderr without progress ("==> ") and trace ("+ ") lines."""
    return [line for line in err.splitlines() if not line.startswith(("==> ", "+ "))]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("slot", SLOTS)
def test_every_answer_is_used_or_refused_in_one_line(slot, shape, capsys):
    args, cloud, call, valid = SLOTS[slot]
    answer = SHAPES[shape](valid)
    code, out, err, fake = run(args, capsys, raw={call: answer}, **cloud)
    assert any(call in " ".join(c) for c in fake.calls), f"{slot} never asked {call}"
    if shape == "valid":
        assert code == 0 and "Traceback" not in err, err
        return
    assert code == 1, err
    (line,) = messages(err)
    assert line.startswith("ops/flex: error: ") and call in line, line
    assert len(line) < 300, line


def test_the_cost_report_names_the_job_it_was_given(capsys):
    # An empty answer once gave "Job ?" and $0.0000; a valid one is reported as it is.
    code, out, err, _ = run(["cost", JOB_ID], capsys, raw={"dataflow jobs describe": ""})
    assert code == 1 and out == "" and "answered nothing" in err
    code, out, err, _ = run(["cost", JOB_ID], capsys, metrics=METRICS)
    assert code == 0 and out.startswith(f"Job {JOB_ID} "), out


def test_rollback_installs_only_a_template_spec_naming_an_image(capsys):
    versions = {KEPT: ("2026-01-01T10:00:00Z", IMAGE)}
    for spec in (
        {"image": "not an image", "sdkInfo": {"language": "PYTHON"}, "metadata": {}},
        {"version": "1.0"},
        {"image": IMAGE, "metadata": {}},  # no sdkInfo: not a Flex Template spec
    ):
        code, out, err, fake = run(
            ["rollback", "mnist_stream", TAG],
            capsys,
            versions=versions,
            raw={"storage cat": json.dumps(spec)},
        )
        assert code == 1 and "now launches" not in err, err
        assert not [c for c in fake.calls if c[1:3] == ["storage", "cp"]], "the spec was copied"
    code, out, err, fake = run(["rollback", "mnist_stream", TAG], capsys, versions=versions)
    assert code == 0 and f"now launches {IMAGE}" in err
    assert [c for c in fake.calls if c[1:3] == ["storage", "cp"]]


def test_a_failing_call_is_two_lines_what_failed_and_what_to_do(capsys):
    code, out, err, _ = run(["jobs"], capsys, fail="dataflow jobs list")
    assert code == 1
    failed, todo = messages(err)[-2:]
    assert failed.startswith("ops/flex: error: this command failed (exit 1)")
    assert "gcloud dataflow jobs list" in failed
    assert todo.startswith("ops/flex: fix the cause")
    assert len([m for m in messages(err) if m.startswith("ops/flex")]) == 2


def test_slow_calls_get_longer_limits_than_reads(capsys):
    code, _, err, fake = run(["run", "mnist_stream"], capsys, state="present")
    assert code == 0, err
    limits = {" ".join(c[:4]): limit for c, limit in zip(fake.calls, fake.limits, strict=True)}
    assert limits["gcloud dataflow jobs list"] == DEFAULT_TIMEOUT
    assert limits["gcloud dataflow flex-template run"] == SLOW
    code, _, err, fake = run(["deploy"], capsys, state="present")
    assert code == 0, err
    (build,) = [lim for c, lim in zip(fake.calls, fake.limits, strict=True) if c[1] == "builds"]
    assert build == build_limit() > 3600


def sleeping_gcloud(tmp_path: Path) -> Path:
    """A gcloud that never answers: it starts a child (as gcloud starts Python) and waits."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "gcloud"
    script.write_text(
        f'#!/bin/sh\nsleep 60 &\necho $$ $! > "{tmp_path}/pids"\nwait\n', encoding="utf-8"
    )
    script.chmod(0o755)
    return bin_dir


def alive(pid: int) -> bool:
    """Running (a zombie nobody has reaped yet has stopped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_gcloud_that_never_answers_is_stopped_after_the_timeout(tmp_path, capsys):
    runner = Gcloud(dry_run=False)
    runner.env["PATH"] = f"{sleeping_gcloud(tmp_path)}:{runner.env['PATH']}"
    started = time.monotonic()
    code = main(["--project", PROJECT, "jobs"], gcloud=runner, env={"OPS_GCLOUD_TIMEOUT": "1"})
    took = time.monotonic() - started
    _, err = capsys.readouterr()
    assert code == 1 and took < 20, (code, took)
    what, todo = err.strip().splitlines()
    assert what.startswith("ops/flex: error: gcloud dataflow jobs list did not finish within 1 s")
    assert "OPS_GCLOUD_TIMEOUT" in todo
    # The script and the process it started are both gone.
    pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids)
