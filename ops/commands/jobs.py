"""run, update, drain, jobs (alias status) and logs: starting, replacing, stopping and reading
the jobs."""

from __future__ import annotations

from datetime import UTC, datetime

from ops import answers, names
from ops.answers import AT_LEAST_ONCE, Job, JobSummary, streaming_mode
from ops.commands import PROG, Context
from ops.gcloud import SLOW, Stop, say
from ops.lab import TemplateInfo

# A service option: Dataflow itself cancels the job at the limit, whether or not anyone is
# watching. Flex Templates take service options through --additional-experiments
# (https://cloud.google.com/dataflow/docs/reference/service-options). Google documents it for
# batch jobs ("stop long-running jobs"); nothing found says a stream job honours it, nor
# whether an update's new job counts from its own start: hence `jobs` flags every stream job
# older than --max-hours (STREAM_LIMIT_NOTE).
WALLTIME_OPTION = "max_workflow_runtime_walltime_seconds"
STREAM_LIMIT_NOTE = (
    "Google documents this time limit for batch jobs only: check with ops/flex jobs, which "
    "flags a stream job running longer"
)
# Dataflow's own compatibility check: a job that validates the replacement and replaces
# nothing (https://cloud.google.com/dataflow/docs/guides/updating-a-pipeline#validate).
GRAPH_CHECK = "graph_validate_only"
FINAL_STATES = {
    "JOB_STATE_DONE",
    "JOB_STATE_FAILED",
    "JOB_STATE_CANCELLED",
    "JOB_STATE_UPDATED",
    "JOB_STATE_DRAINED",
}
CHECK_POLL_SECONDS = 15


# --- the launch command ------------------------------------------------------------------


def parameters(ctx: Context, template: TemplateInfo) -> dict[str, str]:
    """The lab's values for the template, then each --param over them."""
    values = template.lab_values(ctx.settings.lab_names())
    for override in ctx.options.params:
        key, _, value = override.partition("=")
        values[key] = value
    return values


def parameters_flag(values: dict[str, str]) -> list[str]:
    """--parameters=K=V,K=V; gcloud's ^D^ prefix switches the separator when a value holds a
    comma (gcloud topic escaping). gcloud refuses an empty --parameters=."""
    if not values:
        return []
    words = [f"{k}={v}" for k, v in values.items()]
    separator = ","
    if any("," in w for w in words):
        joined = "".join(words)
        separator = next((d for d in "~|;#!" if d not in joined), "")
        if not separator:
            raise names.Refused("cannot pass parameters holding commas and all of ~|;#!")
        return [f"--parameters=^{separator}^" + separator.join(words)]
    return ["--parameters=" + ",".join(words)]


def experiments(
    ctx: Context, template: TemplateInfo, *more: str, at_least_once: bool | None = None
) -> list[str]:
    """at_least_once: the mode update chose; None: what the command line says."""
    found = []
    if template.streaming:
        if ctx.settings.max_hours > 0:
            found.append(f"{WALLTIME_OPTION}={ctx.settings.max_hours * 3600}")
        if ctx.options.at_least_once if at_least_once is None else at_least_once:
            found.append(AT_LEAST_ONCE)
    found += more
    return [f"--additional-experiments={','.join(found)}"] if found else []


def launch_argv(
    ctx: Context,
    template: TemplateInfo,
    job: str,
    *extra: str,
    check: bool = False,
    at_least_once: bool | None = None,
) -> list[str]:
    s = ctx.settings
    argv = [
        "gcloud",
        "dataflow",
        "flex-template",
        "run",
        job,
        *ctx.project_region,
        f"--template-file-gcs-location={s.spec(template.name)}",
        f"--service-account-email={s.worker_email}",
        f"--staging-location=gs://{s.bucket}/staging",
        f"--temp-location=gs://{s.bucket}/temp",
        f"--max-workers={s.max_workers}",
    ]
    # What keeps the job's bill bounded.
    if template.streaming:
        argv.append("--enable-streaming-engine")
    elif ctx.options.flexrs_goal:
        argv.append(f"--flexrs-goal={ctx.options.flexrs_goal}")
    argv += experiments(
        ctx, template, *([GRAPH_CHECK] if check else []), at_least_once=at_least_once
    )
    argv += parameters_flag(parameters(ctx, template))
    return [*argv, *extra, *ctx.options.extra]


# --- looking jobs up ---------------------------------------------------------------------


def stand_in_job(name: str, state: str = "Running") -> dict:
    return {
        "id": f"JOB_ID_OF_{name}",
        "name": name,
        "type": "Streaming",
        "creationTime": "2026-01-01 00:00:00",
        "state": state,
    }


def active_jobs(ctx: Context, *, dry_present: bool) -> list[JobSummary]:
    """The active jobs in the region (gcloud's list form: id, name, type, creationTime,
    state). A dry run plays the stream jobs that run starts, or none."""
    stand_in = (
        [stand_in_job(ctx.catalog[t].job_base) for t in ctx.catalog.streaming]
        if dry_present
        else []
    )
    return ctx.gcloud.read(
        ["gcloud", "dataflow", "jobs", "list", *ctx.project_region, "--status=active"],
        stand_in,
        answers.job_list,
    )


def active_job(ctx: Context, name: str, *, dry_present: bool) -> JobSummary | None:
    return next((j for j in active_jobs(ctx, dry_present=dry_present) if j.name == name), None)


def describe(ctx: Context, job_id: str, stand_in: dict, full: bool = False) -> Job:
    argv = ["gcloud", "dataflow", "jobs", "describe", job_id, *ctx.project_region]
    return ctx.gcloud.read([*argv, "--full"] if full else argv, stand_in, answers.job)


def job_details(ctx: Context, job: JobSummary) -> tuple[str, str, str]:
    """(template label, workers at start, workers at most) of a job."""
    label = next((t for t in ctx.catalog.names if ctx.catalog[t].job_base == job.name), None)
    stand_in = {
        "id": job.id,
        "labels": {"template": label} if label else {},
        "environment": {
            "workerPools": [{"numWorkers": 1, "autoscalingSettings": {"maxNumWorkers": 2}}]
        },
    }
    found = describe(ctx, job.id, stand_in, full=True)
    return (found.template, *found.workers)


def running_minutes(created: object, now: datetime | None = None) -> int | None:
    """Minutes since a creation time of gcloud's list form ("2026-01-01 00:00:00", UTC); None
    when it is not one."""
    try:
        start = datetime.strptime(created, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except (TypeError, ValueError):
        return None
    return int(((now or datetime.now(UTC)) - start).total_seconds() // 60)


def age(created: str, now: datetime | None = None) -> str:
    """A creation time ("2026-01-01 00:00:00", UTC) -> "3h12m", or ? when it does not parse."""
    minutes = running_minutes(created, now)
    if minutes is None:
        return "?"
    if minutes >= 1440:
        return f"{minutes // 1440}d{minutes % 1440 // 60}h"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def need_spec(ctx: Context, template: str) -> None:
    s, g = ctx.settings, ctx.gcloud
    found = g.exists(["gcloud", "storage", "objects", "describe", s.spec(template), *ctx.project])
    if not found and not g.dry_run:
        raise Stop(
            f"template {template} is not registered at {s.spec(template)}: run {PROG} deploy first"
        )


def say_how_to_stop(ctx: Context, job: str) -> None:
    hours = ctx.settings.max_hours
    if hours > 0:
        say(
            f"{job} bills until it stops: it asks Dataflow to cancel it after {hours} h "
            f"(--max-hours; {STREAM_LIMIT_NOTE}); to stop it without losing what it holds: "
            f"{PROG} drain {job}"
        )
    else:
        say(
            f"{job} bills until it stops, and has no time limit (--max-hours 0): "
            f"{PROG} drain {job} when done"
        )


# --- the commands ------------------------------------------------------------------------


def run(ctx: Context, template: TemplateInfo) -> int:
    s = ctx.settings
    if ctx.options.job_name:
        job = ctx.options.job_name
    elif template.streaming:
        # A fixed name, so that update and drain find it.
        job = template.job_base
    else:
        job = f"{template.job_base}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    names.job_name(job)
    need_spec(ctx, template.name)
    if template.streaming:
        found = active_job(ctx, job, dry_present=False)
        if found:
            say(f"stream job {job} is already active ({found.id} {found.state}); nothing to do.")
            say(f"to replace it in place with the current template: {PROG} update {template.name}")
            return 0
    ctx.gcloud.run(launch_argv(ctx, template, job), wait=SLOW)
    say(
        f"launched {job}; watch it at "
        f"https://console.cloud.google.com/dataflow/jobs/{s.region}?project={s.project}"
    )
    if template.streaming:
        say_how_to_stop(ctx, job)
    return 0


# What a dry run plays for the running job's steps; its graph check renames Classify to Predict.
PLAYED_STEPS = ("Read", "Classify", "Publish", "DeadLetters")


def steps_stand_in(job_id: str, names_) -> dict:
    return {
        "id": job_id,
        "pipelineDescription": {"originalPipelineTransform": [{"name": n} for n in names_]},
    }


def running_job(ctx: Context, job_id: str) -> Job:
    """The job update replaces, described once (--full) for both what update needs of it:
    its streaming mode (choose_mode) and its step names (check_update)."""
    stand_in = {
        **steps_stand_in(job_id, PLAYED_STEPS),
        "environment": {"streamingMode": "STREAMING_MODE_EXACTLY_ONCE"},
    }
    return describe(ctx, job_id, stand_in, full=True)


def check_update(
    ctx: Context,
    template: TemplateInfo,
    job: str,
    running: Job,
    extra: list[str],
    at_least_once: bool,
):
    """Dataflow's own compatibility check, then the step names the running job has and the new
    graph lacks. Stops unless the check passed."""
    g = ctx.gcloud
    say(
        f"asking Dataflow whether the new {template.name} can replace {job} "
        f"(a validation-only job; it replaces nothing)"
    )
    check = g.launch(
        launch_argv(ctx, template, job, *extra, check=True, at_least_once=at_least_once),
        {"job": {"id": "CHECK_JOB_ID"}},
        answers.launched_job_id,
        wait=SLOW,
    )
    waited = 0
    while True:
        state = describe(ctx, check, {"id": check, "currentState": "JOB_STATE_DONE"}).state
        if state in FINAL_STATES:
            break
        if waited >= ctx.settings.check_minutes * 60:
            raise Stop(
                f"the graph check ({check}) has not finished after "
                f"{ctx.settings.check_minutes} min: see {PROG} logs {check}; run again, or "
                f"pass --skip-check"
            )
        g.sleep(CHECK_POLL_SECONDS)
        waited += CHECK_POLL_SECONDS
    old = running.steps
    new = describe(
        ctx,
        check,
        steps_stand_in(check, [n.replace("Classify", "Predict") for n in PLAYED_STEPS]),
        full=True,
    ).steps
    mapped = {
        pair.split("=", 1)[0]
        for pair in (ctx.options.transform_name_mappings or "").split(",")
        if pair
    }
    missing = [n for n in old if n not in new and n not in mapped]
    if missing and new:
        say(f"steps of the running {job} that the new graph does not have: {', '.join(missing)}")
        added = [n for n in new if n not in old]
        say(f"steps only the new graph has: {', '.join(added) or 'none'}")
        say(
            f"if a step was renamed, map it: {PROG} update {template.name} "
            "--transform-name-mappings OLD=NEW"
        )
    if state != "JOB_STATE_DONE":
        raise Stop(
            f"Dataflow found the new {template.name} incompatible with the running {job} "
            f"(check {check}: {state.removeprefix('JOB_STATE_') or 'state unknown'}); {job} is "
            "untouched. "
            f"Why: {PROG} logs {check}"
        )
    say(f"the graph check passed ({check})")


def choose_mode(ctx: Context, job: str, described: Job) -> bool:
    """The streaming mode of the replacement: --at-least-once or --exactly-once when given,
    else the running job's own (the spec's default, exactly once, would silently drop
    an at-least-once job's mode)."""
    running = streaming_mode(described.raw)
    shown = {True: "at least once", False: "exactly once", None: "unknown"}
    if ctx.options.at_least_once or ctx.options.exactly_once:
        chosen = ctx.options.at_least_once
        flag = "--at-least-once" if chosen else "--exactly-once"
        say(f"streaming mode: {shown[chosen]} ({flag}; the running {job}: {shown[running]})")
        return chosen
    if running is None:
        raise Stop(
            f"cannot read the streaming mode of the running {job} ({described.id}): pass "
            f"--at-least-once or --exactly-once"
        )
    say(
        f"streaming mode: {shown[running]}, as the running {job} "
        "(--at-least-once or --exactly-once to change it)"
    )
    return running


def update(ctx: Context, template: TemplateInfo) -> int:
    s = ctx.settings
    if not template.streaming:
        raise names.Refused(
            f"{template.name} is a batch template: only stream jobs can be updated in place"
        )
    job = ctx.options.job_name or template.job_base
    names.job_name(job)
    need_spec(ctx, template.name)
    found = active_job(ctx, job, dry_present=True)
    if not found:
        raise Stop(
            f"no active job named {job} in {s.region}: start it with {PROG} run {template.name}"
        )
    running = running_job(ctx, found.id)
    at_least_once = choose_mode(ctx, job, running)
    extra = ["--update"]
    if ctx.options.transform_name_mappings:
        extra.append(f"--transform-name-mappings={ctx.options.transform_name_mappings}")
    if ctx.options.skip_check:
        say(
            f"not checking the new graph first (--skip-check): an incompatible one is refused "
            f"by Dataflow, and {job} keeps running"
        )
    else:
        check_update(ctx, template, job, running, extra, at_least_once)
    say(f"updating {job} ({found.id} {found.state}) in place with {s.spec(template.name)}")
    ctx.gcloud.run(launch_argv(ctx, template, job, *extra, at_least_once=at_least_once), wait=SLOW)
    say("Dataflow starts a replacement job with the same name and moves the state over")
    say_how_to_stop(ctx, job)
    return 0


def drain(ctx: Context, target: str) -> int:
    s, g = ctx.settings, ctx.gcloud
    if names.is_job_id(target):
        g.run(["gcloud", "dataflow", "jobs", "drain", target, *ctx.project_region])
        return 0
    if target in ctx.catalog:
        template = ctx.catalog[target]
        if not template.streaming:
            raise names.Refused(
                f"{target} is a batch template: batch jobs finish on their own "
                f"(cancel: gcloud dataflow jobs cancel ID)"
            )
        job = template.job_base
    else:
        job = target
    found = active_job(ctx, job, dry_present=True)
    if not found:
        say(f"no active job named {job} in {s.region}: nothing to drain")
        return 0
    if found.state in ("Draining", "Cancelling"):
        say(f"job {job} ({found.id}) is already {found.state.lower()}")
        return 0
    g.run(["gcloud", "dataflow", "jobs", "drain", found.id, *ctx.project_region])
    say(
        f"draining {job} ({found.id}): it stops reading, finishes what it holds, then ends "
        f"(gcloud dataflow jobs describe {found.id} --region={s.region})"
    )
    return 0


ROW = "{:<36} {:<28} {:<18} {:<10} {:<9} {:<8} {}"


def jobs(ctx: Context) -> int:
    listing = active_jobs(ctx, dry_present=True)
    if not listing:
        say(f"no active jobs in {ctx.settings.region}")
        return 0
    out = ctx.gcloud.out
    print(ROW.format("ID", "NAME", "TEMPLATE", "TYPE", "AGE", "WORKERS", "STATE"), file=out)
    for job in listing:
        template, workers, most = job_details(ctx, job)
        print(
            ROW.format(
                job.id,
                job.name,
                template or "-",
                job.type or "?",
                age(job.created),
                f"{workers}/{most}",
                job.state or "?",
            ),
            file=out,
        )
    say(f"WORKERS: at start/at most. Stream jobs bill until stopped: {PROG} drain NAME|ID")
    for line in overdue(ctx, listing):
        say(line)
    return 0


def overdue(ctx: Context, listing: list[JobSummary], now: datetime | None = None) -> list[str]:
    """A line per stream job running longer than --max-hours, with the command that stops it:
    the time limit passed at launch is not documented for stream jobs (STREAM_LIMIT_NOTE)."""
    hours = ctx.settings.max_hours
    found = []
    for job in listing:
        if job.type != "Streaming":
            continue
        minutes = running_minutes(job.created, now)
        if hours > 0 and minutes is not None and minutes > hours * 60:
            found.append(
                f"OVER {hours} h: stream job {job.name} ({job.id}) has run "
                f"{age(job.created, now)}; stop it: {PROG} drain {job.id}"
            )
    return found


def resolve_job_id(ctx: Context, target: str) -> str:
    """The newest job (any state) that the argument names: a job ID, a template, or a job
    name."""
    if names.is_job_id(target):
        return target
    base = ctx.catalog[target].job_base if target in ctx.catalog else None
    shown = base or target
    listing = ctx.gcloud.read(
        [
            "gcloud",
            "dataflow",
            "jobs",
            "list",
            *ctx.project_region,
            "--status=all",
            "--sort-by=~creationTime",
        ],
        [{"id": f"JOB_ID_OF_{shown}", "name": shown}],
        answers.job_list,
    )

    def named(name: str) -> bool:
        if name == target:
            return True
        if base is None:
            return False
        stamp = name.removeprefix(f"{base}-")
        return name == base or (
            stamp != name
            and len(stamp) == 15
            and stamp[8] == "-"
            and stamp.replace("-", "").isdigit()
        )

    for job in listing:
        if named(job.name):
            return job.id
    raise Stop(
        f"no job named {target} in {ctx.settings.region} ({PROG} jobs lists the active ones)"
    )


def logs(ctx: Context, target: str) -> int:
    job_id = resolve_job_id(ctx, target)
    say(
        f"warnings and errors of job {job_id}, oldest first; the launcher's are those of "
        f"dataflow.googleapis.com/launcher"
    )
    # One filter for all of a job's logs: the launcher VM, the service's job messages, workers.
    ctx.gcloud.run(
        [
            "gcloud",
            "logging",
            "read",
            f'resource.type="dataflow_step" AND resource.labels.job_id="{job_id}" '
            "AND severity>=WARNING",
            *ctx.project,
            "--freshness=30d",
            "--order=asc",
            "--limit=200",
            "--format=table(timestamp,severity,logName.scope(logs),textPayload,jsonPayload.message)",
        ]
    )
    return 0
