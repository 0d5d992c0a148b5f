"""deploy, trigger, versions and rollback: building the templates and choosing which one runs.

Every build (deploy, or the trigger on a push) registers each template twice, with the same
image: gs://BUCKET/templates/versions/NAME/TAG.json, kept, and gs://BUCKET/templates/NAME.json,
the current one that the console and `run` launch (cloudbuild.yaml, from tools/generate.py).
`rollback NAME TAG` copies a kept version over the current one.
"""

from __future__ import annotations

from ops import answers, names
from ops.commands import PROG, Context
from ops.commands.setup import SECRET_ROLE, repository_flags
from ops.gcloud import ROOT, SLOW, Stop, build_limit, say


def substitutions(ctx: Context) -> str:
    """cloudbuild.yaml's substitutions; the account and worker cap become the specs' defaults."""
    s = ctx.settings
    return (
        f"_REGION={s.region},_BUCKET={s.bucket},_REPOSITORY={s.repository},"
        f"_SERVICE_ACCOUNT={s.worker_email},_MAX_WORKERS={s.max_workers}"
    )


def build_account(ctx: Context) -> str:
    return f"projects/{ctx.settings.project}/serviceAccounts/{ctx.settings.builder_email}"


def deploy(ctx: Context) -> int:
    s, g = ctx.settings, ctx.gcloud
    if not (ROOT / "cloudbuild.yaml").is_file():
        raise Stop(f"no cloudbuild.yaml in {ROOT}")
    found = g.exists(
        ["gcloud", "artifacts", "repositories", "describe", s.repository, *repository_flags(ctx)]
    )
    if not found and not g.dry_run:
        raise Stop(
            f"no Artifact Registry repository {s.repository} in {s.region}: run {PROG} setup first"
        )
    say(
        f"building and registering {' '.join(ctx.catalog.names)} with Cloud Build in "
        f"{s.build_region} (15-30 min)"
    )
    # The source goes to our bucket, not to a default PROJECT_cloudbuild bucket; the build runs
    # as the build account, whose roles setup granted.
    g.run(
        [
            "gcloud",
            "builds",
            "submit",
            ".",
            f"--project={s.project}",
            f"--region={s.build_region}",
            "--config=cloudbuild.yaml",
            f"--substitutions={substitutions(ctx)}",
            f"--service-account={build_account(ctx)}",
            f"--gcs-source-staging-dir=gs://{s.bucket}/source",
        ],
        wait=build_limit(),
    )
    say(
        f"templates registered at gs://{s.bucket}/templates/NAME.json, each build's also at "
        f"templates/versions/NAME/TAG.json ({PROG} versions NAME). Next: {PROG} run TEMPLATE"
    )
    return 0


def repository_link(github: str) -> str:
    """The name of the linked repository: the GitHub name in a resource ID's alphabet."""
    return github.split("/", 1)[1].lower().replace("_", "-").replace(".", "-")


def need_github(ctx: Context) -> str:
    if not ctx.settings.github:
        raise names.Refused(
            "trigger needs the GitHub repository: --github OWNER/REPO (or GITHUB_REPO)"
        )
    return ctx.settings.github


def project_number(ctx: Context) -> str:
    return ctx.gcloud.read(
        ["gcloud", "projects", "describe", ctx.settings.project],
        {"projectNumber": "123456789012"},
        answers.project_number,
    )


def cloud_build_agent(ctx: Context) -> str:
    return f"serviceAccount:service-{project_number(ctx)}@gcp-sa-cloudbuild.iam.gserviceaccount.com"


def trigger(ctx: Context) -> int:
    s, g = ctx.settings, ctx.gcloud
    github = need_github(ctx)
    link = repository_link(github)
    where = [f"--project={s.project}", f"--region={s.build_region}"]
    g.run(["gcloud", "services", "enable", "secretmanager.googleapis.com", *ctx.project], wait=SLOW)
    # Cloud Build stores the GitHub token it is given in Secret Manager (Google's documented
    # role: https://cloud.google.com/build/docs/automating-builds/github/connect-repo-github).
    g.run(
        [
            "gcloud",
            "projects",
            "add-iam-policy-binding",
            s.project,
            f"--member={cloud_build_agent(ctx)}",
            f"--role={SECRET_ROLE}",
            "--condition=None",
            "--format=none",
        ],
        iam=True,
    )
    if not g.exists(["gcloud", "builds", "connections", "describe", s.connection, *where]):
        g.run(["gcloud", "builds", "connections", "create", "github", s.connection, *where])
    connection = g.read(
        ["gcloud", "builds", "connections", "describe", s.connection, *where],
        {"installationState": {"stage": "COMPLETE"}},
        answers.connection,
    )
    if connection.stage != "COMPLETE":
        uri = connection.action_uri or (
            f"https://console.cloud.google.com/cloud-build/repositories/2nd-gen?project={s.project}"
        )
        say(
            f"the GitHub connection '{s.connection}' is waiting for you "
            f"(state: {connection.stage or 'unknown'})."
        )
        say(f"open this link, authorise Cloud Build and install its GitHub App on {github}:")
        print(f"    {uri}", file=g.err)
        say(f"then run the same command again: {PROG} trigger --github {github}")
        raise Stop("", 3)
    if not g.exists(
        [
            "gcloud",
            "builds",
            "repositories",
            "describe",
            link,
            f"--connection={s.connection}",
            *where,
        ]
    ):
        g.run(
            [
                "gcloud",
                "builds",
                "repositories",
                "create",
                link,
                *where,
                f"--connection={s.connection}",
                f"--remote-uri=https://github.com/{github}.git",
            ]
        )
    repo_path = (
        f"projects/{s.project}/locations/{s.build_region}/connections/{s.connection}"
        f"/repositories/{link}"
    )
    if g.exists(["gcloud", "builds", "triggers", "describe", s.trigger_name, *where]):
        say(
            f"trigger {s.trigger_name} exists (to change it: gcloud builds triggers delete "
            f"{s.trigger_name} --region={s.build_region}, then run this again)"
        )
        return 0
    g.run(
        [
            "gcloud",
            "builds",
            "triggers",
            "create",
            "github",
            f"--name={s.trigger_name}",
            *where,
            f"--repository={repo_path}",
            "--branch-pattern=^main$",
            "--build-config=cloudbuild.yaml",
            f"--substitutions={substitutions(ctx)}",
            f"--service-account={build_account(ctx)}",
            "--description=Build and register the Dataflow Flex Templates on every push to main",
        ]
    )
    say(f"every push to main of {github} now rebuilds and re-registers the templates")
    return 0


# --- versions and rollback ---------------------------------------------------------------


def version_objects(ctx: Context, template: str) -> list[answers.Version]:
    """The kept versions' objects, as the JSON API names their fields (--raw): name,
    timeCreated, metadata.image (which tools/register_template.py sets)."""
    s = ctx.settings
    stand_in = [
        {
            "name": f"templates/versions/{template}/TAG.json",
            "timeCreated": "2026-01-01T00:00:00.000Z",
            "metadata": {"image": f"IMAGE_ROOT/{template}:TAG"},
        }
    ]
    return ctx.gcloud.read(
        [
            "gcloud",
            "storage",
            "objects",
            "list",
            f"{s.versions_folder(template)}*.json",
            *ctx.project,
            "--raw",
        ],
        stand_in,
        answers.version_list,
    )


def versions(ctx: Context, template: str) -> int:
    s = ctx.settings
    found = version_objects(ctx, template)
    if not found:
        say(f"no kept versions of {template} in {s.versions_folder(template)}: {PROG} deploy")
        return 0
    out = ctx.gcloud.out
    print(f"{'TAG':<38} {'CREATED':<20} IMAGE", file=out)
    for item in found:
        created = (item.created or "?")[:19].replace("T", " ")
        print(f"{item.tag:<38} {created:<20} {item.image or '?'}", file=out)
    say(f"the current spec is {s.spec(template)}; to go back: {PROG} rollback {template} TAG")
    return 0


def rollback(ctx: Context, template: str, tag: str) -> int:
    s, g = ctx.settings, ctx.gcloud
    names.tag(tag)
    kept = s.version_spec(template, tag)
    # A dry run shows the rollback of a version that exists.
    g.assume = "present"
    if not g.exists(["gcloud", "storage", "objects", "describe", kept, *ctx.project]):
        raise Stop(f"no version {tag} of {template} at {kept} (see {PROG} versions {template})")
    # Only a Flex Template spec naming an image may become the one that launches.
    spec = g.read(
        ["gcloud", "storage", "cat", kept, *ctx.project],
        {
            "image": f"{s.region}-docker.pkg.dev/{s.project}/{s.repository}/{template}:{tag}",
            "sdkInfo": {"language": "PYTHON"},
            "metadata": {},
        },
        answers.template_spec,
        document=True,
    )
    g.run(["gcloud", "storage", "cp", kept, s.spec(template), *ctx.project])
    say(
        f"{template} now launches {spec.image} (version {tag}), from the console "
        f"and {PROG} run; a running stream job keeps its image until {PROG} update {template}"
    )
    return 0
