"""Pins every private Beam name pipelines/core/beam_private.py uses: each test fails if the
installed Beam no longer has it or no longer behaves as that module relies on. And no
module of `pipelines/` but that one reaches into Beam's private names (the local runtime's
own are local_runtime/beam_private.py, tests/unit/local_runtime/test_beam_private.py)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.util import assert_that, equal_to

from pipelines.core import beam_private
from tests.support.beam_names import private_beam_names, private_beam_names_outside

PACKAGE = Path(__file__).resolve().parents[3] / "pipelines"


def test_no_module_but_beam_private_uses_private_beam_names():
    assert not private_beam_names_outside(PACKAGE, PACKAGE / "core" / "beam_private.py")
    # Beam's BigQuery helpers, "no backwards compatibility guarantees": the public
    # google-cloud-bigquery client does what the jobs need (pipelines/io/bigquery.py).
    using = [
        p.name for p in PACKAGE.rglob("*.py") if re.search(r"\bbigquery_tools\b", p.read_text())
    ]
    assert not using, using


def test_the_search_finds_what_it_looks_for(tmp_path):
    # The check above could pass by finding nothing: it finds these.
    source = tmp_path / "wrong.py"
    source.write_text(
        "from apache_beam.options.pipeline_options import _BeamArgumentParser\n"
        "classes = PipelineOptions.__subclasses__()\n"
        "evaluator = transform_evaluator._PubSubReadEvaluator\n"
    )
    assert len(private_beam_names(source)) == 3


def test_every_options_class_the_launcher_passes_is_known():
    from apache_beam.options import pipeline_options as po

    classes = beam_private.pipeline_options_classes()
    assert len(classes) == len(set(classes))
    for known in (
        po.StandardOptions,
        po.GoogleCloudOptions,
        po.WorkerOptions,
        po.SetupOptions,
        po.DebugOptions,
        po.DirectOptions,
    ):
        assert known in classes, known

    class Later(PipelineOptions):  # one defined later is found too, as Beam finds it
        pass

    assert Later in beam_private.pipeline_options_classes()


def test_beams_argument_parser_knows_every_option_and_reports_the_rest():
    parser = beam_private.beam_argument_parser(allow_abbrev=False)
    for options_class in (StandardOptions, beam.options.pipeline_options.GoogleCloudOptions):
        beam_private.add_option_arguments(options_class, parser)
    known, unknown = parser.parse_known_args(
        ["--runner=DataflowRunner", "--project=p", "--outptu=x", "--proj=q"]
    )
    assert known.runner == "DataflowRunner" and known.project == "p"
    assert unknown == ["--outptu=x", "--proj=q"]  # no abbreviations either


def test_the_in_process_direct_runner_never_tries_prism(monkeypatch, caplog):
    from apache_beam.runners.portability import prism_runner

    tried = []

    def refuse(self, *args, **kwargs):
        tried.append(self)
        raise RuntimeError("PrismRunner would download its binary")

    monkeypatch.setattr(prism_runner.PrismRunner, "run_pipeline", refuse)
    caplog.set_level(logging.INFO)

    def run(runner):
        with beam.Pipeline(runner=runner, options=PipelineOptions()) as pipeline:
            assert_that(
                pipeline | beam.Create([1, 2]) | beam.Map(lambda x: x * 10), equal_to([10, 20])
            )

    run(beam_private.in_process_direct_runner())
    assert tried == [] and "PrismRunner" not in caplog.text
    # The control: Beam's own DirectRunner does try it (and so would download it).
    from apache_beam.runners.direct.direct_runner import SwitchingDirectRunner

    run(SwitchingDirectRunner())
    assert len(tried) == 1 and "Running pipeline with PrismRunner" in caplog.text


def test_local_bundles_sample_state_at_the_short_period(monkeypatch):
    import inspect

    from apache_beam.runners.worker import statesampler

    (name, default), *_ = [
        (name, parameter.default)
        for name, parameter in inspect.signature(statesampler.StateSampler).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    ]
    assert name == "sampling_period_ms" and isinstance(default, int)
    periods = []
    start = statesampler.StateSampler.start

    def recording_start(self):
        periods.append(self.sampling_period_ms)
        start(self)

    monkeypatch.setattr(statesampler.StateSampler, "start", recording_start)
    monkeypatch.setattr(statesampler.StateSampler.__init__, "__defaults__", (200,))
    with beam.Pipeline(
        runner=beam_private.in_process_direct_runner(), options=PipelineOptions()
    ) as pipeline:
        assert_that(pipeline | beam.Create([1, 2]) | beam.Map(lambda x: x + 1), equal_to([2, 3]))
    # Every bundle's sampler, and the process's default from now on, at the short period.
    assert periods and set(periods) == {beam_private.LOCAL_STATE_SAMPLING_MS}
    assert statesampler.StateSampler("x", None).sampling_period_ms == (
        beam_private.LOCAL_STATE_SAMPLING_MS
    )
