"""setup: APIs, bucket, registry, topics, dataset, accounts and their least-privilege roles,
then the dashboard and alert policies."""

from __future__ import annotations

from collections.abc import Sequence

from ops.commands import PROG, Context
from ops.commands.monitoring import ensure_monitoring
from ops.gcloud import ROOT, SLOW, say

APIS = (
    "dataflow.googleapis.com",  # the jobs
    "compute.googleapis.com",  # the launcher and worker VMs
    "storage.googleapis.com",  # the bucket
    "artifactregistry.googleapis.com",  # the images
    "cloudbuild.googleapis.com",  # deploy and trigger
    "pubsub.googleapis.com",  # the stream jobs' topics
    "bigquery.googleapis.com",  # MNIST.Images and MNIST.Predict
    "bigquerystorage.googleapis.com",  # mnist_batch's DIRECT_READ (Storage Read API)
    "iam.googleapis.com",  # the service accounts
    "cloudresourcemanager.googleapis.com",  # project-level role bindings
    "logging.googleapis.com",  # job and build logs
    "monitoring.googleapis.com",  # the dashboard and alert policies
)

# Least privilege (docs/google-cloud.md explains each, and why roles/viewer, which Google's
# Flex Template page lists for the default account, is left out). Project-level roles only
# where the permission exists at project level alone; everything else is granted on the
# resource.
WORKER_PROJECT_ROLES = (
    "roles/dataflow.worker",  # lease and report work items, write logs and metrics
    "roles/bigquery.jobUser",  # run the load jobs WriteToBigQuery uses (and EXPORT reads)
    "roles/bigquery.readSessionUser",  # create Storage Read API sessions (DIRECT_READ)
)
BUILDER_PROJECT_ROLES = (
    "roles/logging.logWriter",  # a build running as its own account writes its logs
)
SECRET_ROLE = "roles/secretmanager.admin"  # Cloud Build service agent: stores the GitHub token


def ensure_bucket(ctx: Context) -> None:
    s, g = ctx.settings, ctx.gcloud
    url = f"gs://{s.bucket}"
    if g.exists(["gcloud", "storage", "buckets", "describe", url, *ctx.project]):
        say(f"bucket {url} exists; enforcing public access prevention and uniform access")
        g.run(
            [
                "gcloud",
                "storage",
                "buckets",
                "update",
                url,
                *ctx.project,
                "--public-access-prevention",
                "--uniform-bucket-level-access",
            ],
            quiet=True,
        )
    else:
        g.run(
            [
                "gcloud",
                "storage",
                "buckets",
                "create",
                url,
                *ctx.project,
                f"--location={s.region}",
                "--public-access-prevention",
                "--uniform-bucket-level-access",
            ]
        )


def repository_flags(ctx: Context) -> list[str]:
    return [*ctx.project, f"--location={ctx.settings.region}"]


def ensure_repository(ctx: Context) -> None:
    s, g = ctx.settings, ctx.gcloud
    if not g.exists(
        ["gcloud", "artifacts", "repositories", "describe", s.repository, *repository_flags(ctx)]
    ):
        g.run(
            [
                "gcloud",
                "artifacts",
                "repositories",
                "create",
                s.repository,
                *repository_flags(ctx),
                "--repository-format=docker",
                "--description=Dataflow Flex Template images (ops/flex)",
            ]
        )


def ensure_service_account(ctx: Context, account: str, email: str, display: str) -> None:
    g = ctx.gcloud
    if not g.exists(["gcloud", "iam", "service-accounts", "describe", email, *ctx.project]):
        g.run(
            [
                "gcloud",
                "iam",
                "service-accounts",
                "create",
                account,
                *ctx.project,
                f"--display-name={display}",
            ]
        )


def ensure_topics(ctx: Context) -> None:
    """The stream templates' lab topics, each with a subscription "<topic>-sub": the jobs read
    the input ones, people and tools read the others. A message published to a topic without
    a subscription is lost, hence the dead-letter ones."""
    g = ctx.gcloud
    topics = ctx.catalog.topics()
    for topic in topics:
        if not g.exists(["gcloud", "pubsub", "topics", "describe", topic, *ctx.project]):
            g.run(["gcloud", "pubsub", "topics", "create", topic, *ctx.project])
    for topic in topics:
        sub = f"{topic}-sub"
        if not g.exists(["gcloud", "pubsub", "subscriptions", "describe", sub, *ctx.project]):
            g.run(
                [
                    "gcloud",
                    "pubsub",
                    "subscriptions",
                    "create",
                    sub,
                    *ctx.project,
                    f"--topic={topic}",
                    "--expiration-period=never",
                ]
            )


def python_bin(ctx: Context) -> str:
    if ctx.settings.python:
        return ctx.settings.python
    return ".venv/bin/python" if (ROOT / ".venv" / "bin" / "python").exists() else "python3"


def ensure_images_table(ctx: Context) -> None:
    s, g = ctx.settings, ctx.gcloud
    bq = ["bq", f"--project_id={s.project}"]
    table = f"{s.dataset_ref}.{s.images_table}"
    if not g.exists([*bq, "show", "--dataset", s.dataset_ref]):
        g.run(
            [
                *bq,
                f"--location={s.region}",
                "mk",
                "--dataset",
                f"--description=The course lab's MNIST images ({s.images_table}) and "
                f"predictions ({s.predict_table})",
                s.dataset_ref,
            ]
        )
    if g.exists([*bq, "show", table]):
        say(f"table {table} exists; not loading it again")
        return
    if not g.exists(["gcloud", "storage", "objects", "describe", s.csv_object, *ctx.project]):
        csv = s.csv if s.csv.is_absolute() else ROOT / s.csv
        if not (csv.is_file() and csv.stat().st_size > 0):
            if not csv.parent.is_dir():
                g.run(["mkdir", "-p", str(s.csv.parent)])
            g.run(
                [
                    python_bin(ctx),
                    "-m",
                    "tools.make_mnist_csv",
                    "--split",
                    "test",
                    "--output",
                    str(s.csv),
                ],
                wait=SLOW,
            )
        g.run(["gcloud", "storage", "cp", str(s.csv), s.csv_object, *ctx.project], wait=SLOW)
    g.run(
        [
            *bq,
            f"--location={s.region}",
            "load",
            "--source_format=CSV",
            "--skip_leading_rows=1",
            table,
            s.csv_object,
            "ID:INTEGER,Image:STRING",
        ],
        wait=SLOW,
    )


def bind(
    ctx: Context,
    group: tuple[str, ...],
    resource: str,
    member: str,
    role: str,
    *,
    flags: Sequence[str] = (),
    after: Sequence[str] = (),
) -> None:
    """`gcloud GROUP add-iam-policy-binding RESOURCE`: `role` for `member` on one resource."""
    ctx.gcloud.run(
        [
            "gcloud",
            *group,
            "add-iam-policy-binding",
            resource,
            *flags,
            f"--member={member}",
            f"--role={role}",
            *after,
            "--format=none",
        ],
        iam=True,
    )


def grant_roles(ctx: Context) -> None:
    s = ctx.settings
    project = (("projects",), s.project)
    bucket = (("storage", "buckets"), f"gs://{s.bucket}")
    repository = (("artifacts", "repositories"), s.repository)
    say(f"granting the worker account ({s.worker_email}) its roles")
    for role in WORKER_PROJECT_ROLES:
        bind(ctx, *project, s.worker_member, role, after=("--condition=None",))
    # Temp, staging and output files, the lab's CSV and models: this bucket only.
    bind(ctx, *bucket, s.worker_member, "roles/storage.objectAdmin")
    # The launcher VM and the workers pull the template's image.
    bind(
        ctx,
        *repository,
        s.worker_member,
        "roles/artifactregistry.reader",
        flags=repository_flags(ctx),
    )
    # Read Images, create or truncate Predict (and a dead-letter table): this dataset only.
    ctx.gcloud.run(
        [
            "bq",
            f"--project_id={s.project}",
            "add-iam-policy-binding",
            "--dataset",
            f"--member={s.worker_member}",
            "--role=roles/bigquery.dataEditor",
            s.dataset_ref,
        ],
        iam=True,
    )
    for sub in ctx.catalog.subscriptions_read():
        for role in ("roles/pubsub.subscriber", "roles/pubsub.viewer"):
            bind(ctx, ("pubsub", "subscriptions"), sub, s.worker_member, role, flags=ctx.project)
    for topic in ctx.catalog.topics_written():
        bind(
            ctx,
            ("pubsub", "topics"),
            topic,
            s.worker_member,
            "roles/pubsub.publisher",
            flags=ctx.project,
        )

    say(f"granting the build account ({s.builder_email}) its roles")
    for role in BUILDER_PROJECT_ROLES:
        bind(ctx, *project, s.builder_member, role, after=("--condition=None",))
    # Push the images (and pull the cache).
    bind(
        ctx,
        *repository,
        s.builder_member,
        "roles/artifactregistry.writer",
        flags=repository_flags(ctx),
    )
    # Read the uploaded source, write (overwrite) the template specs and their versions.
    bind(ctx, *bucket, s.builder_member, "roles/storage.objectAdmin")


def setup(ctx: Context) -> int:
    s = ctx.settings
    say(f"setting up project {s.project} in {s.region} (bucket gs://{s.bucket})")
    ctx.gcloud.run(["gcloud", "services", "enable", *APIS, *ctx.project], wait=SLOW)
    ensure_bucket(ctx)
    ensure_repository(ctx)
    ensure_service_account(
        ctx, s.worker_sa, s.worker_email, "Dataflow Flex Template workers (ops/flex)"
    )
    ensure_service_account(
        ctx, s.builder_sa, s.builder_email, "Cloud Build for the Flex Templates (ops/flex)"
    )
    ensure_topics(ctx)
    ensure_images_table(ctx)
    grant_roles(ctx)
    ensure_monitoring(ctx)
    say(f"setup done. Next: {PROG} deploy")
    return 0
