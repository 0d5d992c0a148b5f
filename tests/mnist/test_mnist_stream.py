"""The MNIST stream job: its composite under TestStream, and the template end to end on the
Cloud SDK's Pub/Sub emulator with the producer tool."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.io.gcp.pubsub import PubsubMessage, WriteToPubSub
from apache_beam.ml.inference.base import ModelHandler, PredictionResult
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to

from pipelines.local_pubsub import pipeline_answers_every_message
from pipelines.mnist.model import MnistModelHandler
from pipelines.mnist.models import resolve_model
from pipelines.mnist.stream import ClassifyMessages
from pipelines.pubsub import original_message
from tests.support import pubsub_emulator as emulator
from tests.support.processes import REPO, RunningTemplate, template_env
from tools import mnist_producer

SAMPLE = REPO / "data" / "mnist_sample.csv"


def labels() -> dict[int, int]:
    with open(REPO / "data" / "mnist_sample_labels.csv") as handle:
        return {int(r["ID"]): int(r["Label"]) for r in csv.DictReader(handle)}


def sample_messages(limit: int) -> list[bytes]:
    return [mnist_producer.encode(row) for row in mnist_producer.read_rows(SAMPLE, limit)]


MALFORMED = {
    b"\xff\xfe not utf-8": "message is not UTF-8",
    b"ID=7;Image=0.0": "message is not JSON",
    b"[7, \"0.0\"]": "JSON object",
    json.dumps({"ID": 9001, "Image": "0.5,0.5"}).encode(): "784 values, got 2",
    json.dumps({"ID": "x", "Image": ",".join(["0"] * 784)}).encode(): "ID must be an integer",
    json.dumps({"ID": 9002, "Image": ",".join(["2"] * 784)}).encode(): "outside [0, 1]",
}


def argmax(message_data: bytes) -> tuple[int, int]:
    row = json.loads(message_data)
    return row["ID"], max(range(10), key=lambda d: row[f"P{d}"])


def test_classify_messages_under_test_stream():
    good = sample_messages(6)
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    stream = (TestStream()
              .add_elements([PubsubMessage(m, {"source": "a"}) for m in good[:3]])
              .add_elements([PubsubMessage(m, {"source": "bad"}) for m in MALFORMED])
              .advance_watermark_to(10)
              .add_elements([PubsubMessage(m, {}) for m in good[3:]])
              .advance_watermark_to_infinity())
    truth = labels()
    with TestPipeline(options=options) as p:
        predictions, dead = p | stream | ClassifyMessages(
            MnistModelHandler(resolve_model(None)))
        assert_that(predictions | beam.Map(lambda m: (m.attributes["ID"], argmax(m.data))),
                    equal_to([(str(i), (i, truth[i])) for i in range(6)]), label="Predictions")
        assert_that(dead | beam.Map(lambda m: (m.data, m.attributes["source"],
                                               m.attributes["error_stage"])),
                    equal_to([(m, "bad", "parse") for m in MALFORMED]), label="DeadLetters")
        assert_that(dead | beam.Map(lambda m: MALFORMED[m.data] in m.attributes["error"]),
                    equal_to([True] * len(MALFORMED)), label="Reasons")


@pytest.mark.slow
def test_template_on_the_pubsub_emulator(pubsub_emulator):
    images = emulator.create_topic("mnist_image")
    predict, predict_sub = emulator.create_topic_with_subscription("mnist_predict")
    dead, dead_sub = emulator.create_topic_with_subscription("mnist_dead_letter")
    job = RunningTemplate("mnist_stream", [
        f"--input={images}", f"--output={predict}", f"--dead_letter={dead}"],
        env=template_env({"PUBSUB_EMULATOR_HOST": pubsub_emulator}))
    try:
        # The job reads the topic through its own subscription: publish once it exists.
        emulator.wait_for_subscriber(images, timeout=180)
        count = 40
        good = sample_messages(count)
        published = mnist_producer.publish(images, good + list(MALFORMED), rate=0)
        assert published == count + len(MALFORMED)
        outputs = emulator.pull(predict_sub, count, timeout=180)
        dead_letters = emulator.pull(dead_sub, len(MALFORMED), timeout=60)
        job.assert_running()  # bad messages did not crash it
    finally:
        log = job.stop()
    assert job.process.returncode == 0, log[-3000:]  # SIGTERM is a clean stop
    from google.cloud import pubsub_v1
    assert list(pubsub_v1.PublisherClient().list_topic_subscriptions(topic=images)) == [], \
        "the job's own subscription to its input topic outlived it"
    truth = labels()
    ids = [int(m.attributes["ID"]) for m in outputs]
    assert sorted(ids) == list(range(count)), log[-3000:]  # each valid ID exactly once
    results = dict(argmax(m.data) for m in outputs)
    assert sum(results[i] == truth[i] for i in range(count)) >= count - 1
    assert all(set(json.loads(m.data)) == {"ID", *(f"P{d}" for d in range(10))} for m in outputs)
    assert {m.data for m in dead_letters} == set(MALFORMED)  # published unchanged
    for message in dead_letters:
        assert MALFORMED[message.data] in message.attributes["error"]
        assert message.attributes["error_stage"] == "parse"


class _FailingModel(ModelHandler):
    """A model whose every batch fails, or (nan=True) returns NaN probabilities."""

    def __init__(self, nan: bool = False):
        super().__init__()
        self._nan = nan

    def load_model(self):
        return None

    def run_inference(self, batch, model, inference_args=None):
        if not self._nan:
            raise RuntimeError("the model is broken")
        # One row of probabilities per image, as MnistModelHandler gives for an example
        # that is one image [784] or a batch of them [N, 784].
        return [PredictionResult(x, np.full(np.shape(x)[:-1] + (10,), np.nan, np.float32))
                for x in batch]


@pytest.mark.parametrize("nan, stage, reason", [
    (False, "inference", "RuntimeError: the model is broken"),
    (True, "format", "not 10 finite probabilities"),
])
def test_later_dead_letters_keep_the_original_message(nan, stage, reason):
    good = sample_messages(3)
    inputs = [PubsubMessage(m, {"source": "cam", "error": "sender's own"}, message_id=str(i))
              for i, m in enumerate(good)]
    with TestPipeline() as p:
        predictions, dead = p | beam.Create(inputs) | ClassifyMessages(_FailingModel(nan))
        assert_that(predictions, equal_to([]), label="NoPredictions")
        assert_that(dead | beam.Map(lambda m: (
            m.message_id, original_message(m)[:2], m.attributes["error_stage"],
            reason in m.attributes["error"])),
            equal_to([(str(i), (good[i], {"source": "cam", "error": "sender's own"}), stage,
                       True) for i in range(3)]), label="DeadLetters")


def test_every_outcome_of_the_job_acknowledges_its_input():
    from pipelines.mnist import stream

    args = SimpleNamespace(input="projects/lab-project/subscriptions/s", model=None,
                           output="projects/lab-project/topics/out", dead_letter=None)
    pipeline = beam.Pipeline(options=PipelineOptions(streaming=True))
    stream.build_pipeline(pipeline, args)
    assert pipeline_answers_every_message(pipeline)
    pipeline = beam.Pipeline(options=PipelineOptions(streaming=True))
    pipeline | beam.Create([PubsubMessage(b"x", {})]) | WriteToPubSub(
        "projects/lab-project/topics/t", with_attributes=True)
    assert not pipeline_answers_every_message(pipeline)
