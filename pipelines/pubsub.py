"""Pub/Sub plumbing the streaming jobs share: input from a topic or a subscription, and
dead letters that are published unchanged with the reason attached, or counted and logged."""

from __future__ import annotations

import logging

import apache_beam as beam
from apache_beam.io.gcp.pubsub import (PubsubMessage, ReadFromPubSub, WriteToPubSub,
                                       parse_subscription, parse_topic)
from apache_beam.metrics import Metrics

from pipelines.params import (PUBSUB_TOPIC_OR_SUBSCRIPTION_REGEX, PUBSUB_TOPIC_REGEX, Parameter,
                              ParameterError, matches)

ERROR_ATTRIBUTE = "error"
STAGE_ATTRIBUTE = "error_stage"
TRUNCATED_ATTRIBUTE = "truncated_from_bytes"
# Pub/Sub limits an attribute value to 1024 bytes, and a whole message to 10 MB.
_MAX_ATTRIBUTE_CHARS = 1000
_MAX_DEAD_LETTER_DATA = 9_500_000

_log = logging.getLogger(__name__)


def input_source_parameter(label: str, help_text: str) -> Parameter:
    return Parameter(name="input", label=label, help_text=help_text, param_type="TEXT",
                     regexes=(PUBSUB_TOPIC_OR_SUBSCRIPTION_REGEX,))


def output_topic_parameter(label: str, help_text: str) -> Parameter:
    return Parameter(name="output", label=label, help_text=help_text,
                     param_type="PUBSUB_TOPIC", regexes=(PUBSUB_TOPIC_REGEX,))


def dead_letter_topic_parameter(example_topic: str) -> Parameter:
    return Parameter(
        name="dead_letter",
        label="Dead-letter topic",
        help_text=(f"Optional topic for messages that cannot be processed, e.g. "
                   f"projects/PROJECT/topics/{example_topic}. Each is published unchanged with "
                   f"the attributes error (why) and error_stage. Without it, such messages are "
                   f"counted and logged, and never stop the job."),
        param_type="PUBSUB_TOPIC",
        optional=True,
        regexes=(PUBSUB_TOPIC_REGEX,),
    )


def is_subscription(source: str) -> bool:
    return "/subscriptions/" in source


def check_input_source(name: str, value: str) -> None:
    if not matches(PUBSUB_TOPIC_OR_SUBSCRIPTION_REGEX, value):
        raise ParameterError(name, "expected projects/PROJECT/topics/TOPIC or "
                                   f"projects/PROJECT/subscriptions/SUBSCRIPTION, got {value!r}")
    _check_with_beam(name, value, parse_subscription if is_subscription(value) else parse_topic)


def check_topic(name: str, value: str | None) -> None:
    if value and not matches(PUBSUB_TOPIC_REGEX, value):
        raise ParameterError(name, f"expected projects/PROJECT/topics/TOPIC, got {value!r}")
    if value:
        _check_with_beam(name, value, parse_topic)


def _check_with_beam(name: str, value: str, parse) -> None:
    # Beam's own rules (project ID and name lengths and characters), checked before launch
    # rather than as a traceback from deep inside the graph construction.
    try:
        parse(value)
    except ValueError as error:
        raise ParameterError(name, f"{error} (in {value!r})") from None


class ReadMessages(beam.PTransform):
    """Messages (with attributes) from a topic or from an existing subscription."""

    def __init__(self, source: str):
        super().__init__()
        self._source = source

    def expand(self, pipeline):
        if is_subscription(self._source):
            read = ReadFromPubSub(subscription=self._source, with_attributes=True)
        else:
            read = ReadFromPubSub(topic=self._source, with_attributes=True)
        return pipeline | "ReadFromPubSub" >> read


def dead_letter_message(data: bytes, attributes, reason: str, *, stage: str) -> PubsubMessage:
    """The original message with the reason attached. A message already at Pub/Sub's size
    limit would not fit with the extra attributes, and a publish that always fails would
    stall the stream: its data is cut, and the dead letter says so and how long it was."""
    attributes = dict(attributes or {})
    attributes[ERROR_ATTRIBUTE] = reason[:_MAX_ATTRIBUTE_CHARS]
    attributes[STAGE_ATTRIBUTE] = stage
    data = data or b""
    if len(data) > _MAX_DEAD_LETTER_DATA:
        attributes[TRUNCATED_ATTRIBUTE] = str(len(data))
        data = data[:_MAX_DEAD_LETTER_DATA]
    return PubsubMessage(data=data, attributes=attributes)


class _LogDeadLetterFn(beam.DoFn):
    def __init__(self):
        self._logged = Metrics.counter("pubsub", "dead_letters_logged")

    def process(self, message: PubsubMessage):
        self._logged.inc()
        _log.warning("dead letter (%s, %d bytes): %s", message.attributes.get(STAGE_ATTRIBUTE),
                     len(message.data or b""), message.attributes.get(ERROR_ATTRIBUTE))


class PublishDeadLetters(beam.PTransform):
    """Publishes dead letters to `topic`, or, without one, logs each with its reason."""

    def __init__(self, topic: str | None):
        super().__init__()
        self._topic = topic

    def expand(self, messages):
        if self._topic:
            return messages | "PublishDeadLetters" >> WriteToPubSub(
                self._topic, with_attributes=True)
        return messages | "LogDeadLetters" >> beam.ParDo(_LogDeadLetterFn())
