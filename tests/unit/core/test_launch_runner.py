"""A local run is the runner the tests prove: Beam's in-process runners, never the
PrismRunner that Beam's DirectRunner would first download at run time. A local stream run
is the local runtime's, found through its entry point, or one line and exit 2 without it."""

from __future__ import annotations

import logging

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.core import launch
from pipelines.core.launch import apply_defaults, local_runner
from pipelines.registry import run_template
from tests.support.processes import REPO, read_shards


@pytest.mark.parametrize("streaming", [False, True])
def test_local_defaults_pin_the_in_process_runner(streaming):
    options = PipelineOptions([])
    apply_defaults(options, streaming=streaming)
    runner = local_runner(options)
    assert type(runner).__name__ == "SwitchingDirectRunner" and runner._is_interactive
    assert local_runner(PipelineOptions(["--runner=DataflowRunner"])) is None
    assert local_runner(PipelineOptions(["--runner=BundleBasedDirectRunner"])) is None


def test_a_local_batch_run_never_tries_prism(tmp_path, monkeypatch, caplog):
    from apache_beam.runners.portability import prism_runner

    tried = []

    def refuse(self, *args, **kwargs):
        tried.append(args)
        raise RuntimeError("would download the Prism binary")

    monkeypatch.setattr(prism_runner.PrismRunner, "run_pipeline", refuse)
    caplog.set_level(logging.INFO)
    source = tmp_path / "in.txt"
    source.write_text("to be or not to be\n")
    run_template("wordcount", [f"--input={source}", f"--output={tmp_path / 'out'}"])
    assert tried == []
    assert "PrismRunner" not in caplog.text
    assert sorted(read_shards(tmp_path / "out")) == ["be: 2", "not: 1", "or: 1", "to: 2"]


STREAM_ARGS = [
    "--input=projects/lab-project/subscriptions/in-sub",
    "--output=projects/lab-project/topics/out",
]


class EntryPoint:
    def __init__(self, load):
        self.load = load


def _no_module():
    raise ModuleNotFoundError("No module named 'local_runtime'")


@pytest.mark.parametrize("found", [[], [EntryPoint(_no_module)]])
def test_a_local_stream_run_without_the_runtime_is_one_line_and_exit_2(found, monkeypatch, capsys):
    # As in the image: no entry point, or its declaration without the package.
    asked = []
    monkeypatch.setattr(
        "importlib.metadata.entry_points", lambda group: asked.append(group) or found
    )
    preflights = []
    job = _stream_job(preflights)
    with pytest.raises(SystemExit) as exit_:
        launch.run_job(job, STREAM_ARGS)
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"stream_job: error: {launch.NO_LOCAL_RUNTIME}"]
    assert "scripts/setup.sh" in lines[0] and "--runner=DataflowRunner" in lines[0]
    assert asked == [launch.LOCAL_STREAM_RUNTIME] and preflights == []  # before any work


class _Stopped(Exception):
    """What a fake runtime raises where the real one ends the process."""


def test_a_local_stream_run_is_handed_to_the_registered_runtime(monkeypatch):
    ran = []

    def run(pipeline, name):
        ran.append((type(pipeline).__name__, name))
        raise _Stopped()

    monkeypatch.setattr(
        "importlib.metadata.entry_points",
        lambda group: [EntryPoint(lambda: run)] if group == launch.LOCAL_STREAM_RUNTIME else [],
    )
    preflights = []
    with pytest.raises(_Stopped):
        launch.run_job(_stream_job(preflights), STREAM_ARGS)
    assert ran == [("Pipeline", "stream_job")]
    assert preflights == [False]  # the job is told it does not run on Dataflow


def test_the_checkout_registers_the_local_runtime_as_the_launch_looks_it_up():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    (value,) = project["entry-points"][launch.LOCAL_STREAM_RUNTIME].values()
    module, function = value.split(":")
    from importlib import import_module

    from local_runtime.run import run_local_stream

    assert getattr(import_module(module), function) is run_local_stream


def _stream_job(preflights: list):
    from types import SimpleNamespace

    from pipelines.core.params import Template
    from pipelines.io.parameters import (
        dead_letter_topic_parameter,
        input_source_parameters,
        output_topic_parameter,
    )

    template = Template(
        name="stream_job",
        description="A stream job.",
        parameters=(
            *input_source_parameters("messages", "in", "Any message."),
            output_topic_parameter("Output", "Where results go."),
            dead_letter_topic_parameter("dead"),
        ),
        streaming=True,
    )
    job = SimpleNamespace(
        TEMPLATE=template,
        preflight=lambda args, options, *, on_dataflow: preflights.append(on_dataflow),
        build_pipeline=lambda pipeline, args: None,
    )
    return job
