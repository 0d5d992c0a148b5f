"""What a local stream run swaps into the product graph, as Beam PTransformOverrides: the
graph is built once, the same for Dataflow (tests/unit/local_runtime/test_overrides.py compares
them), and only these two steps differ locally."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.io.gcp.pubsub import WriteToPubSub
from apache_beam.pipeline import PipelineVisitor, PTransformOverride

from local_runtime.publish import LogAndAcknowledgeFn, PublishAndAcknowledgeFn
from pipelines.io.pubsub import LogDeadLetterFn, PublishOutcomes


class PublishLocally(PTransformOverride):
    """The product's publishing step (its outcomes' messages through Beam's WriteToPubSub)
    -> a publish that then acknowledges the inputs the outcomes answer."""

    def matches(self, applied_ptransform):
        return isinstance(applied_ptransform.transform, PublishOutcomes)

    def get_replacement_transform_for_applied_ptransform(self, applied_ptransform):
        return beam.ParDo(PublishAndAcknowledgeFn(applied_ptransform.transform.topic))


class LogLocally(PTransformOverride):
    """Logging a dead letter -> logging it and acknowledging its input."""

    def matches(self, applied_ptransform):
        transform = applied_ptransform.transform
        return isinstance(transform, beam.ParDo) and type(transform.fn) is LogDeadLetterFn

    def get_replacement_transform_for_applied_ptransform(self, applied_ptransform):
        return beam.ParDo(LogAndAcknowledgeFn())


LOCAL_OVERRIDES = (PublishLocally(), LogLocally())


def pipeline_answers_every_message(pipeline) -> bool:
    """Whether every outcome leaves through a step that acknowledges its input (our publish
    and dead-letter log steps), with no Beam WriteToPubSub (which cannot): only then may
    acknowledgements wait for outcomes, or unanswered messages would be redelivered for ever."""
    found = {"answering": 0, "beam_writes": 0}

    class _Visitor(PipelineVisitor):
        def enter_composite_transform(self, node):
            self.visit_transform(node)

        def visit_transform(self, node):
            transform = node.transform
            if isinstance(transform, WriteToPubSub):
                found["beam_writes"] += 1
            if getattr(getattr(transform, "fn", None), "answers_input", False):
                found["answering"] += 1

    pipeline.visit(_Visitor())
    return found["answering"] > 0 and found["beam_writes"] == 0
