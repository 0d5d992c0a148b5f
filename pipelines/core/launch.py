"""From a command line to a running pipeline, the same way for every job.

The Flex Template launcher runs `templates/<job>.py` with each template parameter as
`--name=value` plus Dataflow's own options; locally a user runs the same file with just the
parameters. Both come through `run_job`, which
  1. splits the job's parameters from the pipeline options (`parse_known_args`),
  2. runs the job's preflight checks, so a bad parameter is one clear line and exit 2
     before anything is built,
  3. fills in what a user should not have to type: the DirectRunner locally (pinned to
     Beam's in-process runners, see local_runner), and on Dataflow the image this
     template was built into as the workers' SDK container,
  4. builds the graph (steps 1-4 are `build_job`, which the launch bench times) and runs
     it, waiting only where waiting is the point (locally).

A stream run off Dataflow is the local runtime's (local_runtime/, in a checkout, never in
the image): the launch finds it through the entry point group LOCAL_STREAM_RUNTIME, which
the checkout's install registers (pyproject.toml), and imports nothing of it. The launch
imports no job: it is handed one (pipelines/registry.py, the top, finds it by name) and
tells it what it needs to know, such as whether it runs on Dataflow.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Protocol

from apache_beam.options.pipeline_options import (
    PipelineOptions,
    SetupOptions,
    StandardOptions,
    WorkerOptions,
)

from pipelines.core import beam_private
from pipelines.core.params import (
    OneLineErrorParser,
    ParameterError,
    Template,
    add_to_parser,
    check_required,
    check_syntax,
)

# Baked into each template's image by the Dockerfile (build argument IMAGE_URI), so that
# workers run the image that holds TensorFlow and the models without the user naming it.
SDK_CONTAINER_IMAGE_ENV = "SDK_CONTAINER_IMAGE"
DATAFLOW_RUNNERS = {"DataflowRunner", "dataflowrunner", "dataflow"}
DIRECT_RUNNERS = {"directrunner", "direct", "bundlebaseddirectrunner", "switchingdirectrunner"}
PRISM_TRYING_RUNNERS = {"directrunner", "direct", "switchingdirectrunner"}


# The entry point group of the local stream runtime: `run(pipeline, name)` runs a streaming
# pipeline on the DirectRunner and ends the process.
LOCAL_STREAM_RUNTIME = "dataflow_flex_lab.local_stream_runtime"
NO_LOCAL_RUNTIME = (
    "--runner: running a stream job off Dataflow needs the local stream runtime "
    "(local_runtime/ of the repository, installed by scripts/setup.sh), which this "
    "installation does not have; run it from a checkout, or on Dataflow "
    "(--runner=DataflowRunner)"
)


class Job(Protocol):
    TEMPLATE: Template

    def preflight(
        self, args: argparse.Namespace, options: PipelineOptions, *, on_dataflow: bool
    ) -> None: ...

    def build_pipeline(self, pipeline, args: argparse.Namespace): ...


def is_direct(options: PipelineOptions) -> bool:
    runner = (options.view_as(StandardOptions).runner or "").rsplit(".", 1)[-1].lower()
    return runner in DIRECT_RUNNERS


def local_runner(options: PipelineOptions):
    """The runner a DirectRunner run gets: Beam's in-process runners only (the FnApiRunner
    for batch, the BundleBasedDirectRunner for streams), never the PrismRunner Beam's
    DirectRunner would first download at run time. None (the runner the options name) for
    any other runner, BundleBasedDirectRunner included."""
    runner = (options.view_as(StandardOptions).runner or "").rsplit(".", 1)[-1].lower()
    if runner in PRISM_TRYING_RUNNERS:
        return beam_private.in_process_direct_runner()
    return None


def is_dataflow(options: PipelineOptions) -> bool:
    return (options.view_as(StandardOptions).runner or "") in DATAFLOW_RUNNERS


def make_parser(template: Template) -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog=template.name, description=template.description)
    add_to_parser(parser, template.parameters)
    return parser


def unknown_options(pipeline_args: Sequence[str]) -> list[str]:
    """The arguments that neither the job nor any Beam pipeline option (Dataflow's included,
    which is all the Flex launcher adds) takes. Beam itself only warns about them, so a
    misspelt `--outptu` would run the job without its output."""
    parser = beam_private.beam_argument_parser(allow_abbrev=False)
    for options_class in beam_private.pipeline_options_classes():
        beam_private.add_option_arguments(options_class, parser)
    _, unknown = parser.parse_known_args(list(pipeline_args))
    return unknown


def parse(template: Template, argv: Sequence[str]):
    """Returns (parser, job arguments, pipeline options); exits 2, in one line, on an argument
    that is neither the job's nor a pipeline option."""
    parser = make_parser(template)
    args, pipeline_args = parser.parse_known_args(list(argv))
    unknown = unknown_options(pipeline_args)
    if unknown:
        parser.error(_unknown_message(unknown, template))
    options = beam_private.view_caching_options(pipeline_args)
    apply_defaults(options, streaming=template.streaming)
    runner = options.view_as(StandardOptions).runner
    if template.streaming and not (is_dataflow(options) or is_direct(options)):
        # Beam's Pub/Sub source is native to Dataflow and the DirectRunner: elsewhere (the
        # portable runner's embedded job service, say) the job ends at once, having read
        # nothing, and exits 0 as if it had worked.
        parser.error(
            f"--runner: {runner} cannot run a streaming job: Beam reads Pub/Sub on "
            f"Dataflow (DataflowRunner) and locally on the DirectRunner only"
        )
    return parser, args, options


def _unknown_message(unknown: list[str], template: Template) -> str:
    names = [p.name for p in template.parameters]
    flags = [a for a in unknown if a.startswith("-")] or unknown
    hints = []
    for flag in flags:
        close = difflib.get_close_matches(flag.lstrip("-").split("=", 1)[0], names, n=1)
        if close:
            hints.append(f"{flag.split('=', 1)[0]} -> --{close[0]}?")
    hint = f" (did you mean: {', '.join(hints)})" if hints else ""
    return (
        f"unrecognized arguments: {' '.join(unknown)}{hint}; the parameters of "
        f"{template.name} are {', '.join('--' + n for n in names)}"
    )


def apply_defaults(options: PipelineOptions, *, streaming: bool) -> None:
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = "DirectRunner"
    if streaming:
        standard.streaming = True
    if is_dataflow(options):
        worker = options.view_as(WorkerOptions)
        if not worker.sdk_container_image:
            worker.sdk_container_image = os.environ.get(SDK_CONTAINER_IMAGE_ENV) or None
        setup = options.view_as(SetupOptions)
        if worker.sdk_container_image and setup.sdk_location == "default":
            # Beam and our package are already in the image: stage nothing for workers.
            setup.sdk_location = "container"


def local_stream_runtime():
    """The local runtime's `run(pipeline, name)`, or None when it is not installed (the
    image has the entry point's declaration but not the package)."""
    from importlib.metadata import entry_points

    for entry_point in entry_points(group=LOCAL_STREAM_RUNTIME):
        try:
            return entry_point.load()
        except ImportError:
            continue
    return None


def build_job(job: Job, argv: Sequence[str]):
    """Parses, checks and builds `job`'s graph, without running it: what the Flex launcher
    does before it submits the job. Returns (pipeline, on_dataflow, run_locally), the last
    the local stream runtime's `run` for a stream off Dataflow, else None."""
    import apache_beam as beam

    parser, args, options = parse(job.TEMPLATE, argv)
    on_dataflow = is_dataflow(options)
    run_locally = None
    try:
        check_required(args, job.TEMPLATE.parameters)
        check_syntax(args, job.TEMPLATE.parameters, on_dataflow=on_dataflow)
        if job.TEMPLATE.streaming and not on_dataflow:
            run_locally = local_stream_runtime()
            if run_locally is None:
                parser.error(NO_LOCAL_RUNTIME)
        job.preflight(args, options, on_dataflow=on_dataflow)
    except ParameterError as error:
        parser.error(str(error))
    pipeline = beam.Pipeline(runner=local_runner(options), options=options)
    job.build_pipeline(pipeline, args)
    return pipeline, on_dataflow, run_locally


def run_job(job: Job, argv: Sequence[str] | None = None):
    """Parses, checks, builds and runs `job`; returns the PipelineResult."""
    logging.getLogger().setLevel(logging.INFO)
    argv = sys.argv[1:] if argv is None else argv
    pipeline, on_dataflow, run_locally = build_job(job, argv)
    if run_locally is not None:
        run_locally(pipeline, job.TEMPLATE.name)  # ends the process (see its docstring)
    result = pipeline.run()
    if not on_dataflow:
        result.wait_until_finish()
    return result
