"""MNIST stream: classify images arriving on Pub/Sub and publish the predictions, until stopped.

    input        projects/P/topics/mnist_image (or a subscription), each message UTF-8 JSON
                 {"ID": 7, "Image": "0.0,0.0,..."}
    output       projects/P/topics/mnist_predict: {"ID": 7, "P0": ..., "P9": ...}, attribute ID
    dead_letter  optional topic: a bad message is published there unchanged, with the
                 attributes `error` (why) and `error_stage` (parse or inference). Without it,
                 bad messages are counted (mnist/dead_letters) and logged. Either way they never
                 stop the job or hold up the good ones.
"""

from __future__ import annotations

import sys

import apache_beam as beam
from apache_beam.io.gcp.pubsub import PubsubMessage, WriteToPubSub

from pipelines.local_pubsub import use_bigger_pulls
from pipelines.launch import is_dataflow, run_job
from pipelines.mnist.model import MnistModelHandler
from pipelines.mnist.models import MODEL, check_model, resolve_model
from pipelines.mnist.records import parse_json_message, to_json_line
from pipelines.mnist.transforms import ParseImages, PredictDigits
from pipelines.params import Template
from pipelines.pubsub import (PublishDeadLetters, ReadMessages, dead_letter_topic_parameter,
                              check_input_source, check_topic, dead_letter_message,
                              input_source_parameter, output_topic_parameter)

INPUT = input_source_parameter(
    "Input topic or subscription",
    "Where the images arrive: a topic, e.g. projects/PROJECT/topics/mnist_image (the job "
    "makes its own subscription, so messages published while it is not running are lost), or "
    "a subscription, e.g. projects/PROJECT/subscriptions/mnist_image-sub, to lose nothing "
    "across restarts and updates. Each message is UTF-8 JSON {\"ID\": 7, \"Image\": \"...\"}.")
OUTPUT = output_topic_parameter(
    "Output topic",
    "Where the predictions go, e.g. projects/PROJECT/topics/mnist_predict: one UTF-8 JSON "
    "message {\"ID\": 7, \"P0\": ..., \"P9\": ...} per image, with the ID also as attribute.")

DEAD_LETTER_TOPIC = dead_letter_topic_parameter("mnist_dead_letter")

TEMPLATE = Template(
    name="mnist_stream",
    description=("Classifies the lab's handwritten digits as they arrive on Pub/Sub, with the "
                 "TensorFlow model baked into the image, and publishes P0..P9 per ID."),
    parameters=(INPUT, OUTPUT, MODEL, DEAD_LETTER_TOPIC),
    streaming=True,
)


def preflight(args, options) -> None:
    check_input_source("input", args.input)
    check_topic("output", args.output)
    check_topic("dead_letter", args.dead_letter)
    check_model(args.model, on_dataflow=is_dataflow(options))


def message_to_row(message: PubsubMessage) -> dict:
    return parse_json_message(message.data)


def prediction_message(row: dict) -> PubsubMessage:
    return PubsubMessage(data=to_json_line(row).encode("utf-8"),
                         attributes={"ID": str(row["ID"])})


def parse_dead_letter(message: PubsubMessage, reason: str) -> PubsubMessage:
    return dead_letter_message(message.data, message.attributes, reason, stage="parse")


def inference_dead_letter(row: dict) -> PubsubMessage:
    # The original message is gone by inference time; its ID and pixels are all it held.
    return dead_letter_message(row["Row"].encode("utf-8"), {}, row["Error"], stage="inference")


class ClassifyMessages(beam.PTransform):
    """Pub/Sub messages -> (prediction messages, dead-letter messages)."""

    def __init__(self, model_handler):
        super().__init__()
        self._model_handler = model_handler

    def expand(self, messages):
        parsed = messages | "ParseImages" >> ParseImages(message_to_row, parse_dead_letter)
        rows, failed = parsed.valid | "PredictDigits" >> PredictDigits(self._model_handler)
        predictions = rows | "ToMessage" >> beam.Map(prediction_message)
        failed_messages = failed | "FailedToMessage" >> beam.Map(inference_dead_letter)
        dead_letters = ((parsed.dead_letters, failed_messages)
                        | "MergeDeadLetters" >> beam.Flatten())
        return predictions, dead_letters


def build_pipeline(pipeline, args):
    messages = pipeline | "Read" >> ReadMessages(args.input)
    predictions, dead_letters = messages | "Classify" >> ClassifyMessages(
        MnistModelHandler(resolve_model(args.model)))
    predictions | "Publish" >> WriteToPubSub(args.output, with_attributes=True)
    dead_letters | "DeadLetters" >> PublishDeadLetters(args.dead_letter)
    return predictions


def run(argv=None):
    # Only the local DirectRunner reads through this; Dataflow has its own Pub/Sub source.
    use_bigger_pulls()
    return run_job(sys.modules[__name__], argv)
