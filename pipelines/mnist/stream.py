"""MNIST stream: classify images arriving on Pub/Sub and publish the predictions, until stopped.

    input        projects/P/topics/mnist_image (or a subscription), each message UTF-8 JSON
                 {"ID": 7, "Image": "0.0,0.0,..."}
    output       projects/P/topics/mnist_predict: {"ID": 7, "P0": ..., "P9": ...}, attribute ID
    dead_letter  optional topic: a bad message is published there as pipelines/pubsub.py
                 describes (the original, with `error` and `error_stage`: parse, inference or
                 format). Without it, bad messages are counted (mnist/dead_letters) and logged.
                 Either way they never stop the job or hold up the good ones.

    messages ──ParseImages──┬─ ((message, ID), pixels) ──PredictDigits──┬─ predictions
                            └─ dead letters               dead letters ─┘ (inference, format)

Each message is carried, whole, through RunInference as the key of its pixels, so that every
outcome (a prediction or a dead letter, at any stage) answers its own input message: a dead
letter keeps the message's original data and attributes, and the local runner acknowledges
the message once that outcome is published (pipelines/local_pubsub.py).
"""

from __future__ import annotations

import sys

import apache_beam as beam
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from pipelines.launch import is_dataflow, run_job
from pipelines.mnist.model import MnistModelHandler
from pipelines.mnist.models import MODEL, check_model, resolve_model
from pipelines.mnist.records import (
    BadRecord,
    parse_json_message,
    parse_row,
    prediction_row,
    to_json_line,
)
from pipelines.mnist.transforms import METRICS_NAMESPACE
from pipelines.params import Template
from pipelines.pubsub import (
    PublishDeadLetters,
    ReadMessages,
    answering,
    check_streaming_topics,
    check_topic,
    dead_letter,
    dead_letter_topic_parameter,
    input_source_parameters,
    resolve_input,
    output_topic_parameter,
    publish_problem,
    publish_to,
)

INPUTS = input_source_parameters(
    "images", "mnist_image",
    "Each message is UTF-8 JSON {\"ID\": 7, \"Image\": \"...\"}.")
OUTPUT = output_topic_parameter(
    "Output topic",
    "Where the predictions go, e.g. projects/PROJECT/topics/mnist_predict: one UTF-8 JSON "
    "message {\"ID\": 7, \"P0\": ..., \"P9\": ...} per image, with the ID also as attribute.")

DEAD_LETTER_TOPIC = dead_letter_topic_parameter("mnist_dead_letter")

TEMPLATE = Template(
    name="mnist_stream",
    description=("Classifies the lab's handwritten digits as they arrive on Pub/Sub, with the "
                 "TensorFlow model baked into the image, and publishes P0..P9 per ID."),
    parameters=(*INPUTS, OUTPUT, MODEL, DEAD_LETTER_TOPIC),
    streaming=True,
)

DEAD_LETTERS = "dead_letters"


def preflight(args, options) -> None:
    input_name = resolve_input(args)
    check_topic("output", args.output)
    check_topic("dead_letter", args.dead_letter)
    check_model(args.model, on_dataflow=is_dataflow(options))
    check_streaming_topics(args.input, args.output, args.dead_letter,
                           on_dataflow=is_dataflow(options), input_name=input_name)


def prediction_message(row: dict) -> PubsubMessage:
    return PubsubMessage(data=to_json_line(row).encode("utf-8"),
                         attributes={"ID": str(row["ID"])})


def answer_prediction(message: PubsubMessage, image_id: int, probabilities) -> PubsubMessage:
    """The prediction message answering `message`; BadRecord if it cannot be published."""
    prediction = prediction_message(prediction_row(image_id, probabilities))
    problem = publish_problem(prediction)
    if problem:
        raise BadRecord(f"the prediction cannot be published: {problem}")
    return answering(message.message_id, prediction)


def describe_failure(error) -> str:
    # RunInference hands over (exception class, repr, formatted traceback lines); the last
    # line of the traceback is the familiar "Type: message".
    if isinstance(error, tuple) and len(error) == 3 and error[2]:
        return str(error[2][-1]).strip()
    return f"{type(error).__name__}: {error}"


def _reason(error: Exception) -> str:
    if isinstance(error, BadRecord):
        return str(error)
    return f"unexpected {type(error).__name__}: {error}"


class _ParseMessageFn(beam.DoFn):
    def __init__(self):
        self._rows_read = Metrics.counter(METRICS_NAMESPACE, "rows_read")
        self._dead_letters = Metrics.counter(METRICS_NAMESPACE, "dead_letters")

    def process(self, message: PubsubMessage):
        self._rows_read.inc()
        try:
            image_id, pixels = parse_row(parse_json_message(message.data))
        except Exception as error:  # noqa: BLE001 - one odd message must not stop a stream
            self._dead_letters.inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTERS, dead_letter(
                message, _reason(error), stage="parse"))
            return
        yield (message, image_id), pixels


class _ToPredictionMessageFn(beam.DoFn):
    def __init__(self):
        self._predictions = Metrics.counter(METRICS_NAMESPACE, "predictions")
        self._dead_letters = Metrics.counter(METRICS_NAMESPACE, "dead_letters")

    def process(self, keyed_result):
        (message, image_id), result = keyed_result
        try:
            prediction = answer_prediction(message, image_id, result.inference)
        except Exception as error:  # noqa: BLE001 - one odd output must not stop a stream
            self._dead_letters.inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTERS, dead_letter(
                message, _reason(error), stage="format"))
            return
        self._predictions.inc()
        yield prediction


class _FailedInferenceFn(beam.DoFn):
    """A batch the model could not score: each of its messages becomes a dead letter."""

    def __init__(self):
        self._dead_letters = Metrics.counter(METRICS_NAMESPACE, "dead_letters")

    def process(self, failed):
        batch, error = failed
        reason = f"inference failed: {describe_failure(error)}"
        for (message, _image_id), _pixels in batch:
            self._dead_letters.inc()
            yield dead_letter(message, reason, stage="inference")


class _PredictMessages(beam.PTransform):
    """((message, ID), pixels) -> (prediction messages, dead letters), both answering their
    message. A batch that fails inference goes to the dead letters instead of failing (in a
    stream, endlessly retrying) the job."""

    def __init__(self, model_handler):
        super().__init__()
        self._model_handler = model_handler

    def expand(self, keyed_images):
        results, failed = (
            keyed_images
            | "RunInference" >> RunInference(
                KeyedModelHandler(self._model_handler)).with_exception_handling())
        formatted = results | "ToMessage" >> beam.ParDo(
            _ToPredictionMessageFn()).with_outputs(DEAD_LETTERS, main="predictions")
        inference_failed = failed.failed_inferences | "FailedInferences" >> beam.ParDo(
            _FailedInferenceFn())
        dead_letters = ((formatted[DEAD_LETTERS], inference_failed)
                        | "MergeDeadLetters" >> beam.Flatten())
        return formatted.predictions, dead_letters


class ClassifyMessages(beam.PTransform):
    """Pub/Sub messages -> (prediction messages, dead-letter messages)."""

    def __init__(self, model_handler):
        super().__init__()
        self._model_handler = model_handler

    def expand(self, messages):
        parsed = messages | "ParseImages" >> beam.ParDo(_ParseMessageFn()).with_outputs(
            DEAD_LETTERS, main="valid")
        predictions, failed = parsed.valid | "PredictDigits" >> _PredictMessages(
            self._model_handler)
        dead_letters = ((parsed[DEAD_LETTERS], failed) | "MergeDeadLetters" >> beam.Flatten())
        return predictions, dead_letters


def build_pipeline(pipeline, args):
    messages = pipeline | "Read" >> ReadMessages(args.input)
    predictions, dead_letters = messages | "Classify" >> ClassifyMessages(
        MnistModelHandler(resolve_model(args.model)))
    predictions | "Publish" >> publish_to(args.output, pipeline.options)
    dead_letters | "DeadLetters" >> PublishDeadLetters(args.dead_letter)
    return predictions


def run(argv=None):
    return run_job(sys.modules[__name__], argv)
