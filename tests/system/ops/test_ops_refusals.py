"""Every value ops/flex cannot use is refused before anything runs: one line naming it, exit 2,
no command printed, nothing asked of the cloud, and never an echo of a long or multi-line
value."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ops import names
from tests.support.flex import PROJECT

LONG = "a" * 10_000


def refused(result, message: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert len(lines[0]) < 400, "the refusal echoes a long value"
    assert not result.commands and not result.checks and result.calls == []


@pytest.mark.parametrize(
    "args, message",
    [
        # The careless user.
        (["run", "wordcnt"], "unknown template 'wordcnt' (did you mean wordcount?"),
        (["run", "wordcount", "--param", "outptu=gs://b/x"], "did you mean output?"),
        (["drain", "my job"], "'my job' is not a template, a job name"),
        (["logs", "my job"], "'my job' is not a template, a job name"),
        (["cost", "my job"], "'my job' is not a template, a job name"),
        (["update", "mnist_steam"], "did you mean mnist_stream?"),
        (["versions", "mnist"], "unknown template 'mnist'"),
        (["rollback", "mnist_stream"], "rollback needs a template and a tag"),
        (["rollback", "mnist_stream", "Not A Tag"], "tag 'Not A Tag' is not valid"),
        (["rollback", "mnist_stram", "abc"], "did you mean mnist_stream?"),
        (["replay", "wordcount"], "wordcount has no dead-letter topic"),
        (["run", "wordcount", "--job-name", "My_Job"], "job name 'My_Job' is not valid"),
        (["run", "wordcount", "--param", "output"], "--param needs KEY=VALUE"),
        (["run", "wordcount", "--param", "output=a\nb"], "holds a control character"),
        (["run", "wordcount", "--", "--labels=a\x1bb"], "holds a control character"),
        (["jobs", "extra"], "jobs takes no argument"),
        (["frobnicate"], "unknown command 'frobnicate'"),
        (["status", "--skip-check"], "--skip-check is for update"),
        # Numbers and flags that do not fit the command.
        (["run", "mnist_stream", "--max-hours", "-1"], "--max-hours must be a whole number"),
        (["run", "mnist_stream", "--max-hours", "1.5"], "--max-hours must be a whole number"),
        (["run", "mnist_stream", "--max-hours", "4h"], "--max-hours must be a whole number"),
        (["run", "mnist_stream", "--max-hours", "99999"], "--max-hours must be a whole number"),
        (["run", "mnist_stream", "--max-hours"], "--max-hours needs a value"),
        (["run", "wordcount", "--max-workers", "0"], "--max-workers must be a whole number"),
        (["run", "wordcount", "--max-workers", "two"], "--max-workers must be a whole number"),
        (["run", "wordcount", "--at-least-once"], "wordcount is a batch template"),
        (["drain", "mnist_stream", "--at-least-once"], "--at-least-once is for run and update"),
        (["run", "wordcount", "--flexrs-goal", "CHEAP"], "COST_OPTIMIZED or SPEED_OPTIMIZED"),
        (["run", "wordcount", "--flexrs-goal", "COST_OPTIMISED"], "did you mean COST_OPTIMIZED"),
        (["run", "mnist_stream", "--flexrs-goal", "COST_OPTIMIZED"], "mnist_stream streams"),
        (["update", "mnist_stream", "--check-minutes", "0"], "--check-minutes must be"),
        (["run", "wordcount", "--max-hours", "2"], "wordcount is a batch template"),
        (["drain", "mnist_stream", "--max-hours", "2"], "--max-hours is for run, update and jobs"),
        (["jobs", "--max-hours", "two"], "--max-hours must be a whole number of hours"),
        (["drain", "mnist_stream", "--exactly-once"], "--exactly-once is for run and update"),
        (["update", "wordcount", "--exactly-once"], "--exactly-once is for stream jobs"),
        (
            ["update", "mnist_stream", "--at-least-once", "--exactly-once"],
            "--at-least-once and --exactly-once exclude each other",
        ),
        (["setup", "--alert-email", "staff"], "--alert-email must be one e-mail address"),
        (["setup", "--alert-email", "a@b@c.org"], "--alert-email must be one e-mail address"),
        (["setup", "--alert-email", "a b@c.org"], "--alert-email must be one e-mail address"),
        (["setup", "--alert-email", "a@" + "b" * 300 + ".org"], "--alert-email is too long"),
        (["setup", "--alert-email", "a@b.org\nx"], "--alert-email holds a control character"),
        (["run", "mnist_stream", "--alert-email", "a@b.org"], "--alert-email is for setup"),
        (["setup", "--alert-email"], "--alert-email needs a value"),
        (["launcher", "now"], "launcher takes no argument"),
        (["launcher", "--max-hours", "2"], "--max-hours is for run, update and jobs"),
        (["run", "mnist_stream", "--skip-check"], "--skip-check is for update"),
        (["run", "mnist_stream", "--check-minutes", "5"], "--check-minutes is for update"),
        (["update", "mnist_stream", "--transform-name-mappings", "Classify"], "OLD=NEW"),
        (["update", "mnist_stream", "--transform-name-mappings", "A=B,"], "OLD=NEW"),
        (["update", "wordcount"], "wordcount is a batch template"),
        (["drain", "wordcount"], "wordcount is a batch template"),
        (["budget", "--amount", "0"], "--amount must be a positive amount"),
        (["budget", "--amount", "-5"], "--amount must be a positive amount"),
        (["budget", "--amount", "12.345"], "--amount must be a positive amount"),
        (["budget", "--amount", "ten"], "--amount must be a positive amount"),
        (["budget"], "budget needs --amount"),
        (["run", "wordcount", "--amount", "5"], "--amount is for budget"),
        (["logs"], "logs needs a template, job name or job ID"),
        (["jobs", "--frobnicate"], "unknown option: --frobnicate"),
        (["setup", "--", "--x"], "flags after -- are for run and update only"),
        (["trigger", "--github", "not a repo"], "it must be OWNER/REPO"),
        (["trigger"], "trigger needs the GitHub repository"),
        # --param values through the template's own launch checks (issue 24).
        (["run", "mnist_stream", "--param", "output=not a topic"], "--param output: expected"),
        (["run", "mnist_stream", "--param", "model_check_seconds=abc"], "whole number from 1"),
        (["run", "mnist_stream", "--param", "model_check_seconds=-5"], "out of range"),
        (
            ["run", "mnist_stream", "--param", f"input_subscription=projects/{PROJECT}/topics/t"],
            "--param input_subscription: expected projects/PROJECT/subscriptions/",
        ),
        (["run", "mnist_batch", "--param", "read_method=FAST"], "--param read_method: invalid"),
        (["run", "wordcount", "--param", "output=/tmp/counts"], "cannot use a local path"),
        (["run", "wordcount", "--param", "output="], "--param output: is required"),
        (["update", "mnist_stream", "--param", "output=x"], "--param output: expected"),
        # Invisible characters: a command that reads differently from what it runs.
        (["run", "wordcount", "--param", "output=gs://b-1/\u202etxt.exe"], "bidirectional"),
        (["run", "wordcount", "--job-name", "word\u200bcount"], "zero-width character"),
        (["drain", "mnist\u2066stream"], "bidirectional control"),
    ],
)
def test_a_bad_value_is_one_line_and_exit_2(flex, args, message):
    refused(flex("--project", PROJECT, *args), message)


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--project", "lab-project\n123", "project ID holds a control character"),
        ("--project", LONG, "project ID is too long (10000 characters"),
        ("--project", "Bad_Project", "project ID 'Bad_Project' is not valid"),
        ("--project", "a" * 31, "project ID"),
        ("--bucket", "gs://Bad Bucket", "bucket name 'Bad Bucket' is not valid"),
        ("--bucket", "google-things", "Google reserves"),
        ("--bucket", "x\ty", "bucket name holds a control character"),
        ("--region", "us central1", "region 'us central1' is not valid"),
        ("--region", "us-central1\r", "region holds a control character"),
        ("--build-region", "mars", "build region 'mars' is not valid"),
    ],
)
def test_bad_names_are_refused_without_being_echoed(flex, option, value, message):
    result = flex(option, value, "setup", env={"PROJECT": PROJECT} if option != "--project" else {})
    refused(result, message)
    assert LONG not in result.stderr and "\n" not in result.stderr.strip()


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("WORKER_SA", f"{PROJECT}-DFSA", "service account ID (WORKER_SA)"),
        ("BUILDER_SA", "x" * 31, "service account ID (BUILDER_SA)"),
        ("REPOSITORY", "Bad Repo", "REPOSITORY 'Bad Repo' is not valid"),
        ("DATASET", "MNIST;drop", "DATASET 'MNIST;drop' is not valid"),
        ("MAX_HOURS", "forever", "--max-hours must be a whole number"),
        ("PROJECT", "x" * 5000, "project ID is too long"),
        ("OPS_GCLOUD_TIMEOUT", "abc", "OPS_GCLOUD_TIMEOUT must be a whole number of seconds"),
        ("OPS_GCLOUD_TIMEOUT", "0", "OPS_GCLOUD_TIMEOUT must be a whole number of seconds"),
        ("OPS_GCLOUD_TIMEOUT", "1e3", "OPS_GCLOUD_TIMEOUT must be a whole number of seconds"),
        ("IMAGES_TABLE", "Images\u200b", "IMAGES_TABLE holds a zero-width character"),
    ],
)
def test_bad_environment_values_are_refused(flex, variable, value, message):
    refused(flex("setup", env={"PROJECT": PROJECT, variable: value}), message)


def test_no_project_is_one_line_exit_2(flex):
    refused(flex("setup"), "no project: pass --project ID")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    option=st.sampled_from(["--project", "--bucket", "--region", "--job-name", "--param"]),
    value=st.text(min_size=1, max_size=3000).filter(
        lambda v: any(ord(c) < 32 or 127 <= ord(c) < 160 for c in v)
    ),
)
def test_any_control_character_is_refused_in_one_short_line(flex, option, value):
    result = flex("--project", PROJECT, "run", "wordcount", option, value)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert len(line) < 400
    assert result.calls == [] and not result.commands


INVISIBLE = names.BIDI_CONTROLS + names.ZERO_WIDTH


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    option=st.sampled_from(["--project", "--bucket", "--region", "--job-name", "--param", "--csv"]),
    before=st.text(max_size=20),
    char=st.sampled_from(INVISIBLE),
    after=st.text(max_size=20),
)
def test_bidi_controls_and_zero_width_characters_are_refused_anywhere(
    flex, option, before, char, after
):
    result = flex("--project", PROJECT, "run", "wordcount", option, before + char + after)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert len(line) < 400 and char not in line
    assert result.calls == [] and not result.commands
