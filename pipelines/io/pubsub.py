"""Pub/Sub for the stream jobs: where messages come from, where each outcome goes, and the
launch checks on topics and subscriptions. What a dead letter looks like is
pipelines/core/deadletters.py.

One graph on every runner: results and dead letters (deadletters.Outcome: the message and
the id of the input it answers) are published with Beam's WriteToPubSub (Dataflow's own
Pub/Sub sink), dead letters without a topic are logged. A local run swaps in its own
publishing step (local_runtime/), which acknowledges each input only once its outcome is
published; nothing here knows about it.
"""

from __future__ import annotations

import logging
import os

import apache_beam as beam
from apache_beam.io.gcp.pubsub import (
    PubsubMessage,
    ReadFromPubSub,
    WriteToPubSub,
    parse_subscription,
    parse_topic,
)
from apache_beam.metrics import Metrics

from pipelines.core.deadletters import ERROR_ATTRIBUTE, STAGE_ATTRIBUTE, Outcome
from pipelines.core.grammar import (
    PUBSUB_SUBSCRIPTION,
    PUBSUB_TOPIC,
    PUBSUB_TOPIC_OR_SUBSCRIPTION,
    Kind,
)
from pipelines.core.params import ParameterError
from pipelines.io.lookups import LOOKUP_TIMEOUT_SECONDS, Refused, first_line
from pipelines.io.parameters import INPUT_NAMES

_log = logging.getLogger(__name__)


# --- parameters and launch checks -------------------------------------------------------


def resolve_input(args) -> str:
    """Exactly one input parameter was given: checks it, sets `args.input` to it and returns
    its name (for the messages of later checks)."""
    given = [(name, getattr(args, name, None)) for name in INPUT_NAMES if getattr(args, name, None)]
    if not given:
        raise ParameterError(
            "input_subscription", "is required: where the input arrives (or give --input_topic)"
        )
    if len(given) > 1:
        raise ParameterError(
            given[1][0], f"give one input, not both --{given[0][0]} and --{given[1][0]}"
        )
    name, value = given[0]
    kind = {"input_subscription": PUBSUB_SUBSCRIPTION, "input_topic": PUBSUB_TOPIC}.get(
        name, PUBSUB_TOPIC_OR_SUBSCRIPTION
    )
    _check_syntax(name, value, kind)
    args.input = value
    return name


def is_subscription(source: str) -> bool:
    return "/subscriptions/" in source


def _check_syntax(name: str, value: str, kind: Kind) -> None:
    """Pub/Sub's naming rules, exactly as the console's regex states them (core/grammar.py).
    They are stricter than Beam's parse_topic, which the pipeline then cannot fail."""
    problem = kind.problem(value)
    if problem:
        raise ParameterError(name, problem)
    parse = parse_subscription if is_subscription(value) else parse_topic
    parse(value)  # never raises on a value the grammar took; a test holds it to that


def check_input_source(name: str, value: str) -> None:
    _check_syntax(name, value, PUBSUB_TOPIC_OR_SUBSCRIPTION)


def check_topic(name: str, value: str | None) -> None:
    if value:
        _check_syntax(name, value, PUBSUB_TOPIC)


def same_topic(a: str | None, b: str | None) -> bool:
    """Whether two topic paths name the same topic: compared as Beam parses them (project,
    name), not as strings."""
    if not a or not b:
        return False
    try:
        return parse_topic(a.strip()) == parse_topic(b.strip())
    except ValueError:  # not a topic path: the format checks refuse it
        return False


def check_differs_from_input(
    name: str, topic: str | None, input_topic: str | None, input_source: str
) -> None:
    """`topic` (an output) must not be the topic the job reads: a dead letter published
    there would come back as input, fail again, and loop for ever."""
    if same_topic(topic, input_topic):
        behind = "" if input_topic == input_source else f" (the topic of {input_source})"
        raise ParameterError(
            name,
            f"must differ from the input's topic {input_topic}{behind}, or every "
            f"message published there would be read again",
        )


class PubsubLookup:
    """Asks Pub/Sub whether topics and subscriptions exist, where the job will read and
    credentials allow: the emulator (PUBSUB_EMULATOR_HOST) for a local run, else Google's
    Pub/Sub with the default credentials. A Dataflow job never reads an emulator, so with
    the variable set a Dataflow launch looks nothing up. Never raises and never hangs (one
    short timeout per call, no retries); `None` means "could not tell", logged with why, and
    is never a reason to refuse a launch. `Refused` is Pub/Sub saying the name itself is
    invalid (InvalidArgument): no such topic can exist, and the launch refuses it."""

    def __init__(self, *, on_dataflow: bool = False):
        self._publisher = self._subscriber = None
        self.skip_reason = self._credentials_problem()
        if on_dataflow and os.environ.get("PUBSUB_EMULATOR_HOST"):
            self.skip_reason = (
                "PUBSUB_EMULATOR_HOST is set, but a Dataflow job reads Google's Pub/Sub"
            )
        if self.skip_reason:
            _log.info("Pub/Sub launch checks skipped: %s", self.skip_reason)

    @staticmethod
    def _credentials_problem() -> str | None:
        if os.environ.get("PUBSUB_EMULATOR_HOST"):
            return None
        try:
            import google.auth

            google.auth.default()
        except Exception as error:  # noqa: BLE001 - no credentials: skip, never refuse
            return f"no Google credentials ({type(error).__name__})"
        return None

    def _call(self, what: str, call):
        if self.skip_reason:
            return None
        from google.api_core import exceptions

        try:
            return call()
        except exceptions.NotFound:
            return False
        except exceptions.InvalidArgument as error:
            return Refused(first_line(error))
        except Exception as error:  # noqa: BLE001 - PermissionDenied, timeouts: cannot tell
            _log.info(
                "Pub/Sub launch check of %s skipped: %s: %s",
                what,
                type(error).__name__,
                str(error).splitlines()[0] if str(error) else "",
            )
            return None

    def topic_exists(self, topic: str) -> bool | Refused | None:
        def call():
            if self._publisher is None:
                from pipelines.io.pubsub_clients import publisher_client

                self._publisher = publisher_client()
            self._publisher.get_topic(
                request={"topic": topic}, retry=None, timeout=LOOKUP_TIMEOUT_SECONDS
            )
            return True

        return self._call(topic, call)

    def subscription_topic(self, subscription: str) -> str | bool | None:
        """The topic behind `subscription`; False if the subscription does not exist."""

        def call():
            if self._subscriber is None:
                from pipelines.io.pubsub_clients import subscriber_client

                self._subscriber = subscriber_client()
            return self._subscriber.get_subscription(
                request={"subscription": subscription}, retry=None, timeout=LOOKUP_TIMEOUT_SECONDS
            ).topic

        return self._call(subscription, call)


def check_stream_parameters(args) -> str:
    """The format checks every stream job makes first: exactly one input, well-formed
    topics, dead letters apart from the results. Returns the name of the input parameter
    given, for the later checks' messages."""
    input_name = resolve_input(args)
    check_topic("output", args.output)
    check_topic("dead_letter", args.dead_letter)
    if same_topic(args.dead_letter, args.output):
        raise ParameterError(
            "dead_letter",
            f"must differ from --output: both name {args.output}, and results and dead "
            f"letters would be mixed on it",
        )
    return input_name


def look_up_stream_topics(args, input_name: str, *, on_dataflow: bool) -> None:
    """check_streaming_topics on a stream job's parsed parameters (its last launch check:
    the only one that may ask Pub/Sub)."""
    check_streaming_topics(
        args.input,
        args.output,
        args.dead_letter,
        on_dataflow=on_dataflow,
        input_name=input_name,
    )


def check_streaming_topics(
    input_source: str,
    output: str,
    dead_letter: str | None,
    *,
    on_dataflow: bool,
    lookup: PubsubLookup | None = None,
    input_name: str = "input",
) -> None:
    """The launch checks every Pub/Sub stream job shares, after the format checks: the
    outputs differ from the input's topic, and what can be looked up exists."""
    lookup = lookup or PubsubLookup(on_dataflow=on_dataflow)
    input_topic = input_source
    if is_subscription(input_source):
        found = _exists(input_name, "subscription", input_source, lookup.subscription_topic)
        input_topic = found if isinstance(found, str) else None
    else:
        _exists(input_name, "topic", input_source, lookup.topic_exists)
    check_differs_from_input("dead_letter", dead_letter, input_topic, input_source)
    check_differs_from_input("output", output, input_topic, input_source)
    for name, topic in (("output", output), ("dead_letter", dead_letter)):
        if topic:
            _exists(name, "topic", topic, lookup.topic_exists)


def _exists(name: str, what: str, path: str, look_up):
    """The lookup's answer; refuses the parameter when Pub/Sub says there is no such thing or
    that the name is invalid. "Could not tell" (None) refuses nothing."""
    found = look_up(path)
    if found is False:
        raise ParameterError(name, f"{what} {path} does not exist")
    if isinstance(found, Refused):
        raise ParameterError(name, f"Pub/Sub refuses the {what} name {path}: {found.reason}")
    return found


# --- reading ------------------------------------------------------------------------------


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


# --- publishing ---------------------------------------------------------------------------


def message_of(outcome: Outcome) -> PubsubMessage:
    return outcome.message


class PublishOutcomes(beam.PTransform):
    """Publishes each outcome's message (with attributes) to `topic` with Beam's WriteToPubSub
    (Dataflow's own Pub/Sub sink). Its input id stays behind: Pub/Sub assigns its own."""

    def __init__(self, topic: str):
        super().__init__()
        self.topic = topic

    def expand(self, outcomes):
        return (
            outcomes
            | "Messages" >> beam.Map(message_of)
            | "WriteToPubSub" >> WriteToPubSub(self.topic, with_attributes=True)
        )


def publish_to(topic: str) -> beam.PTransform:
    """The step that publishes outcomes (deadletters.Outcome) to `topic`."""
    return PublishOutcomes(topic)


class LogDeadLetterFn(beam.DoFn):
    """Without a dead-letter topic: each dead letter is counted and logged with its reason."""

    def __init__(self):
        self._logged = Metrics.counter("pubsub", "dead_letters_logged")

    def process(self, outcome: Outcome):
        message = outcome.message
        self._logged.inc()
        _log.warning(
            "dead letter (%s, %d bytes): %s",
            message.attributes.get(STAGE_ATTRIBUTE),
            len(message.data or b""),
            message.attributes.get(ERROR_ATTRIBUTE),
        )


class PublishDeadLetters(beam.PTransform):
    """Publishes dead letters to `topic`, or, without one, logs each with its reason."""

    def __init__(self, topic: str | None):
        super().__init__()
        self._topic = topic

    def expand(self, messages):
        if self._topic:
            return messages | "PublishDeadLetters" >> publish_to(self._topic)
        return messages | "LogDeadLetters" >> beam.ParDo(LogDeadLetterFn())


def build_stream_pipeline(pipeline, args, label: str, process: beam.PTransform):
    """The graph of every stream job: Read -> `label` (messages -> results, dead letters) ->
    Publish and DeadLetters. Returns the results."""
    messages = pipeline | "Read" >> ReadMessages(args.input)
    results, dead_letters = messages | label >> process
    results | "Publish" >> publish_to(args.output)
    dead_letters | "DeadLetters" >> PublishDeadLetters(args.dead_letter)
    return results
