"""replay and cost: two day-two commands over a stream job's dead letters and a job's bill.

Their logic lives elsewhere (tools/replay_dead_letters.py and ops/cost.py); these commands
only find what they work on and hand it over.
"""

from __future__ import annotations

import importlib

from ops import answers, names
from ops.commands import PROG, Context
from ops.commands.jobs import describe, resolve_job_id
from ops.commands.setup import python_bin
from ops.gcloud import say
from ops.lab import TemplateInfo

# The replay pulls and republishes until the dead-letter subscription is empty: a backlog of
# days takes minutes, not the seconds of a gcloud read.
REPLAY_SECONDS = 3600


def replay(ctx: Context, template: TemplateInfo) -> int:
    """Publish the messages of the template's dead-letter subscription to its input topic
    again (after the cause is fixed)."""
    s = ctx.settings
    dead_letter = template.dead_letter_topic()
    topic = template.input_topic()
    if not template.streaming or not dead_letter or not topic:
        replayable = [t for t in ctx.catalog.streaming if ctx.catalog[t].dead_letter_topic()]
        raise names.Refused(
            f"{template.name} has no dead-letter topic and input topic to replay between "
            f"(replay is for: {', '.join(replayable)})"
        )
    subscription = f"projects/{s.project}/subscriptions/{dead_letter}-sub"
    say(f"replaying the dead letters of {template.name}: {subscription} -> topic {topic}")
    ctx.gcloud.run(
        [
            python_bin(ctx),
            "-m",
            "tools.replay_dead_letters",
            "--subscription",
            subscription,
            "--topic",
            f"projects/{s.project}/topics/{topic}",
        ],
        wait=REPLAY_SECONDS,
    )
    return 0


def cost(ctx: Context, target: str) -> int:
    """What a job has used and what that costs: ops.cost.report over the job's description
    and its metrics."""
    job_id = resolve_job_id(ctx, target)
    # --full: only the full view has `environment`, which says how Streaming Engine bills.
    job = describe(
        ctx, job_id, {"id": job_id, "name": target, "currentState": "JOB_STATE_RUNNING"}, full=True
    )
    # `dataflow metrics` exists only in gcloud's beta (and alpha) track, not in GA.
    metrics = ctx.gcloud.read(
        [
            "gcloud",
            "beta",
            "dataflow",
            "metrics",
            "list",
            job_id,
            *ctx.project_region,
            "--source=all",
        ],
        [],
        answers.metrics,
    )
    if ctx.gcloud.dry_run:
        say(f"a real run prints {PROG}'s cost report of {job_id} from these two answers")
        return 0
    report = importlib.import_module("ops.cost").report
    print(report(job.raw, metrics), file=ctx.gcloud.out)
    return 0
