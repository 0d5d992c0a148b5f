"""The graph a Dataflow launch submits is the graph a local run starts from: the local
runtime changes it only by its two overrides (publish, log dead letters), after the graph
is built. Built the way the launch builds it (parse, then build_pipeline), for each stream
template, with and without a dead-letter topic."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options_validator import PipelineOptionsValidator
from apache_beam.pipeline import PipelineVisitor

from local_runtime.overrides import LOCAL_OVERRIDES, pipeline_answers_every_message
from local_runtime.publish import LogAndAcknowledgeFn, PublishAndAcknowledgeFn
from pipelines.core.launch import local_runner, parse
from pipelines.io.pubsub import LogDeadLetterFn, PublishOutcomes
from pipelines.registry import TEMPLATES, job_module

STREAMS = sorted(n for n in TEMPLATES if job_module(n).TEMPLATE.streaming)
DATAFLOW = [
    "--runner=DataflowRunner",
    "--project=lab-project",
    "--region=us-central1",
]


def steps(pipeline) -> list[tuple[str, str, str]]:
    """Every step, composites included: (full label, transform type, DoFn type)."""
    found = []

    class Visitor(PipelineVisitor):
        def enter_composite_transform(self, node):
            self.visit_transform(node)

        def visit_transform(self, node):
            if node.transform is None:
                return
            fn = getattr(node.transform, "fn", None)
            found.append(
                (node.full_label, type(node.transform).__name__, type(fn).__name__ if fn else "")
            )

    pipeline.visit(Visitor())
    return found


def build(template: str, argv: list[str]):
    job = job_module(template)
    _, args, options = parse(job.TEMPLATE, argv)
    pipeline = beam.Pipeline(runner=local_runner(options), options=options)
    job.build_pipeline(pipeline, args)
    return pipeline


@pytest.mark.parametrize("dead_letter", [False, True])
@pytest.mark.parametrize("template", STREAMS)
def test_local_runs_start_from_the_graph_dataflow_gets(template, dead_letter, monkeypatch):
    # Dataflow's option checks look for a staging bucket on GCS; the graph does not need one.
    monkeypatch.setattr(PipelineOptionsValidator, "validate", lambda self: [])
    argv = [
        "--input=projects/lab-project/subscriptions/in-sub",
        "--output=projects/lab-project/topics/out",
    ]
    if dead_letter:
        argv.append("--dead_letter=projects/lab-project/topics/dead")
    dataflow = build(template, argv + DATAFLOW)
    local = build(template, argv)
    assert type(dataflow.runner).__name__ == "DataflowRunner"
    assert steps(local) == steps(dataflow)

    before = {label: kinds for label, *kinds in steps(local)}
    local.replace_all(list(LOCAL_OVERRIDES))
    after = {label: kinds for label, *kinds in steps(local)}
    publish = {label for label, (kind, _) in before.items() if kind == PublishOutcomes.__name__}
    logged = {label for label, (_, fn) in before.items() if fn == LogDeadLetterFn.__name__}
    assert len(publish) == 1 + dead_letter and len(logged) == (not dead_letter)
    inside_publish = {
        label for label in before if label.startswith(tuple(p + "/" for p in publish))
    }
    # Exactly the two known replacements, at the same labels; nothing else changes.
    assert set(after) == set(before) - inside_publish
    changed = {label for label in after if after[label] != before[label]}
    assert changed == publish | logged
    for label in publish:
        assert after[label] == ["ParDo", PublishAndAcknowledgeFn.__name__]
    for label in logged:
        assert after[label] == ["ParDo", LogAndAcknowledgeFn.__name__]
    assert pipeline_answers_every_message(local)
    assert not pipeline_answers_every_message(dataflow)
