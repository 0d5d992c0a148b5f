"""teardown: stop our jobs, then delete what setup, deploy, trigger and run made."""

from __future__ import annotations

import sys

from ops import answers
from ops.answers import JobSummary
from ops.commands import PROG, Context
from ops.commands.build import cloud_build_agent, repository_link
from ops.commands.jobs import active_jobs, job_details
from ops.commands.monitoring import remove_monitoring
from ops.commands.setup import BUILDER_PROJECT_ROLES, SECRET_ROLE, WORKER_PROJECT_ROLES
from ops.gcloud import Stop, say

STOP_WAIT_SECONDS = 900
STOP_POLL_SECONDS = 20


def ours(ctx: Context, name: str) -> bool:
    """Is this a job name that run starts?"""
    for template in ctx.catalog.templates.values():
        base = template.job_base
        if template.streaming and name == base:
            return True
        stamp = name.removeprefix(f"{base}-")
        if not template.streaming and stamp != name and len(stamp) == 15 and stamp[8] == "-":
            if stamp.replace("-", "").isdigit():
                return True
    return False


def our_active_jobs(ctx: Context) -> list[JobSummary]:
    """Our active jobs: started by run (their names), or from one of our specs (their
    template label, which console launches carry too). Anyone else's jobs stop teardown
    before it deletes anything they may be using."""
    found, others = [], []
    for job in active_jobs(ctx, dry_present=True):
        if ours(ctx, job.name) or job_details(ctx, job)[0] in ctx.catalog:
            found.append(job)
        else:
            others.append(f"{job.name} ({job.id})")
    if others:
        raise Stop(
            f"other jobs are active in {ctx.settings.region}: {' '.join(others)}. They may read "
            f"or write what teardown deletes: drain them ({PROG} drain ID) or cancel them "
            f"(gcloud dataflow jobs cancel ID --region={ctx.settings.region}), then run "
            f"teardown again"
        )
    return found


def stop_jobs(ctx: Context) -> None:
    g = ctx.gcloud
    jobs = our_active_jobs(ctx)
    cancel = [j.id for j in jobs if j.state != "Cancelling"]
    # Cancel, not drain: everything they read and write is deleted next.
    if cancel:
        g.run(["gcloud", "dataflow", "jobs", "cancel", *cancel, *ctx.project_region])
    if g.dry_run:
        return
    # The jobs hold the topics and the bucket; wait until they have let go.
    waiting = {j.id for j in jobs}
    waited = 0
    while waiting:
        active = {j.id for j in active_jobs(ctx, dry_present=False)}
        waiting &= active
        if not waiting:
            return
        if waited >= STOP_WAIT_SECONDS:
            raise Stop(
                f"jobs still stopping after 15 minutes: {' '.join(sorted(waiting))} "
                "(run teardown again later)"
            )
        say(f"waiting for {len(waiting)} job(s) to stop: {' '.join(sorted(waiting))}")
        g.sleep(STOP_POLL_SECONDS)
        waited += STOP_POLL_SECONDS


def remove_project_roles(ctx: Context, grants: dict[str, tuple[str, ...]]) -> None:
    """Each member's project-level roles of ours that the project's policy still holds."""
    s, g = ctx.settings, ctx.gcloud
    stand_in = {
        "etag": "ETAG",
        "bindings": [
            {"role": role, "members": [member]}
            for member, roles in grants.items()
            for role in roles
        ],
    }
    policy = g.read(
        ["gcloud", "projects", "get-iam-policy", s.project], stand_in, answers.policy_roles
    )
    for member, roles in grants.items():
        remove_member_roles(ctx, policy, member, roles)


def remove_member_roles(
    ctx: Context, policy: dict[str, set[str]], member: str, roles: tuple[str, ...]
) -> None:
    s, g = ctx.settings, ctx.gcloud
    present = policy.get(member, set())
    for role in roles:
        if role in present:
            g.run(
                [
                    "gcloud",
                    "projects",
                    "remove-iam-policy-binding",
                    s.project,
                    f"--member={member}",
                    f"--role={role}",
                    "--condition=None",
                    "--format=none",
                ],
                quiet=True,
            )


def confirm(ctx: Context) -> None:
    s = ctx.settings
    if ctx.gcloud.dry_run or s.yes:
        return
    if not sys.stdin.isatty():
        raise Stop("teardown deletes data; pass --yes to confirm when not running interactively")
    print(
        f"This deletes gs://{s.bucket} (every object, every kept template version), the "
        f"{s.dataset} dataset, the topics and subscriptions,\nthe {s.repository} repository "
        f"(every image), the trigger and the service accounts of project {s.project}.",
        file=sys.stderr,
    )
    if input("Type the project ID to confirm: ") != s.project:
        raise Stop("not confirmed; nothing was deleted")


def teardown(ctx: Context) -> int:
    s, g = ctx.settings, ctx.gcloud
    confirm(ctx)
    g.assume = "present"
    say(f"tearing down project {s.project} in {s.region} (bucket gs://{s.bucket})")
    stop_jobs(ctx)
    remove_monitoring(ctx)
    where = [f"--project={s.project}", f"--region={s.build_region}"]
    if g.exists(["gcloud", "builds", "triggers", "describe", s.trigger_name, *where]):
        g.run(["gcloud", "builds", "triggers", "delete", s.trigger_name, *where, "--quiet"])
    if g.exists(["gcloud", "builds", "connections", "describe", s.connection, *where]):
        link = repository_link(s.github) if s.github else "REPOSITORY_LINK"
        links = g.read(
            [
                "gcloud",
                "builds",
                "repositories",
                "list",
                f"--connection={s.connection}",
                *where,
            ],
            [
                {
                    "name": f"projects/{s.project}/locations/{s.build_region}/connections/"
                    f"{s.connection}/repositories/{link}"
                }
            ],
            lambda answer: answers.named_list(answer, "repositories"),
        )
        for name in links:
            g.run(
                [
                    "gcloud",
                    "builds",
                    "repositories",
                    "delete",
                    name.rsplit("/", 1)[-1],
                    f"--connection={s.connection}",
                    *where,
                    "--quiet",
                ]
            )
        g.run(["gcloud", "builds", "connections", "delete", s.connection, *where, "--quiet"])

    topics = ctx.catalog.topics()
    for topic in topics:
        if g.exists(
            ["gcloud", "pubsub", "subscriptions", "describe", f"{topic}-sub", *ctx.project]
        ):
            g.run(["gcloud", "pubsub", "subscriptions", "delete", f"{topic}-sub", *ctx.project])
    for topic in topics:
        if g.exists(["gcloud", "pubsub", "topics", "describe", topic, *ctx.project]):
            g.run(["gcloud", "pubsub", "topics", "delete", topic, *ctx.project])
    bq = ["bq", f"--project_id={s.project}"]
    if g.exists([*bq, "show", "--dataset", s.dataset_ref]):
        g.run([*bq, "rm", "--recursive", "--force", "--dataset", s.dataset_ref])
    repo = ["gcloud", "artifacts", "repositories"]
    location = [*ctx.project, f"--location={s.region}"]
    if g.exists([*repo, "describe", s.repository, *location]):
        g.run([*repo, "delete", s.repository, *location, "--quiet"])
    if g.exists(["gcloud", "storage", "buckets", "describe", f"gs://{s.bucket}", *ctx.project]):
        g.run(["gcloud", "storage", "rm", "--recursive", f"gs://{s.bucket}", *ctx.project])

    # Project-level bindings outlive a deleted account: remove them first.
    remove_project_roles(
        ctx,
        {
            s.worker_member: WORKER_PROJECT_ROLES,
            s.builder_member: BUILDER_PROJECT_ROLES,
            cloud_build_agent(ctx): (SECRET_ROLE,),
        },
    )
    for email in (s.worker_email, s.builder_email):
        if g.exists(["gcloud", "iam", "service-accounts", "describe", email, *ctx.project]):
            g.run(["gcloud", "iam", "service-accounts", "delete", email, *ctx.project, "--quiet"])
    say("teardown done. The APIs stay enabled (they cost nothing idle); to remove every trace,")
    say(f"delete the project: gcloud projects delete {s.project}")
    return 0
