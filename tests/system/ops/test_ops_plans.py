"""ops/flex: the plan of every command, in dry-run mode and against a recording fake cloud
(tests/support/fake_gcloud.py behind the real Gcloud runner), for idempotency and
stop-at-first-error. Nothing here talks to Google Cloud, and a dry run asks the fake nothing.
"""

from __future__ import annotations

import json
import re
import shlex

import pytest
import yaml

from pipelines.registry import TEMPLATES as REGISTERED
from pipelines.registry import job_module
from tests.support.fake_gcloud import CHECK_JOB_ID
from tests.support.flex import (
    BUCKET,
    BUILDER,
    PROJECT,
    REGION,
    WORKER,
    Result,
    experiments,
    flag,
    ok,
    parameters,
)

REPO = __import__("pathlib").Path(__file__).resolve().parents[3]
TEMPLATES = list(REGISTERED)
STREAMING = [name for name in TEMPLATES if job_module(name).TEMPLATE.streaming]
BATCH = [name for name in TEMPLATES if name not in STREAMING]
# Roles that would give the workers or the build far more than the jobs need.
BROAD_ROLES = {
    "roles/owner",
    "roles/editor",
    "roles/viewer",
    "roles/pubsub.editor",
    "roles/pubsub.admin",
    "roles/storage.admin",
    "roles/bigquery.admin",
    "roles/bigquery.user",
    "roles/dataflow.admin",
    "roles/iam.serviceAccountUser",
    "roles/artifactregistry.admin",
    "roles/cloudbuild.builds.builder",
}
JOB_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,62}[a-z0-9])?$")


def bindings(result: Result) -> set[tuple[str, str, str]]:
    """(resource, member, role) for every role binding a run adds."""
    found = set()
    for c in result.commands:
        if "add-iam-policy-binding" not in c:
            continue
        i = c.index("add-iam-policy-binding")
        resource = "bigquery dataset" if c[0] == "bq" else " ".join(c[1:i])  # e.g. "pubsub topics"
        target = [a for a in c[i + 1 :] if not a.startswith("-")][0]
        found.add((f"{resource} {target}".strip(), flag(c, "member"), flag(c, "role")))
    return found


# ------------------------------------------------------------------------------------------
# setup
# ------------------------------------------------------------------------------------------
def test_setup_creates_everything_with_the_lab_names(flex, tmp_path):
    r = ok(flex("--project", PROJECT, "--csv", str(tmp_path / "mnist.csv"), "setup"))

    apis = r.one("gcloud", "services", "enable")
    for api in [
        "dataflow",
        "compute",
        "storage",
        "artifactregistry",
        "cloudbuild",
        "pubsub",
        "bigquery",
        "bigquerystorage",
        "iam",
        "cloudresourcemanager",
        "logging",
    ]:
        assert f"{api}.googleapis.com" in apis
    assert flag(apis, "project") == PROJECT

    bucket = r.one("gcloud", "storage", "buckets", "create")
    assert bucket[4] == f"gs://{BUCKET}"
    assert flag(bucket, "location") == REGION
    assert "--public-access-prevention" in bucket and "--uniform-bucket-level-access" in bucket

    repo = r.one("gcloud", "artifacts", "repositories", "create")
    assert repo[4] == "dataflow-templates"
    assert flag(repo, "repository-format") == "docker" and flag(repo, "location") == REGION

    topics = {c[4] for c in r.find("gcloud", "pubsub", "topics", "create")}
    assert topics == {
        "mnist_image",
        "mnist_predict",
        "mnist_dead_letter",
        "camera_frames",
        "pedestrian_depth",
        "pedestrian_dead_letter",
    }
    subs = {c[4]: flag(c, "topic") for c in r.find("gcloud", "pubsub", "subscriptions", "create")}
    assert subs["mnist_predict-sub"] == "mnist_predict"  # the lab's consumer reads this one
    assert subs == {f"{t}-sub": t for t in topics}
    for c in r.find("gcloud", "pubsub", "subscriptions", "create"):
        assert flag(c, "expiration-period") == "never"

    dataset = r.one("bq", f"--project_id={PROJECT}", f"--location={REGION}", "mk")
    assert "--dataset" in dataset and dataset[-1] == f"{PROJECT}:MNIST"
    load = r.one("bq", f"--project_id={PROJECT}", f"--location={REGION}", "load")
    assert flag(load, "source_format") == "CSV" and flag(load, "skip_leading_rows") == "1"
    assert load[-3:] == [
        f"{PROJECT}:MNIST.Images",
        f"gs://{BUCKET}/data/mnist.csv",
        "ID:INTEGER,Image:STRING",
    ]
    # The CSV is made by the lab's tool when missing, then uploaded where the load reads it.
    make = [c for c in r.commands if c[1:3] == ["-m", "tools.make_mnist_csv"]]
    assert len(make) == 1
    assert make[0][3:] == ["--split", "test", "--output", str(tmp_path / "mnist.csv")]
    assert r.one("gcloud", "storage", "cp")[3:5] == [
        str(tmp_path / "mnist.csv"),
        f"gs://{BUCKET}/data/mnist.csv",
    ]

    accounts = {c[4] for c in r.find("gcloud", "iam", "service-accounts", "create")}
    assert accounts == {"dataflow-worker", "flex-builder"}
    for account in accounts:
        assert re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", account)


def test_setup_grants_exactly_the_least_privilege_roles(flex, tmp_path):
    r = ok(flex("--project", PROJECT, "--csv", str(tmp_path / "mnist.csv"), "setup"))
    assert bindings(r) == {
        # worker: project level only what has no narrower resource
        (f"projects {PROJECT}", WORKER, "roles/dataflow.worker"),
        (f"projects {PROJECT}", WORKER, "roles/bigquery.jobUser"),
        (f"projects {PROJECT}", WORKER, "roles/bigquery.readSessionUser"),
        # worker: on the resources the jobs touch
        (f"storage buckets gs://{BUCKET}", WORKER, "roles/storage.objectAdmin"),
        ("artifacts repositories dataflow-templates", WORKER, "roles/artifactregistry.reader"),
        (f"bigquery dataset {PROJECT}:MNIST", WORKER, "roles/bigquery.dataEditor"),
        ("pubsub subscriptions mnist_image-sub", WORKER, "roles/pubsub.subscriber"),
        ("pubsub subscriptions mnist_image-sub", WORKER, "roles/pubsub.viewer"),
        ("pubsub subscriptions camera_frames-sub", WORKER, "roles/pubsub.subscriber"),
        ("pubsub subscriptions camera_frames-sub", WORKER, "roles/pubsub.viewer"),
        ("pubsub topics mnist_predict", WORKER, "roles/pubsub.publisher"),
        ("pubsub topics mnist_dead_letter", WORKER, "roles/pubsub.publisher"),
        ("pubsub topics pedestrian_depth", WORKER, "roles/pubsub.publisher"),
        ("pubsub topics pedestrian_dead_letter", WORKER, "roles/pubsub.publisher"),
        # Cloud Build's account
        (f"projects {PROJECT}", BUILDER, "roles/logging.logWriter"),
        ("artifacts repositories dataflow-templates", BUILDER, "roles/artifactregistry.writer"),
        (f"storage buckets gs://{BUCKET}", BUILDER, "roles/storage.objectAdmin"),
    }
    assert not {role for _, _, role in bindings(r)} & BROAD_ROLES
    for c in r.find("gcloud", "projects", "add-iam-policy-binding"):
        assert flag(c, "condition") == "None"  # never prompts on conditional policies
    for c in r.find("gcloud", "artifacts", "repositories", "add-iam-policy-binding"):
        assert flag(c, "location") == REGION


def test_setup_creates_before_it_grants(flex, tmp_path):
    r = ok(flex("--project", PROJECT, "--csv", str(tmp_path / "mnist.csv"), "setup"))
    # The dashboard and alert policies come last: they are granted nothing and need nothing.
    lines = [" ".join(c) for c in r.commands if "monitoring" not in c]
    first_grant = next(i for i, line in enumerate(lines) if "add-iam-policy-binding" in line)
    last_create = max(
        i for i, line in enumerate(lines) if " create " in f" {line} " or " mk " in line
    )
    assert last_create < first_grant


def test_setup_checks_before_every_create(flex, tmp_path):
    r = ok(flex("--project", PROJECT, "--csv", str(tmp_path / "mnist.csv"), "setup"))
    checks = {" ".join(c) for c in r.checks}
    for c in r.commands:
        if "create" in c[:5]:
            name = c[c.index("create") + 1]
            assert any(name in check for check in checks), f"no check before {c}"


def test_setup_skips_making_the_csv_when_it_exists(flex, tmp_path):
    csv = tmp_path / "mnist.csv"
    csv.write_text('ID,Image\n0,"0.0,0.0"\n')
    r = ok(flex("--project", PROJECT, "--csv", str(csv), "setup"))
    assert not [c for c in r.commands if "tools.make_mnist_csv" in c]
    assert r.one("gcloud", "storage", "cp")[3] == str(csv)


def test_project_region_and_bucket_come_from_options_or_environment(flex, tmp_path):
    env = {"PROJECT": "other-project-9", "REGION": "europe-west1", "BUCKET": "gs://my-own-bucket"}
    r = ok(flex("--csv", str(tmp_path / "m.csv"), "setup", env=env))
    bucket = r.one("gcloud", "storage", "buckets", "create")
    assert bucket[4] == "gs://my-own-bucket" and flag(bucket, "location") == "europe-west1"
    assert flag(r.one("gcloud", "services", "enable"), "project") == "other-project-9"
    # Options win over the environment.
    r = ok(
        flex(
            "--project",
            PROJECT,
            "--region",
            "us-east1",
            "--csv",
            str(tmp_path / "m.csv"),
            "setup",
            env=env,
        )
    )
    assert flag(r.one("gcloud", "storage", "buckets", "create"), "location") == "us-east1"
    assert flag(r.one("gcloud", "services", "enable"), "project") == PROJECT


def test_project_defaults_to_the_gcloud_configuration(flex, tmp_path):
    r = ok(flex("--csv", str(tmp_path / "m.csv"), "setup", project="configured-proj"))
    assert r.one("gcloud", "storage", "buckets", "create")[4] == "gs://configured-proj-bucket"


def test_no_project_is_a_clear_error(flex):
    r = flex("setup")
    assert r.returncode != 0 and "no project" in r.stderr and not r.commands


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"WORKER_SA": f"{PROJECT}-DFSA"}, "service account ID"),
        ({"BUILDER_SA": "x" * 31}, "service account ID"),
        ({"PROJECT": "Bad_Project"}, "project ID 'Bad_Project' is not valid"),
    ],
)
def test_invalid_names_stop_before_any_command(flex, env, expected):
    r = flex("setup", env={"PROJECT": PROJECT, **env})
    assert r.returncode != 0 and expected in r.stderr
    assert r.stdout == "" and r.calls == []


# ------------------------------------------------------------------------------------------
# deploy and trigger
# ------------------------------------------------------------------------------------------
def cloudbuild_substitutions() -> set[str]:
    return set(yaml.safe_load((REPO / "cloudbuild.yaml").read_text())["substitutions"])


def test_deploy_submits_cloudbuild_yaml_as_the_build_account(flex):
    r = ok(flex("--project", PROJECT, "deploy"))
    build = r.one("gcloud", "builds", "submit")
    assert build[3] == "."  # ops/flex runs from the repository root
    assert flag(build, "config") == "cloudbuild.yaml"
    assert flag(build, "project") == PROJECT
    assert flag(build, "service-account") == (
        f"projects/{PROJECT}/serviceAccounts/flex-builder@{PROJECT}.iam.gserviceaccount.com"
    )
    assert flag(build, "gcs-source-staging-dir") == f"gs://{BUCKET}/source"
    subs = dict(s.split("=", 1) for s in flag(build, "substitutions").split(","))
    # The account and the worker cap become every spec's defaults, which console launches get.
    assert subs == {
        "_REGION": REGION,
        "_BUCKET": BUCKET,
        "_REPOSITORY": "dataflow-templates",
        "_SERVICE_ACCOUNT": WORKER.split(":", 1)[1],
        "_MAX_WORKERS": "2",
    }
    # Cloud Build rejects substitutions the config does not declare.
    assert set(subs) <= cloudbuild_substitutions()
    assert len(r.commands) == 1


def test_deploy_max_workers_sets_the_specs_worker_cap(flex):
    build = ok(flex("--project", PROJECT, "--max-workers", "5", "deploy")).one(
        "gcloud", "builds", "submit"
    )
    subs = dict(s.split("=", 1) for s in flag(build, "substitutions").split(","))
    assert subs["_MAX_WORKERS"] == "5"


def test_cloudbuild_logs_allow_a_user_specified_account():
    # A build running as its own service account needs an explicit logging choice.
    options = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())["options"]
    assert options.get("logging") in {"CLOUD_LOGGING_ONLY", "GCS_ONLY", "NONE"}


def test_trigger_needs_the_github_repository(flex):
    r = flex("--project", PROJECT, "trigger")
    assert r.returncode != 0 and "--github OWNER/REPO" in r.stderr and not r.commands


def test_trigger_builds_main_with_the_same_substitutions_as_deploy(flex):
    r = ok(flex("--project", PROJECT, "--github", "someone/Dataflow_Lab", "trigger"))
    connection = r.one("gcloud", "builds", "connections", "create", "github")
    assert connection[5] == "github" and flag(connection, "region") == "us-central1"
    link = r.one("gcloud", "builds", "repositories", "create")
    assert flag(link, "remote-uri") == "https://github.com/someone/Dataflow_Lab.git"
    trigger = r.one("gcloud", "builds", "triggers", "create", "github")
    assert flag(trigger, "name") == "flex-templates-main"
    assert flag(trigger, "branch-pattern") == "^main$"
    assert flag(trigger, "build-config") == "cloudbuild.yaml"
    assert flag(trigger, "repository") == (
        f"projects/{PROJECT}/locations/us-central1/connections/github/repositories/{link[4]}"
    )
    deploy = ok(flex("--project", PROJECT, "deploy")).one("gcloud", "builds", "submit")
    for name in ("substitutions", "service-account"):
        assert flag(trigger, name) == flag(deploy, name)
    # Cloud Build's service agent keeps the GitHub token in Secret Manager.
    agent = r.one("gcloud", "projects", "add-iam-policy-binding")
    assert flag(agent, "role") == "roles/secretmanager.admin"
    assert flag(agent, "member").endswith("@gcp-sa-cloudbuild.iam.gserviceaccount.com")
    assert "secretmanager.googleapis.com" in r.one("gcloud", "services", "enable")


def test_trigger_stops_with_the_link_until_github_is_authorised(flex):
    r = flex(
        "--project",
        PROJECT,
        "--github",
        "someone/lab",
        "trigger",
        dry=False,
        stage="PENDING_USER_OAUTH",
        state="present",
    )
    assert r.returncode == 3
    assert "https://github.com/apps/google-cloud-build" in r.stderr
    assert "run the same command again" in r.stderr
    assert not [c for c in r.calls if "triggers" in c and "create" in c]


# ------------------------------------------------------------------------------------------
# run, update, drain
# ------------------------------------------------------------------------------------------
EXPECTED_PARAMETERS = {
    "wordcount": {
        "input": "gs://dataflow-samples/shakespeare/kinglear.txt",
        "output": f"gs://{BUCKET}/result/wordcount",
    },
    "wordcount2": {
        "input": "gs://dataflow-samples/shakespeare/kinglear.txt",
        "output": f"gs://{BUCKET}/result/wordcount2",
        "output2": f"gs://{BUCKET}/result/letters",
    },
    "mnist_batch": {"input": f"{PROJECT}:MNIST.Images", "output": f"{PROJECT}:MNIST.Predict"},
    "mnist_stream": {
        "input_subscription": f"projects/{PROJECT}/subscriptions/mnist_image-sub",
        "output": f"projects/{PROJECT}/topics/mnist_predict",
        "dead_letter": f"projects/{PROJECT}/topics/mnist_dead_letter",
    },
    "pedestrian_depth": {
        "input_subscription": f"projects/{PROJECT}/subscriptions/camera_frames-sub",
        "output": f"projects/{PROJECT}/topics/pedestrian_depth",
        "dead_letter": f"projects/{PROJECT}/topics/pedestrian_dead_letter",
    },
}


@pytest.mark.parametrize("template", TEMPLATES)
def test_run_launches_the_template_with_the_lab_parameters(flex, template):
    r = ok(flex("--project", PROJECT, "run", template))
    launch = r.one("gcloud", "dataflow", "flex-template", "run")
    job = launch[4]
    assert JOB_NAME.match(job), job
    if template in STREAMING:
        assert job == template.replace("_", "-")
        assert "--enable-streaming-engine" in launch
    else:
        assert re.fullmatch(template.replace("_", "-") + r"-\d{8}-\d{6}", job)
        assert "--enable-streaming-engine" not in launch
    assert flag(launch, "template-file-gcs-location") == f"gs://{BUCKET}/templates/{template}.json"
    assert flag(launch, "region") == REGION and flag(launch, "project") == PROJECT
    assert flag(launch, "service-account-email") == WORKER.split(":", 1)[1]
    assert flag(launch, "staging-location") == f"gs://{BUCKET}/staging"
    assert flag(launch, "temp-location") == f"gs://{BUCKET}/temp"
    assert flag(launch, "max-workers") == "2"
    # A template the lab has no resources for gets its parameters from --param alone.
    assert parameters(launch) == EXPECTED_PARAMETERS.get(template, {})
    assert "--update" not in launch
    # The spec is checked for first, so a missing deploy is one clear line.
    assert [c for c in r.checks if c[:4] == ["gcloud", "storage", "objects", "describe"]]


@pytest.mark.parametrize("template", TEMPLATES)
def test_run_parameters_are_declared_by_the_template_metadata(template):
    metadata = REPO / "metadata" / f"{template}.json"
    if not metadata.exists():
        pytest.skip(f"{metadata.name} is not written yet")
    if template not in EXPECTED_PARAMETERS:
        pytest.skip(f"the lab has no resources for {template}: run takes its --param values")
    declared = {p["name"]: p for p in json.loads(metadata.read_text())["parameters"]}
    passed = EXPECTED_PARAMETERS[template]
    assert set(passed) <= set(declared)
    required = {name for name, p in declared.items() if not p.get("isOptional")}
    assert required <= set(passed)


def test_run_param_overrides_and_extra_flags(flex):
    r = ok(
        flex(
            "--project",
            PROJECT,
            "run",
            "mnist_batch",
            "--param",
            "model=gs://lab-b/model",
            "--param",
            "input=gs://lab-b/data/mnist.csv",
            "--max-workers",
            "5",
            "--",
            "--worker-machine-type=n1-standard-4",
        )
    )
    launch = r.one("gcloud", "dataflow", "flex-template", "run")
    assert parameters(launch) == {
        "input": "gs://lab-b/data/mnist.csv",
        "output": f"{PROJECT}:MNIST.Predict",
        "model": "gs://lab-b/model",
    }
    assert flag(launch, "max-workers") == "5"
    assert launch[-1] == "--worker-machine-type=n1-standard-4"


def test_run_parameter_values_with_commas_use_another_separator(flex):
    # An object name may hold a comma (Cloud Storage takes any Unicode but CR and LF).
    r = ok(flex("--project", PROJECT, "run", "wordcount", "--param", "input=gs://lab-b/a,b.txt"))
    launch = r.one("gcloud", "dataflow", "flex-template", "run")
    assert flag(launch, "parameters").startswith("^~^")
    assert parameters(launch)["input"] == "gs://lab-b/a,b.txt"


def test_run_of_a_running_stream_job_does_nothing(flex):
    jobs = [dict(id="2026-01-01_00_00_00-42", name="mnist-stream", state="Running")]
    r = flex(
        "--project",
        PROJECT,
        "run",
        "mnist_stream",
        dry=False,
        state="present",
        jobs=jobs,
    )
    assert r.returncode == 0, r.stderr
    assert "already active" in r.stderr and "ops/flex update mnist_stream" in r.stderr
    assert not [c for c in r.calls if c[1:4] == ["dataflow", "flex-template", "run"]]


def test_run_without_a_registered_template_says_deploy_first(flex):
    r = flex("--project", PROJECT, "run", "wordcount", dry=False)
    assert r.returncode != 0 and "ops/flex deploy" in r.stderr
    assert not [c for c in r.calls if "flex-template" in c]


WALLTIME = "max_workflow_runtime_walltime_seconds="


@pytest.mark.parametrize("template", STREAMING)
def test_stream_runs_stop_after_four_hours_by_default_and_say_how_to_drain(flex, template):
    r = ok(flex("--project", PROJECT, "run", template))
    launch = r.one("gcloud", "dataflow", "flex-template", "run")
    # A service option, which Flex Templates take through --additional-experiments.
    assert experiments(launch) == [WALLTIME + str(4 * 3600)]
    assert not [a for a in launch if a.startswith("--additional-pipeline-options")]
    assert (
        "cancel it after 4 h" in r.stderr
        and "documents this time limit for batch jobs only" in r.stderr
        and f"ops/flex drain {template.replace('_', '-')}" in r.stderr
    )
    assert "streaming_mode_at_least_once" not in experiments(launch)


@pytest.mark.parametrize(
    "hours, option", [("1", WALLTIME + "3600"), ("72", WALLTIME + "259200"), ("0", None)]
)
def test_max_hours_sets_or_lifts_the_limit(flex, hours, option):
    r = ok(flex("--project", PROJECT, "run", "mnist_stream", "--max-hours", hours))
    launch = r.one("gcloud", "dataflow", "flex-template", "run")
    assert experiments(launch) == ([option] if option else [])
    if option is None:
        assert "no time limit" in r.stderr and "ops/flex drain mnist-stream" in r.stderr


@pytest.mark.parametrize("template", BATCH)
def test_batch_runs_have_no_stream_limits(flex, template):
    launch = ok(flex("--project", PROJECT, "run", template)).one(
        "gcloud", "dataflow", "flex-template", "run"
    )
    assert not [a for a in launch if a.startswith(("--additional-", "--flexrs-goal"))]


def test_at_least_once_for_stream_runs_and_updates(flex):
    for command in ("run", "update"):
        r = ok(flex("--project", PROJECT, command, "pedestrian_depth", "--at-least-once"))
        for launch in r.find("gcloud", "dataflow", "flex-template", "run"):
            assert "streaming_mode_at_least_once" in experiments(launch)


def test_flexrs_goal_for_batch_runs(flex):
    launch = ok(
        flex("--project", PROJECT, "run", "mnist_batch", "--flexrs-goal", "COST_OPTIMIZED")
    ).one("gcloud", "dataflow", "flex-template", "run")
    assert flag(launch, "flexrs-goal") == "COST_OPTIMIZED"


CHECK = "graph_validate_only"


def is_check(launch: list[str]) -> bool:
    return CHECK in experiments(launch)


def update_launch(result: Result) -> list[str]:
    """The launch that replaces the job (the other one only checks the graph)."""
    (launch,) = [
        c for c in result.find("gcloud", "dataflow", "flex-template", "run") if not is_check(c)
    ]
    return launch


def check_launch(result: Result) -> list[str]:
    (launch,) = [
        c for c in result.find("gcloud", "dataflow", "flex-template", "run") if is_check(c)
    ]
    return launch


@pytest.mark.parametrize("template", STREAMING)
def test_update_relaunches_the_same_job_in_place(flex, template):
    run = ok(flex("--project", PROJECT, "run", template)).one(
        "gcloud", "dataflow", "flex-template", "run"
    )
    r = ok(flex("--project", PROJECT, "update", template))
    update = update_launch(r)
    assert update[4] == run[4], "the update must keep the job name"
    assert "--update" in update
    assert parameters(update) == parameters(run)
    for name in (
        "template-file-gcs-location",
        "region",
        "service-account-email",
        "staging-location",
        "temp-location",
    ):
        assert flag(update, name) == flag(run, name)
    assert experiments(update) == experiments(run)
    assert "--enable-streaming-engine" in update
    # It looks the running job up first.
    assert [c for c in r.checks if c[:3] == ["gcloud", "dataflow", "jobs"]]


@pytest.mark.parametrize("template", STREAMING)
def test_update_asks_dataflow_to_check_the_graph_before_replacing(flex, template):
    r = ok(flex("--project", PROJECT, "update", template))
    check, update = check_launch(r), update_launch(r)
    assert r.commands.index(check) < r.commands.index(update)
    # The check is the very same update, only validated: same job, flags and parameters.
    assert flag(check, "format") == "json"  # the check's job ID is read from its answer
    assert experiments(check) == [*experiments(update), CHECK]
    same = [a for a in check if not a.startswith(("--format=", "--additional-experiments="))]
    assert same == [a for a in update if not a.startswith("--additional-experiments=")]
    # It waits for the check's verdict, and reads both graphs' step names.
    described = [c for c in r.checks if c[:4] == ["gcloud", "dataflow", "jobs", "describe"]]
    assert any(c[4] == "CHECK_JOB_ID" and "--full" not in c for c in described)
    assert {c[4] for c in described if "--full" in c} == {
        f"JOB_ID_OF_{template.replace('_', '-')}",
        "CHECK_JOB_ID",
    }
    # One describe of the running job serves its streaming mode and its step names.
    running = [c for c in described if c[4] == f"JOB_ID_OF_{template.replace('_', '-')}"]
    assert len(running) == 1
    plan = [shlex.split(line[2:]) for line in r.stdout.splitlines() if line[:2] in ("+ ", "? ")]
    assert plan.index(running[0]) < plan.index(check), "the check needs the job's mode"


def test_update_names_the_steps_the_new_graph_lacks(flex):
    # The dry run plays a graph where Classify became Predict.
    r = ok(flex("--project", PROJECT, "update", "mnist_stream"))
    assert "does not have: Classify" in r.stderr and "only the new graph has: Predict" in r.stderr
    assert "--transform-name-mappings OLD=NEW" in r.stderr
    mapped = ok(
        flex(
            "--project",
            PROJECT,
            "update",
            "mnist_stream",
            "--transform-name-mappings",
            "Classify=Predict",
        )
    )
    assert "does not have" not in mapped.stderr


def test_update_skip_check_replaces_without_checking(flex):
    r = ok(flex("--project", PROJECT, "update", "mnist_stream", "--skip-check"))
    assert len(r.find("gcloud", "dataflow", "flex-template", "run")) == 1
    assert "--update" in update_launch(r)


def test_update_passes_transform_name_mappings(flex):
    r = ok(
        flex(
            "--project",
            PROJECT,
            "update",
            "mnist_stream",
            "--transform-name-mappings",
            "Predict=RunInference,Parse=ParseJson",
        )
    )
    for launch in (update_launch(r), check_launch(r)):
        assert flag(launch, "transform-name-mappings") == "Predict=RunInference,Parse=ParseJson"


def test_update_of_a_batch_template_is_refused(flex):
    r = flex("--project", PROJECT, "update", "wordcount")
    assert r.returncode != 0 and "batch" in r.stderr and not r.commands


def test_update_without_a_running_job_is_a_clear_error(flex):
    r = flex("--project", PROJECT, "update", "mnist_stream", dry=False, state="present")
    assert r.returncode != 0 and "no active job named mnist-stream" in r.stderr
    assert not [c for c in r.calls if "flex-template" in c]


RUNNING = [dict(id="2026-01-01_00_00_00-42", name="mnist-stream", state="Running")]


def test_update_of_a_running_job_checks_then_runs_with_update(flex):
    r = flex(
        "--project",
        PROJECT,
        "update",
        "mnist_stream",
        dry=False,
        state="present",
        jobs=RUNNING,
    )
    assert r.returncode == 0, r.stderr
    launches = [c for c in r.calls if c[1:4] == ["dataflow", "flex-template", "run"]]
    assert [is_check(c) for c in launches] == [True, False]
    assert launches[1][4] == "mnist-stream" and "--update" in launches[1]
    assert "the graph check passed" in r.stderr
    described = [c[4] for c in r.calls if c[1:4] == ["dataflow", "jobs", "describe"]]
    assert described.count(RUNNING[0]["id"]) == 1, described


def test_update_refused_by_the_check_leaves_the_job_alone(flex):
    steps = {
        "2026-01-01_00_00_00-42": ["Read", "Classify", "Classify/Parse", "Publish"],
        CHECK_JOB_ID: ["Read", "Predict", "Publish"],
    }
    r = flex(
        "--project",
        PROJECT,
        "update",
        "mnist_stream",
        dry=False,
        state="present",
        jobs=RUNNING,
        check="JOB_STATE_FAILED",
        steps=steps,
    )
    assert r.returncode == 1
    assert "incompatible" in r.stderr and "mnist-stream is untouched" in r.stderr
    assert "ops/flex logs 2026-01-01_00_00_00-99" in r.stderr
    # Only top-level names count, each once: a composite's parts move with it.
    assert "does not have: Classify\n" in r.stderr.replace("\r", "")
    assert "only the new graph has: Predict" in r.stderr
    launches = [c for c in r.calls if c[1:4] == ["dataflow", "flex-template", "run"]]
    assert len(launches) == 1 and is_check(launches[0])


def test_drain_by_template_looks_up_the_job(flex):
    r = ok(flex("--project", PROJECT, "drain", "mnist_stream"))
    drain = r.one("gcloud", "dataflow", "jobs", "drain")
    assert drain[4] == "JOB_ID_OF_mnist-stream"  # the dry-run stand-in for the looked-up ID
    assert flag(drain, "region") == REGION


def test_drain_by_job_id(flex):
    r = ok(flex("--project", PROJECT, "drain", "2026-01-01_00_00_00-42"))
    assert r.one("gcloud", "dataflow", "jobs", "drain")[4] == "2026-01-01_00_00_00-42"


def test_drain_real_run_uses_the_running_jobs_id_and_is_idempotent(flex):
    jobs = [
        dict(id="2026-01-01_00_00_00-41", name="mnist-stream-old", state="Running"),
        dict(id="2026-01-01_00_00_00-42", name="mnist-stream", state="Running"),
    ]
    r = flex("--project", PROJECT, "drain", "mnist_stream", dry=False, jobs=jobs)
    assert r.returncode == 0, r.stderr
    drains = [c for c in r.calls if c[1:4] == ["dataflow", "jobs", "drain"]]
    assert drains == [
        [
            "gcloud",
            "dataflow",
            "jobs",
            "drain",
            "2026-01-01_00_00_00-42",
            f"--project={PROJECT}",
            f"--region={REGION}",
        ]
    ]
    # Already draining, or gone: nothing to do, and no error.
    for jobs in ([dict(id="2026-01-01_00_00_00-42", name="mnist-stream", state="Draining")], ""):
        r = flex("--project", PROJECT, "drain", "mnist_stream", dry=False, jobs=jobs)
        assert r.returncode == 0, r.stderr
        assert not [c for c in r.calls if c[1:4] == ["dataflow", "jobs", "drain"]]


def test_drain_of_a_batch_template_is_refused(flex):
    r = flex("--project", PROJECT, "drain", "wordcount")
    assert r.returncode != 0 and "batch" in r.stderr


def test_unknown_template_is_a_clear_error(flex):
    r = flex("--project", PROJECT, "run", "mnist")
    assert r.returncode == 2 and "unknown template 'mnist'" in r.stderr and not r.commands


# ------------------------------------------------------------------------------------------
# jobs, logs, budget
# ------------------------------------------------------------------------------------------
def test_jobs_lists_active_jobs_with_template_age_and_workers(flex):
    r = ok(flex("--project", PROJECT, "jobs"))
    listing = [c for c in r.checks if c[:4] == ["gcloud", "dataflow", "jobs", "list"]]
    assert len(listing) == 1 and flag(listing[0], "status") == "active"
    described = {c[4] for c in r.checks if c[:4] == ["gcloud", "dataflow", "jobs", "describe"]}
    assert described == {f"JOB_ID_OF_{t.replace('_', '-')}" for t in STREAMING}
    assert r.commands == []


def test_jobs_real_run_prints_one_row_per_job(flex):
    jobs = [
        dict(
            id="2026-01-01_00_00_00-42",
            name="mnist-stream",
            state="Running",
            template="mnist_stream",
        ),
        dict(id="2026-01-01_00_00_00-43", name="someone-else", state="Running"),
    ]
    r = flex("--project", PROJECT, "jobs", dry=False, jobs=jobs)
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()]
    assert rows[0] == ["ID", "NAME", "TEMPLATE", "TYPE", "AGE", "WORKERS", "STATE"]
    assert rows[1][:4] == ["2026-01-01_00_00_00-42", "mnist-stream", "mnist_stream", "Streaming"]
    assert re.fullmatch(r"\d+d\d+h", rows[1][4]) and rows[1][5:] == ["1/2", "Running"]
    assert rows[2][1:3] == ["someone-else", "-"]
    assert "ops/flex drain" in r.stderr


def test_jobs_with_none_active_says_so(flex):
    r = flex("--project", PROJECT, "jobs", dry=False)
    assert r.returncode == 0 and "no active jobs" in r.stderr and r.stdout == ""


def test_logs_reads_the_jobs_warnings_and_errors_launcher_included(flex):
    r = ok(flex("--project", PROJECT, "logs", "2026-01-01_00_00_00-42"))
    read = r.one("gcloud", "logging", "read")
    assert read[3] == (
        'resource.type="dataflow_step" AND '
        'resource.labels.job_id="2026-01-01_00_00_00-42" AND severity>=WARNING'
    )
    assert flag(read, "project") == PROJECT and flag(read, "order") == "asc"
    assert not r.checks  # a job ID needs no lookup


def test_logs_of_a_template_is_its_newest_job_in_any_state(flex):
    jobs = [
        dict(id="2026-01-02_00_00_00-50", name="wordcount-20260102-000000", state="Failed"),
        dict(id="2026-01-01_00_00_00-42", name="wordcount-20260101-000000", state="Done"),
        dict(id="2026-01-01_00_00_00-41", name="wordcount2-20260101-000000", state="Done"),
    ]
    r = flex("--project", PROJECT, "logs", "wordcount", dry=False, jobs=jobs)
    assert r.returncode == 0, r.stderr
    (listing,) = [c for c in r.calls if c[1:4] == ["dataflow", "jobs", "list"]]
    assert "--status=all" in listing and "--sort-by=~creationTime" in listing
    (read,) = [c for c in r.calls if c[1:3] == ["logging", "read"]]
    assert 'job_id="2026-01-02_00_00_00-50"' in read[3]
    r = flex("--project", PROJECT, "logs", "nobody", dry=False, jobs=jobs)
    assert r.returncode == 1 and "no job named nobody" in r.stderr


def test_budget_alerts_on_the_projects_billing_account(flex):
    r = ok(flex("--project", PROJECT, "budget", "--amount", "25"))
    assert "billingbudgets.googleapis.com" in r.one("gcloud", "services", "enable")
    budget = r.one("gcloud", "billing", "budgets", "create")
    assert flag(budget, "billing-account") == "BILLING_ACCOUNT_ID"
    assert flag(budget, "budget-amount") == "25" and flag(budget, "calendar-period") == "month"
    assert flag(budget, "filter-projects") == f"projects/{PROJECT}"
    assert [a for a in budget if a.startswith("--threshold-rule=")] == [
        "--threshold-rule=percent=0.5",
        "--threshold-rule=percent=0.9",
        "--threshold-rule=percent=1.0",
    ]
    assert "stops nothing" in r.stderr
    real = flex("--project", PROJECT, "budget", "--amount", "25", dry=False)
    assert real.returncode == 0, real.stderr
    created = [c for c in real.calls if c[1:4] == ["billing", "budgets", "create"]]
    assert created and flag(created[0], "billing-account") == "0A0A0A-1B1B1B-2C2C2C"


# ------------------------------------------------------------------------------------------
# teardown
# ------------------------------------------------------------------------------------------
def test_teardown_refuses_while_someone_elses_job_runs(flex):
    jobs = [
        dict(id="2026-01-01_00_00_00-42", name="mnist-stream", state="Running"),
        dict(id="2026-01-01_00_00_00-43", name="nightly-export", state="Running"),
    ]
    r = flex(
        "--project",
        PROJECT,
        "--yes",
        "teardown",
        dry=False,
        state="present",
        jobs=jobs,
    )
    assert r.returncode == 1
    assert (
        "nightly-export (2026-01-01_00_00_00-43)" in r.stderr
        and "then run teardown again" in r.stderr
    )
    assert not [c for c in r.calls if {"delete", "rm", "cancel"} & set(c)]


def test_teardown_cancels_console_launches_of_our_templates(flex):
    # A console launch has the user's job name, and our spec's template label.
    jobs = [
        dict(
            id="2026-01-01_00_00_00-42", name="my-digits", state="Running", template="mnist_stream"
        ),
        dict(id="2026-01-01_00_00_00-44", name="mnist-stream", state="Cancelling"),
    ]
    r = flex(
        "--project",
        PROJECT,
        "--yes",
        "teardown",
        dry=False,
        jobs=jobs,
        state="present",
    )
    cancels = [c for c in r.calls if c[1:4] == ["dataflow", "jobs", "cancel"]]
    assert r.returncode == 0, r.stderr
    # The one already stopping is waited for, not cancelled again.
    assert [c[4:-2] for c in cancels] == [["2026-01-01_00_00_00-42"]]
    last_cancel = max(i for i, c in enumerate(r.calls) if c[1:4] == ["dataflow", "jobs", "cancel"])
    first_delete = min(i for i, c in enumerate(r.calls) if "delete" in c or "rm" in c)
    assert last_cancel < first_delete


def test_teardown_deletes_everything_in_a_safe_order(flex):
    r = ok(flex("--project", PROJECT, "teardown"))
    lines = [" ".join(c) for c in r.commands]

    def at(fragment: str) -> int:
        matches = [i for i, line in enumerate(lines) if fragment in line]
        assert matches, f"teardown never runs {fragment!r}"
        return matches[0]

    cancel = r.one("gcloud", "dataflow", "jobs", "cancel")
    assert {"JOB_ID_OF_mnist-stream", "JOB_ID_OF_pedestrian-depth"} <= set(cancel)
    assert (
        at("dataflow jobs cancel") < at("pubsub subscriptions delete") < at("pubsub topics delete")
    )
    assert at("dataflow jobs cancel") < at("storage rm")
    assert r.one("gcloud", "storage", "rm")[3:5] == ["--recursive", f"gs://{BUCKET}"]
    assert r.one("bq", f"--project_id={PROJECT}", "rm")[-1] == f"{PROJECT}:MNIST"
    assert r.one("gcloud", "artifacts", "repositories", "delete")[4] == "dataflow-templates"
    assert r.one("gcloud", "builds", "triggers", "delete")[4] == "flex-templates-main"
    deleted_subs = {c[4] for c in r.find("gcloud", "pubsub", "subscriptions", "delete")}
    deleted_topics = {c[4] for c in r.find("gcloud", "pubsub", "topics", "delete")}
    assert "mnist_predict-sub" in deleted_subs and len(deleted_topics) == 6
    assert {f"{t}-sub" for t in deleted_topics} == deleted_subs
    removed = {
        (flag(c, "member"), flag(c, "role"))
        for c in r.find("gcloud", "projects", "remove-iam-policy-binding")
    }
    assert (WORKER, "roles/dataflow.worker") in removed and (
        BUILDER,
        "roles/logging.logWriter",
    ) in removed
    accounts = [c[4] for c in r.find("gcloud", "iam", "service-accounts", "delete")]
    assert accounts == [WORKER.split(":")[1], BUILDER.split(":")[1]]
    assert at("remove-iam-policy-binding") < at("service-accounts delete")
    for c in r.commands:
        if "delete" in c and c[0] == "gcloud" and c[1] in {"iam", "artifacts", "builds"}:
            assert "--quiet" in c, c  # never waits for a prompt


def test_teardown_removes_exactly_our_project_level_grants(flex):
    r = flex("--project", PROJECT, "--yes", "teardown", dry=False, state="present")
    assert r.returncode == 0, r.stderr
    assert len(r.called("gcloud", "projects", "get-iam-policy")) == 1
    removed = {
        (flag(c, "member").split("@")[0], flag(c, "role"))
        for c in r.called("gcloud", "projects", "remove-iam-policy-binding")
    }
    assert removed == {
        ("serviceAccount:dataflow-worker", "roles/dataflow.worker"),
        ("serviceAccount:dataflow-worker", "roles/bigquery.jobUser"),
        ("serviceAccount:dataflow-worker", "roles/bigquery.readSessionUser"),
        ("serviceAccount:flex-builder", "roles/logging.logWriter"),
        ("serviceAccount:service-123456789012", "roles/secretmanager.admin"),
    }


def test_teardown_asks_for_yes_when_not_interactive(flex):
    r = flex("--project", PROJECT, "teardown", dry=False, state="present")
    assert r.returncode != 0 and "--yes" in r.stderr and r.calls == []


def test_teardown_of_nothing_deletes_nothing(flex):
    r = flex("--project", PROJECT, "--yes", "teardown", dry=False)
    assert r.returncode == 0, r.stderr
    assert not [c for c in r.calls if "delete" in c or "rm" in c or "cancel" in c]


# ------------------------------------------------------------------------------------------
# real runs against the fake: idempotency and stopping at the first error
# ------------------------------------------------------------------------------------------
def test_second_setup_creates_nothing(flex, tmp_path):
    csv = tmp_path / "mnist.csv"
    csv.write_text("ID,Image\n")
    r = flex("--project", PROJECT, "--csv", str(csv), "setup", dry=False, state="present")
    assert r.returncode == 0, r.stderr
    made = [c for c in r.calls if "create" in c or "mk" in c or "load" in c or "cp" in c]
    assert made == [], made
    # It still makes sure of the bucket's protections and of every role (both idempotent).
    assert [c for c in r.calls if c[1:4] == ["storage", "buckets", "update"]]
    assert len([c for c in r.calls if "add-iam-policy-binding" in c]) == 17


def test_first_setup_runs_what_the_dry_run_printed(flex, tmp_path):
    csv = tmp_path / "mnist.csv"
    csv.write_text("ID,Image\n")
    dry = ok(flex("--project", PROJECT, "--csv", str(csv), "setup"))
    real = flex("--project", PROJECT, "--csv", str(csv), "setup", dry=False)
    assert real.returncode == 0, real.stderr
    changed = [c for c in real.calls if not ({"describe", "show", "list"} & set(c))]
    assert changed == dry.commands


def test_setup_stops_at_the_first_failing_command(flex, tmp_path):
    csv = tmp_path / "mnist.csv"
    csv.write_text("ID,Image\n")
    r = flex(
        "--project",
        PROJECT,
        "--csv",
        str(csv),
        "setup",
        dry=False,
        fail="artifacts repositories create",
    )
    assert r.returncode != 0
    assert "this command failed" in r.stderr
    assert "gcloud artifacts repositories create dataflow-templates" in r.stderr
    assert r.calls[-1][1:4] == ["artifacts", "repositories", "create"], "ran on after the failure"


def test_a_failing_lookup_stops_the_command(flex):
    # The job lookup inside $(...) fails: no launch may follow.
    r = flex(
        "--project",
        PROJECT,
        "run",
        "mnist_stream",
        dry=False,
        state="present",
        fail="dataflow jobs list",
    )
    assert r.returncode != 0 and "dataflow jobs list" in r.stderr
    assert not [c for c in r.calls if "flex-template" in c]
