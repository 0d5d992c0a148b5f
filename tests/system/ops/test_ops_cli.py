"""ops/flex as users run it: the shell entry, its help, the template list from the registry,
the guide that documents it, and the real gcloud and bq accepting every command it prints."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from ops.lab import Catalog, TemplateInfo
from pipelines.registry import TEMPLATES as REGISTERED
from pipelines.registry import job_module
from tests.support.flex import PROJECT, ok, parameters
from tests.support.markers import missing

REPO = Path(__file__).resolve().parents[3]
FLEX = REPO / "ops" / "flex"
DOC = REPO / "docs" / "google-cloud.md"
TEMPLATES = list(REGISTERED)
STREAMING = [name for name in TEMPLATES if job_module(name).TEMPLATE.streaming]


def entry(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"PROJECT", "DRY_RUN"}}
    return subprocess.run(
        [str(FLEX), *args], capture_output=True, text=True, env=env, timeout=120, cwd=REPO
    )


def test_the_entry_lists_the_registry_and_which_templates_stream():
    listed = entry("templates")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == TEMPLATES
    help_text = entry("help").stdout
    assert f"(streaming: {' '.join(STREAMING)})" in help_text


NEW_FLAGS = (
    "--max-hours",
    "--at-least-once",
    "--flexrs-goal",
    "--skip-check",
    "--check-minutes",
    "--amount",
    "--alert-email",
    "--exactly-once",
)
COMMANDS = (
    "setup",
    "deploy",
    "trigger",
    "run",
    "update",
    "drain",
    "status",
    "teardown",
    "jobs",
    "logs",
    "budget",
    "versions",
    "rollback",
    "replay",
    "cost",
    "launcher",
)


def test_help_lists_every_command_and_flag():
    text = entry("help").stdout
    for word in (*COMMANDS, "--dry-run", "--project", "--region", "--bucket", *NEW_FLAGS):
        assert re.search(rf"(^|\s){re.escape(word)}\s", text, re.M), word


def test_the_entry_refuses_in_one_line_with_exit_2():
    done = entry("--project", PROJECT, "--dry-run", "run", "wordcnt")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == (
        "ops/flex: error: unknown template 'wordcnt' (did you mean wordcount? "
        f"templates: {' '.join(TEMPLATES)})"
    )


def test_the_entry_runs_a_dry_run():
    done = entry("--project", PROJECT, "--dry-run", "run", "mnist_stream")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith(
        "+ gcloud dataflow flex-template run mnist-stream "
    )


def test_status_is_jobs(flex):
    assert (
        ok(flex("--project", PROJECT, "status")).stdout
        == ok(flex("--project", PROJECT, "jobs")).stdout
    )


def test_a_new_template_reaches_ops_through_the_registry_alone(flex):
    # What Catalog.from_registry builds from a registry line and its job's TEMPLATE.
    catalog = Catalog(
        {
            "wordcount": Catalog.from_registry()["wordcount"],
            "sensor_alerts": TemplateInfo(
                name="sensor_alerts",
                streaming=True,
                parameters=("input_subscription", "output", "dead_letter"),
                lab={
                    "input_subscription": "projects/{project}/subscriptions/sensors-sub",
                    "output": "projects/{project}/topics/alerts",
                    "dead_letter": "projects/{project}/topics/alerts_dead_letter",
                },
            ),
        }
    )
    r = ok(flex("--project", PROJECT, "run", "sensor_alerts", catalog=catalog))
    launch = r.one("gcloud", "dataflow", "flex-template", "run")
    assert launch[4] == "sensor-alerts" and "--enable-streaming-engine" in launch
    assert (
        parameters(launch)["input_subscription"] == f"projects/{PROJECT}/subscriptions/sensors-sub"
    )
    # setup's topics and grants follow the lab values: nothing else lists them.
    setup = ok(flex("--project", PROJECT, "--csv", "/nonexistent/m.csv", "setup", catalog=catalog))
    assert {c[4] for c in setup.find("gcloud", "pubsub", "topics", "create")} == {
        "sensors",
        "alerts",
        "alerts_dead_letter",
    }
    assert [
        c[4] for c in setup.find("gcloud", "pubsub", "subscriptions", "add-iam-policy-binding")
    ] == [
        "sensors-sub",
        "sensors-sub",
    ]
    r = flex("--project", PROJECT, "run", "mnist_stream", catalog=catalog)
    assert r.returncode == 2 and "unknown template 'mnist_stream'" in r.stderr


def test_the_guide_names_every_role_and_command(flex, tmp_path):
    text = DOC.read_text(encoding="utf-8")
    r = ok(flex("--project", PROJECT, "--csv", str(tmp_path / "m.csv"), "setup"))
    roles = {a.split("=", 1)[1] for c in r.commands for a in c if a.startswith("--role=")}
    roles.add("roles/secretmanager.admin")
    for role in roles:
        assert f"`{role}`" in text, f"{role} is granted but not explained in {DOC.name}"
    for command in COMMANDS:
        assert f"ops/flex {command}" in text, command
    for word in ("--dry-run", *NEW_FLAGS):
        assert word in text
    for template in TEMPLATES:
        assert f"ops/flex run {template}" in text
    for tool in (
        "python -m tools.mnist_producer",
        "python -m tools.mnist_consumer",
        "mnist_predict-sub",
        "Custom template",
    ):
        assert tool in text


ALL_RUNS = [
    ("setup", "--csv", "/nonexistent/mnist.csv"),
    ("deploy",),
    ("trigger", "--github", "someone/lab"),
    ("status",),
    ("teardown",),
    ("drain", "mnist_stream"),
    ("update", "mnist_stream", "--transform-name-mappings", "A=B"),
    (
        "run",
        "mnist_batch",
        "--param",
        "model=gs://lab-b/m,1",
        "--",
        "--worker-machine-type=n1-standard-2",
    ),
    ("versions", "mnist_stream"),
    ("rollback", "mnist_stream", "0f3c2a9e-1b2d-4c5e-8f90-a1b2c3d4e5f6"),
    ("cost", "mnist_stream"),
    ("cost", "2026-01-01_00_00_00-42"),
    ("update", "mnist_stream", "--skip-check", "--at-least-once"),
]
ALL_RUNS += [("run", t) for t in TEMPLATES]
ALL_RUNS += [
    ("jobs",),
    ("logs", "mnist_stream"),
    ("logs", "2026-01-01_00_00_00-42"),
    ("budget", "--amount", "50"),
    ("run", "mnist_stream", "--at-least-once"),
    ("run", "mnist_stream", "--max-hours", "0"),
    ("run", "wordcount", "--flexrs-goal", "COST_OPTIMIZED"),
    ("setup", "--csv", "/nonexistent/mnist.csv", "--alert-email", "staff@example.org"),
    ("launcher",),
    ("jobs", "--max-hours", "2"),
    ("update", "mnist_stream", "--exactly-once"),
]


def cli_env(tmp_path) -> dict:
    config = tmp_path / "gcloud-config"
    config.mkdir(exist_ok=True)
    return {
        **os.environ,
        "CLOUDSDK_CONFIG": str(config),
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        # Never borrow a VM's credentials, never reach the network.
        "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
        "NO_GCE_CHECK": "True",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "CLOUDSDK_CORE_PROJECT": "",
    }


def printed_cli_commands(flex, tool: str) -> list[list[str]]:
    """One printed command of `tool` per command path and set of flags, over every subcommand."""
    shapes = {}
    for args in ALL_RUNS:
        r = ok(flex("--project", PROJECT, *args))
        for argv in r.commands + r.checks:
            if argv[0] != tool:
                continue
            path = tuple(a for a in argv[:5] if not a.startswith("-"))[:4]
            flags = frozenset(a.split("=", 1)[0] for a in argv if a.startswith("-"))
            shapes.setdefault((path, flags), argv)
    return list(shapes.values())


@pytest.mark.slow
def test_gcloud_accepts_every_command_it_is_given(flex, tmp_path):
    """Each printed gcloud command goes through the installed gcloud with no credentials at
    all: gcloud parses it (flags, arguments, choices, flag groups) and stops at "no account",
    before any request. An unknown flag or a malformed argument fails earlier, differently."""
    if shutil.which("gcloud") is None:
        missing("the gcloud CLI is not installed")
    from concurrent.futures import ThreadPoolExecutor

    env = cli_env(tmp_path)
    commands = printed_cli_commands(flex, "gcloud")

    def attempt(argv: list[str]):
        done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
        return argv, done.returncode, done.stderr

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(attempt, commands))
    rejected = [
        (shlex.join(argv), err.strip().splitlines()[-3:])
        for argv, code, err in results
        if code == 0 or "authenticated account" not in err
    ]
    assert not rejected, rejected
    assert len(results) > 35


def test_bq_knows_every_flag_it_is_given(flex, tmp_path):
    """bq asks for credentials before it parses flags, so its own help is the reference:
    global flags (before the command) from `bq --helpfull`, the others from `bq help CMD`."""
    if shutil.which("bq") is None:
        missing("bq (part of the gcloud CLI) is not installed")
    env = cli_env(tmp_path)

    def help_flags(*args: str) -> set[str]:
        text = subprocess.run(
            ["bq", *args], capture_output=True, text=True, env=env, timeout=120
        ).stdout
        return {m.group(2) for m in re.finditer(r"(-\w,)?--(?:\[no\])?(\w+):", text)}

    global_flags = help_flags("--helpfull")
    assert {"project_id", "location"} <= global_flags
    commands = printed_cli_commands(flex, "bq")
    assert {c[c.index(next(a for a in c[1:] if not a.startswith("-")))] for c in commands} == {
        "show",
        "mk",
        "load",
        "add-iam-policy-binding",
        "rm",
    }
    for argv in commands:
        i = next(i for i, a in enumerate(argv) if i > 0 and not a.startswith("-"))
        command_flags = help_flags("help", argv[i])
        for a in argv[1:i]:
            assert a.lstrip("-").split("=")[0] in global_flags, (a, shlex.join(argv))
        for a in argv[i + 1 :]:
            if a.startswith("--"):
                assert a[2:].split("=")[0] in command_flags, (a, shlex.join(argv))
