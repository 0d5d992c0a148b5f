"""The names ops works with: the course lab's, ours where the lab has none. Each can be set
by an option or an environment variable (options win); each is checked before anything runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ops import names
from ops.gcloud import DEFAULT_TIMEOUT, TIMEOUT_VARIABLE
from ops.names import Refused

DEFAULT_REGION = "northamerica-northeast2"
# Cloud Build may restrict a new project to a few regions; us-central1 is always among them
# (https://cloud.google.com/build/docs/locations#restricted_regions_for_some_projects).
# The build pushes to the Artifact Registry repository in REGION wherever it runs.
DEFAULT_BUILD_REGION = "us-central1"
DEFAULT_CSV = "out/mnist.csv"  # under out/: ignored by git, gcloud builds submit and docker
DEFAULT_MAX_WORKERS = "2"
# A stream job bills until it is stopped: by default Dataflow stops it after this many hours.
DEFAULT_MAX_HOURS = "4"
DEFAULT_CHECK_MINUTES = "20"

# Environment variable -> default. The lab's worker account is "$PROJECT-DFSA": upper case is
# not allowed in an account ID (6-30 characters, [a-z][a-z0-9-]*[a-z0-9]) and a long project
# ID makes it too long, hence dataflow-worker.
ENVIRONMENT = {
    "REPOSITORY": "dataflow-templates",  # Artifact Registry; cloudbuild.yaml's _REPOSITORY
    "DATASET": "MNIST",
    "IMAGES_TABLE": "Images",
    "PREDICT_TABLE": "Predict",
    "WORKER_SA": "dataflow-worker",
    "BUILDER_SA": "flex-builder",
    "TRIGGER_NAME": "flex-templates-main",
    "CONNECTION": "github",
}


@dataclass
class Options:
    """What the command line says (None: not given)."""

    command: str = "help"
    args: list[str] = field(default_factory=list)
    project: str | None = None
    region: str | None = None
    bucket: str | None = None
    build_region: str | None = None
    csv: str | None = None
    github: str | None = None
    job_name: str | None = None
    params: list[str] = field(default_factory=list)
    max_workers: str | None = None
    transform_name_mappings: str | None = None
    max_hours: str | None = None
    at_least_once: bool = False
    exactly_once: bool = False
    flexrs_goal: str | None = None
    skip_check: bool = False
    check_minutes: str | None = None
    amount: str | None = None
    alert_email: str | None = None
    dry_run: bool = False
    yes: bool = False
    extra: list[str] = field(default_factory=list)


@dataclass
class Settings:
    project: str
    region: str
    bucket: str
    build_region: str
    csv: Path
    repository: str
    dataset: str
    images_table: str
    predict_table: str
    worker_sa: str
    builder_sa: str
    trigger_name: str
    connection: str
    max_workers: int
    max_hours: int
    check_minutes: int
    dry_run: bool
    yes: bool
    github: str | None = None
    python: str | None = None

    @property
    def worker_email(self) -> str:
        return f"{self.worker_sa}@{self.project}.iam.gserviceaccount.com"

    @property
    def builder_email(self) -> str:
        return f"{self.builder_sa}@{self.project}.iam.gserviceaccount.com"

    @property
    def worker_member(self) -> str:
        return f"serviceAccount:{self.worker_email}"

    @property
    def builder_member(self) -> str:
        return f"serviceAccount:{self.builder_email}"

    @property
    def dataset_ref(self) -> str:
        return f"{self.project}:{self.dataset}"

    @property
    def csv_object(self) -> str:
        return f"gs://{self.bucket}/data/mnist.csv"

    def lab_names(self) -> dict[str, str]:
        """The fields of the templates' lab values."""
        return {
            "project": self.project,
            "bucket": self.bucket,
            "dataset": self.dataset,
            "images_table": self.images_table,
            "predict_table": self.predict_table,
        }

    def spec(self, template: str) -> str:
        return f"gs://{self.bucket}/templates/{template}.json"

    def version_spec(self, template: str, tag: str) -> str:
        return f"{self.versions_folder(template)}{tag}.json"

    def versions_folder(self, template: str) -> str:
        return f"gs://{self.bucket}/templates/versions/{template}/"


def gcloud_timeout(env: dict) -> int:
    """OPS_GCLOUD_TIMEOUT: how long a gcloud call may take (slow calls get longer, see
    ops/gcloud.py)."""
    return names.whole_number(
        TIMEOUT_VARIABLE, env.get(TIMEOUT_VARIABLE) or str(DEFAULT_TIMEOUT), 1, 86400, "seconds"
    )


def flag(value: str | None, env: dict, variable: str, default: str) -> str:
    """An option, else the environment variable, else the default."""
    if value is not None:
        return value
    found = env.get(variable)
    return found if found else default


def truthy(text: str | None) -> bool:
    return text not in (None, "", "0")


def resolve(options: Options, env: dict, configured_project) -> Settings:
    """Settings from the options, the environment and (for the project, last) gcloud's local
    configuration. Raises Refused for any value that cannot be right."""
    project = options.project or env.get("PROJECT") or env.get("GOOGLE_CLOUD_PROJECT") or ""
    if not project:
        project = configured_project()
    if not project:
        raise Refused(
            "no project: pass --project ID, set PROJECT, or run: gcloud config set project ID"
        )
    names.project_id(project)
    region = names.region(flag(options.region, env, "REGION", DEFAULT_REGION))
    build_region = names.region(
        flag(options.build_region, env, "BUILD_REGION", DEFAULT_BUILD_REGION), "build region"
    )
    bucket = flag(options.bucket, env, "BUCKET", "")
    names.check_text("bucket name", bucket)
    bucket = bucket.removeprefix("gs://").removesuffix("/") or f"{project}-bucket"
    names.bucket(bucket)
    csv = flag(options.csv, env, "CSV", "")
    names.check_text("--csv", csv)
    # The default is the repository's; a path given is the user's, from where they are.
    csv_path = Path(DEFAULT_CSV) if not csv else Path(os.path.abspath(csv))
    values = {key: env.get(key) or default for key, default in ENVIRONMENT.items()}
    for variable in ("WORKER_SA", "BUILDER_SA"):
        names.account_id(values[variable], variable)
    for variable in ("REPOSITORY", "TRIGGER_NAME", "CONNECTION"):
        names.resource_id(variable, values[variable])
    names.dataset("DATASET", values["DATASET"])
    for variable in ("IMAGES_TABLE", "PREDICT_TABLE"):
        names.table(variable, values[variable])
    python = env.get("PYTHON") or None
    if python:
        names.check_text("PYTHON", python)
    github = flag(options.github, env, "GITHUB_REPO", "") or None
    return Settings(
        project=project,
        region=region,
        bucket=bucket,
        build_region=build_region,
        csv=csv_path,
        repository=values["REPOSITORY"],
        dataset=values["DATASET"],
        images_table=values["IMAGES_TABLE"],
        predict_table=values["PREDICT_TABLE"],
        worker_sa=values["WORKER_SA"],
        builder_sa=values["BUILDER_SA"],
        trigger_name=values["TRIGGER_NAME"],
        connection=values["CONNECTION"],
        max_workers=names.whole_number(
            "--max-workers",
            flag(options.max_workers, env, "MAX_WORKERS", DEFAULT_MAX_WORKERS),
            1,
            9999,
        ),
        max_hours=names.whole_number(
            "--max-hours",
            flag(options.max_hours, env, "MAX_HOURS", DEFAULT_MAX_HOURS),
            0,
            9999,
            "hours",
        ),
        check_minutes=names.whole_number(
            "--check-minutes",
            flag(options.check_minutes, env, "CHECK_MINUTES", DEFAULT_CHECK_MINUTES),
            1,
            999,
            "minutes",
        ),
        dry_run=options.dry_run or truthy(env.get("DRY_RUN")),
        yes=options.yes or truthy(env.get("YES")),
        github=names.github_repo(github) if github else None,
        python=python,
    )
