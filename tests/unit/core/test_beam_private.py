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


# --- the options whose views are cached (view_caching_options) ---------------------------

DATAFLOW_FLAGS = [
    "--runner=DataflowRunner",
    "--project=lab-project",
    "--region=us-central1",
    "--temp_location=gs://lab-bucket/tmp",
    "--experiments=use_runner_v2",
    "--experiments=enable_streaming_engine",
    "--labels=a=b",
]


def test_a_cached_view_is_the_view_beam_would_build():
    from apache_beam.options.pipeline_options import SetupOptions, TypeOptions, WorkerOptions

    options = beam_private.view_caching_options(DATAFLOW_FLAGS)
    standard = options.view_as(StandardOptions)
    assert options.view_as(StandardOptions) is standard  # built once
    assert type(standard) is StandardOptions and standard.runner == "DataflowRunner"
    # A view taken before an option is set, and one taken after, both see it, whichever
    # view set it: all share the options' values.
    worker = options.view_as(WorkerOptions)
    options.view_as(WorkerOptions).sdk_container_image = "image:1"
    assert worker.sdk_container_image == "image:1"
    assert options.view_as(WorkerOptions).sdk_container_image == "image:1"
    options.view_as(SetupOptions).sdk_location = "container"
    assert options.view_as(SetupOptions).sdk_location == "container"
    assert PipelineOptions.view_as(options, SetupOptions).sdk_location == "container"
    options.view_as(TypeOptions).pipeline_type_check = False
    assert options.view_as(StandardOptions).view_as(TypeOptions).pipeline_type_check is False
    # The flags Beam keeps as lists stay one list for every view.
    experiments = options.view_as(beam.options.pipeline_options.DebugOptions).experiments
    assert experiments == ["use_runner_v2", "enable_streaming_engine"]
    assert experiments is options.view_as(beam.options.pipeline_options.DebugOptions).experiments


def test_replaced_flags_or_values_give_a_fresh_view():
    options = beam_private.view_caching_options(["--runner=DirectRunner"])
    first = options.view_as(StandardOptions)
    options._all_options = dict(options._all_options, runner="DataflowRunner")
    second = options.view_as(StandardOptions)
    assert second is not first and second.runner == "DataflowRunner"
    options._flags = ["--streaming"]
    third = options.view_as(StandardOptions)
    assert third is not second and third._flags is options._flags
    # and it reads as Beam's own view does (a value already held is kept over the flags)
    assert third.streaming is PipelineOptions.view_as(options, StandardOptions).streaming


def test_cached_options_give_dataflow_the_same_options_as_plain_ones():
    from pipelines.core.launch import apply_defaults

    plain = PipelineOptions(DATAFLOW_FLAGS)
    cached = beam_private.view_caching_options(DATAFLOW_FLAGS)
    for options in (plain, cached):
        apply_defaults(options, streaming=True)
    every = {"drop_default": False, "retain_unknown_options": True}
    assert cached.get_all_options(**every) == plain.get_all_options(**every)
    assert cached.get_all_options(drop_default=True) == plain.get_all_options(drop_default=True)
    assert cached.view_as(StandardOptions).streaming is True


def test_a_pipeline_copies_the_cache_class_and_a_pickle_names_only_beams():
    import pickle

    from apache_beam.options.pipeline_options import TypeOptions

    options = beam_private.view_caching_options(["--runner=DirectRunner", "--job_name=j"])
    options.view_as(StandardOptions)
    pipeline = beam.Pipeline(options=options)
    copied = pipeline.options
    assert type(copied) is type(options) and copied is not options
    assert copied.view_as(TypeOptions) is copied.view_as(TypeOptions)
    # The copy's views write to the copy's values, not to the options it was made from.
    copied.view_as(StandardOptions).runner = "Other"
    assert options.view_as(StandardOptions).runner == "DirectRunner"
    assert copied.view_as(StandardOptions).runner == "Other"
    # Pickled (as by a transform holding the options) it is a plain PipelineOptions.
    data = pickle.dumps(options)
    assert b"ViewCaching" not in data and b"pipelines" not in data
    back = pickle.loads(data)
    assert type(back) is PipelineOptions
    assert back.get_all_options() == options.get_all_options()
    from apache_beam.internal import pickler  # what Beam pickles transforms with

    back = pickler.loads(pickler.dumps(copied))
    assert type(back) is PipelineOptions and back.view_as(StandardOptions).runner == "Other"


def test_a_graph_build_parses_each_options_class_once(monkeypatch):
    from apache_beam.options.pipeline_options import TypeOptions

    built = []
    original = PipelineOptions.view_as

    def counting(self, cls):
        built.append(cls)
        return original(self, cls)

    monkeypatch.setattr(PipelineOptions, "view_as", counting)
    for make, most in ((PipelineOptions, None), (beam_private.view_caching_options, 1)):
        built.clear()
        pipeline = beam.Pipeline(options=make(["--runner=DirectRunner"]))
        numbers = pipeline | beam.Create([1, 2, 3])
        for step in range(10):
            numbers = numbers | f"Step{step}" >> beam.Map(lambda x: x + 1)
        type_views = built.count(TypeOptions)
        if most is None:
            assert type_views > 20  # Beam's own: the control
        else:
            assert type_views <= most
