"""ops/flex's command line: parse, check every value, then run one command.

Nothing runs (and nothing is asked of Google Cloud) until every value has passed its check:
a value that cannot be right is one line naming it, exit 2.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable

from ops import names
from ops.commands import Context
from ops.gcloud import (
    DEFAULT_TIMEOUT,
    PROG,
    SLOW,
    TIMEOUT_VARIABLE,
    CommandFailed,
    Gcloud,
    Stop,
)
from ops.lab import Catalog, TemplateInfo
from ops.names import Refused
from ops.settings import (
    DEFAULT_BUILD_REGION,
    DEFAULT_CHECK_MINUTES,
    DEFAULT_CSV,
    DEFAULT_MAX_HOURS,
    DEFAULT_MAX_WORKERS,
    DEFAULT_REGION,
    ENVIRONMENT,
    Options,
    gcloud_timeout,
    resolve,
)
from pipelines.core.params import ParameterError, check_value

# Options that take a value -> the Options field.
VALUED = {
    "--project": "project",
    "--region": "region",
    "--bucket": "bucket",
    "--build-region": "build_region",
    "--csv": "csv",
    "--github": "github",
    "--job-name": "job_name",
    "--param": "params",
    "--max-workers": "max_workers",
    "--transform-name-mappings": "transform_name_mappings",
    "--max-hours": "max_hours",
    "--flexrs-goal": "flexrs_goal",
    "--check-minutes": "check_minutes",
    "--amount": "amount",
    "--alert-email": "alert_email",
}
SWITCHES = {
    "--at-least-once": "at_least_once",
    "--exactly-once": "exactly_once",
    "--skip-check": "skip_check",
    "--dry-run": "dry_run",
    "--yes": "yes",
    "-y": "yes",
}
ALIASES = {"status": "jobs"}
COMMANDS = (
    "setup",
    "deploy",
    "trigger",
    "run",
    "update",
    "drain",
    "jobs",
    "status",
    "logs",
    "versions",
    "rollback",
    "replay",
    "cost",
    "budget",
    "launcher",
    "teardown",
    "templates",
    "help",
)
FLEXRS_GOALS = ("COST_OPTIMIZED", "SPEED_OPTIMIZED")
# An address a notification channel takes: one @, a dotted domain; at most 254 characters.
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


def usage(catalog: Catalog) -> str:
    from ops.commands.day2 import REPLAY_SECONDS

    env = {key: os.environ.get(key) or default for key, default in ENVIRONMENT.items()}
    dataset, images = env["DATASET"], env["IMAGES_TABLE"]
    return f"""\
usage: {PROG} [options] COMMAND [ARGS] [-- EXTRA_GCLOUD_FLAGS]

commands:
  setup                 enable APIs; create the bucket (public access prevention, uniform
                        access), the Artifact Registry repository, the topics and
                        subscriptions, the {dataset} dataset and its {images} table (loaded
                        from the lab's CSV), the worker and build service accounts and
                        their least-privilege roles; a Cloud Monitoring dashboard and alert
                        policies (ops/monitoring/*.json; --alert-email adds an e-mail)
  deploy                build and register every template: gcloud builds submit with
                        cloudbuild.yaml, running as the build service account; each build
                        also keeps its specs as versions (see versions, rollback)
  trigger               create a Cloud Build trigger on the GitHub repository's main branch
                        (needs --github OWNER/REPO; the first time, authorise in a browser)
  run TEMPLATE          start a job with the lab's parameters (--param overrides one);
                        a stream job stops itself after --max-hours
  update TEMPLATE       relaunch a running stream job in place (same job name, --update),
                        once Dataflow's graph check has passed; names renamed steps
  drain TEMPLATE|JOB    drain a running stream job (by template, job name or job ID)
  jobs                  the active jobs in the region: template, age, workers (at start/most);
                        flags each stream job running over --max-hours, with its drain
  status                the same as jobs
  logs TEMPLATE|JOB     the warnings and errors of a job (the latest one of a template),
                        the launcher's included: why a console launch failed
  versions TEMPLATE     the kept versions of a template's spec: tag, time, image
  rollback TEMPLATE TAG make a kept version the current spec again (the console and run
                        launch it; update moves a running stream job onto it)
  replay TEMPLATE       publish a stream template's dead letters to its input topic again
                        (python -m tools.replay_dead_letters)
  cost TEMPLATE|JOB     what a job (the latest one of a template) has used, and its cost
  budget                a monthly budget alert for this project (needs --amount; the
                        billing account's Costs Manager role, or the project's Owner)
  launcher              read-only: the Flex launcher base image's tags newer than the
                        Dockerfile's pin, and the one-line change to move to the newest
  teardown              stop our jobs, delete what the other commands created; refuses while
                        other jobs run in the region
  templates             print the template names
  help                  this text

templates: {" ".join(catalog.names)} (streaming: {" ".join(catalog.streaming)})

options (environment variable in brackets; lab's name as default):
  --project ID          [PROJECT] default: gcloud config get-value project
  --region REGION       [REGION] default: {DEFAULT_REGION}
  --bucket NAME         [BUCKET] default: PROJECT-bucket (gs:// optional)
  --build-region R      [BUILD_REGION] where Cloud Build runs, default: {DEFAULT_BUILD_REGION}
  --dry-run             [DRY_RUN=1] print the commands, run nothing
  --yes                 [YES=1] teardown without asking
  --csv PATH            [CSV] the lab's CSV for {dataset}.{images}, default: {DEFAULT_CSV}
                        (made with python -m tools.make_mnist_csv when missing)
  --github OWNER/REPO   [GITHUB_REPO] repository for the trigger
  --job-name NAME       run: job name (default: TEMPLATE with - for _, plus a timestamp
                        for batch jobs; stream jobs keep a fixed name so update finds them)
  --param KEY=VALUE     run/update: set one template parameter (repeatable; KEY is one the
                        template declares)
  --max-workers N       [MAX_WORKERS] run/update/deploy: default {DEFAULT_MAX_WORKERS} (deploy: the
                        specs' default, which console launches get)
  --max-hours H         [MAX_HOURS] run/update of a stream job: asks Dataflow to cancel it
                        after H hours (whole hours, default {DEFAULT_MAX_HOURS}; 0: no limit;
                        Google documents this for batch jobs only); jobs: flags stream jobs
                        running longer than H hours
  --at-least-once       run/update of a stream job: at-least-once streaming mode (cheaper;
                        a repeated message gives a repeated output with the same ID or name;
                        update keeps the running job's mode unless told)
  --exactly-once        run/update of a stream job: exactly-once streaming mode (the default)
  --flexrs-goal GOAL    run of a batch job: COST_OPTIMIZED (FlexRS: a mix of preemptible and
                        regular VMs, cheaper; may start up to 6 h later) or SPEED_OPTIMIZED
  --transform-name-mappings OLD=NEW[,...]  update: renamed steps
  --skip-check          update: replace the job without Dataflow's graph check first
  --check-minutes M     [CHECK_MINUTES] update: how long to wait for the graph check
                        (default {DEFAULT_CHECK_MINUTES})
  --amount N            budget: the monthly amount, in the billing account's currency
  --alert-email ADDR    setup: send the alert policies' notifications to this e-mail address
  -- FLAGS...           run/update: passed on to gcloud dataflow flex-template run
other environment: REPOSITORY ({env["REPOSITORY"]}), WORKER_SA ({env["WORKER_SA"]}),
  BUILDER_SA ({env["BUILDER_SA"]}), TRIGGER_NAME ({env["TRIGGER_NAME"]}),
  CONNECTION ({env["CONNECTION"]}),
  DATASET, IMAGES_TABLE, PREDICT_TABLE, PYTHON (interpreter for the tools it runs),
  {TIMEOUT_VARIABLE} (seconds a gcloud call may take, default {DEFAULT_TIMEOUT}; launches, API
  enabling and loads get at least {SLOW}, replay {REPLAY_SECONDS}, builds cloudbuild.yaml's
  timeout plus {SLOW}; past it the call is stopped, exit 1)

dry-run output: "+ CMD" is a command that would run; "? CMD" is a read-only check that a
real run makes first and whose answer decides what follows. A dry run answers "absent" to
checks (so it shows what a first run creates); teardown, rollback and update/drain answer
"present".
"""


def parse(argv: list[str]) -> Options:
    options = Options()
    positional: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            options.extra = argv[i:]
            break
        if word in ("-h", "--help"):
            positional = ["help"]
            break
        if word in SWITCHES:
            setattr(options, SWITCHES[word], True)
            continue
        name, equals, value = word.partition("=")
        if name in VALUED:
            if not equals:
                if i >= len(argv) or not argv[i]:
                    raise Refused(f"{name} needs a value (see {PROG} help)")
                value = argv[i]
                i += 1
            field = VALUED[name]
            if field == "params":
                options.params.append(value)
            else:
                setattr(options, field, value)
            continue
        if word.startswith("-"):
            raise Refused(f"unknown option: {names.shown(word)[1:-1]} (see {PROG} help)")
        positional.append(word)
    if positional:
        options.command, options.args = positional[0], positional[1:]
    return options


def need_args(options: Options, count: int, what: str) -> list[str]:
    if len(options.args) < count:
        raise Refused(f"{options.command} needs {what}")
    if len(options.args) > count:
        raise Refused(
            f"{options.command} takes {what}, not also {names.shown(options.args[count])}"
        )
    return options.args


def template_arg(catalog: Catalog, value: str, streaming_only: bool = False) -> str:
    choices = catalog.streaming if streaming_only else catalog.names
    listing = f"templates: {' '.join(choices)}"
    if streaming_only and value in catalog and value not in choices:
        return value  # the command says why a batch template will not do
    return names.one_of("template", value, choices, listing)


def job_target(catalog: Catalog, value: str) -> str:
    """A template, a job name or a job ID."""
    names.check_text("job", value, 256)
    if value in catalog or names.is_job_id(value):
        return value
    try:
        return names.job_name(value)
    except Refused:
        pass
    try:
        names.one_of("template", value, catalog.names)
    except Refused as refused:
        near = str(refused).split("(", 1)[1].rstrip(")")
        raise Refused(
            f"{names.shown(value)} is not a template, a job name (a-z, 0-9, -; a letter "
            f"first) or a job ID ({near})"
        ) from None
    return value


def check_options(options: Options, catalog: Catalog) -> None:
    """Each flag's value, and that it belongs to the command and template it is given with."""
    command = options.command
    template = options.args[0] if options.args else ""
    streaming = template in catalog.streaming
    is_template = template in catalog
    for value in [*options.args, *options.extra]:
        names.check_text("an argument", value)
    if options.extra and command not in ("run", "update"):
        raise Refused("flags after -- are for run and update only")
    if options.flexrs_goal is not None:
        names.one_of("--flexrs-goal", options.flexrs_goal, FLEXRS_GOALS, " or ".join(FLEXRS_GOALS))
        if command != "run":
            raise Refused("--flexrs-goal is for run (of a batch template)")
        if streaming:
            raise Refused(f"--flexrs-goal is for batch jobs; {template} streams")
    stream_flags = [
        flag
        for flag, given in (
            ("--at-least-once", options.at_least_once),
            ("--exactly-once", options.exactly_once),
            ("--max-hours", options.max_hours is not None),
        )
        if given
    ]
    if options.max_hours is not None:
        names.whole_number("--max-hours", options.max_hours, 0, 9999, "hours")
    if options.at_least_once and options.exactly_once:
        raise Refused("--at-least-once and --exactly-once exclude each other: give one")
    for flag in stream_flags:
        if flag == "--max-hours" and command == "jobs":
            continue
        if command not in ("run", "update"):
            where = "run, update and jobs" if flag == "--max-hours" else "run and update"
            raise Refused(f"{flag} is for {where}")
        if is_template and not streaming:
            raise Refused(f"{flag} is for stream jobs; {template} is a batch template")
    if options.alert_email is not None:
        if command != "setup":
            raise Refused("--alert-email is for setup")
        address = names.check_text("--alert-email", options.alert_email, 254)
        if not EMAIL.fullmatch(address):
            raise Refused(
                "--alert-email must be one e-mail address (NAME@DOMAIN), not "
                + names.shown(address)
            )
    for flag, given in (
        ("--skip-check", options.skip_check),
        ("--check-minutes", options.check_minutes is not None),
        ("--transform-name-mappings", options.transform_name_mappings is not None),
    ):
        if given and command != "update":
            raise Refused(f"{flag} is for update")
    if options.check_minutes is not None:
        names.whole_number("--check-minutes", options.check_minutes, 1, 999, "minutes")
    if options.max_workers is not None:
        names.whole_number("--max-workers", options.max_workers, 1, 9999)
    if options.transform_name_mappings is not None:
        mappings = names.check_text("--transform-name-mappings", options.transform_name_mappings)
        pairs = mappings.split(",")
        if not all(p.count("=") == 1 and all(p.split("=")) for p in pairs):
            raise Refused(
                "--transform-name-mappings must be OLD=NEW[,OLD=NEW...], not "
                + names.shown(mappings)
            )
    if options.amount is not None:
        if command != "budget":
            raise Refused("--amount is for budget")
        names.amount(options.amount)
    if command == "budget" and options.amount is None:
        raise Refused(
            "budget needs --amount N (a monthly amount in the billing account's currency)"
        )
    if options.job_name is not None:
        if command not in ("run", "update"):
            raise Refused("--job-name is for run and update")
        names.job_name(options.job_name)
    if options.params:
        if command not in ("run", "update"):
            raise Refused("--param is for run and update")
        if is_template:
            declared = catalog[template].parameters
            for item in options.params:
                names.check_text("--param", item)
                key, equals, value = item.partition("=")
                if not equals or not key:
                    raise Refused(f"--param needs KEY=VALUE, not {names.shown(item)}")
                names.one_of(
                    f"parameter of {template}",
                    key,
                    declared,
                    f"{template} declares: {', '.join(declared)}",
                )
                param_value(catalog[template], key, value)
    if options.github is not None:
        names.github_repo(options.github)


def param_value(template: TemplateInfo, key: str, value: str) -> None:
    """A --param value through the very checks the template's launch makes on Dataflow."""
    spec = template.declared.get(key)
    if spec is None:
        return
    try:
        check_value(spec, value, on_dataflow=True)
    except ParameterError as error:
        problem = str(error).removeprefix(f"--{key}: ")
        if len(problem) > 200:
            problem = problem[:200] + "..."
        raise Refused(f"--param {key}: {problem}") from None


def commands(catalog: Catalog) -> dict[str, Callable[[Context, Options], int]]:
    from ops.commands import budget, build, day2, jobs, launcher, setup, teardown

    def template(streaming_only: bool = False):
        return lambda o: catalog[
            template_arg(catalog, need_args(o, 1, "a template")[0], streaming_only)
        ]

    run_template = template()
    stream_template = template(streaming_only=True)

    def target(o: Options) -> str:
        return job_target(catalog, need_args(o, 1, "a template, job name or job ID")[0])

    def rollback_args(o: Options) -> tuple[str, str]:
        name, tag = need_args(o, 2, "a template and a tag")
        names.tag(tag)
        return template_arg(catalog, name), tag

    return {
        "setup": (lambda o: (), lambda c, a: setup.setup(c)),
        "deploy": (lambda o: (), lambda c, a: build.deploy(c)),
        "trigger": (lambda o: (), lambda c, a: build.trigger(c)),
        "run": (run_template, jobs.run),
        "update": (stream_template, jobs.update),
        "drain": (target, jobs.drain),
        "jobs": (lambda o: need_args(o, 0, "no argument"), lambda c, a: jobs.jobs(c)),
        "logs": (target, jobs.logs),
        "versions": (run_template, lambda c, t: build.versions(c, t.name)),
        "rollback": (rollback_args, lambda c, a: build.rollback(c, *a)),
        "replay": (stream_template, day2.replay),
        "cost": (target, day2.cost),
        "budget": (lambda o: (), lambda c, a: budget.budget(c, c.options.amount)),
        "launcher": (lambda o: need_args(o, 0, "no argument"), lambda c, a: launcher.launcher(c)),
        "teardown": (lambda o: (), lambda c, a: teardown.teardown(c)),
    }


def load_catalog() -> Catalog:
    """The templates, from pipelines: which needs the repository's Python environment."""
    try:
        return Catalog.from_registry()
    except ImportError as missing:
        raise Stop(
            f"cannot read the templates from pipelines/ ({missing}): run ops/flex with the "
            f"repository's environment (python3.11 -m venv .venv; .venv/bin/pip install "
            f"--no-deps -r requirements-dev.lock)"
        ) from None


def main(
    argv: list[str] | None = None,
    *,
    gcloud: Gcloud | None = None,
    catalog: Catalog | None = None,
    env: dict | None = None,
) -> int:
    """Runs one command; returns the exit status. Tests pass a recording `gcloud`."""
    argv = sys.argv[1:] if argv is None else argv
    env = dict(os.environ) if env is None else env
    try:
        options = parse(argv)
        command = ALIASES.get(options.command, options.command)
        names.one_of("command", command, COMMANDS, f"see {PROG} help")
        catalog = catalog or load_catalog()
        if command == "help":
            print(usage(catalog), end="")
            return 0
        if command == "templates":
            print("\n".join(catalog.names))
            return 0
        if command in ("logs", "drain", "cost") and not options.args:
            raise Refused(f"{command} needs a template, job name or job ID")
        check_options(options, catalog)
        timeout = gcloud_timeout(env)
        table = commands(catalog)
        check_args, action = table[command]
        args = check_args(options)
        runner = gcloud or Gcloud(dry_run=True)
        runner.timeout = timeout
        settings = resolve(options, env, runner.configured_project)
        if gcloud is None:
            runner = Gcloud(dry_run=settings.dry_run)
            runner.timeout = timeout
        else:
            runner.dry_run = settings.dry_run
        context = Context(settings=settings, gcloud=runner, catalog=catalog, options=options)
        return action(context, args)
    except Refused as refused:
        print(f"{PROG}: error: {refused}", file=sys.stderr)
        return 2
    except CommandFailed as failed:
        print(f"{PROG}: error: {failed}", file=sys.stderr)
        return failed.code
    except Stop as stop:
        if str(stop):
            print(f"{PROG}: error: {stop}", file=sys.stderr)
        return stop.code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
