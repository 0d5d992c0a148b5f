"""Pub/Sub plumbing the streaming jobs share: where messages come from, where each outcome
goes, what a dead letter looks like, and the launch checks on topics and subscriptions.

Dead letters
------------
A message that cannot be processed becomes a dead letter with two attributes of ours:
`error` (why, cut to 1024 bytes at a character boundary) and `error_stage` (the step that
refused it). One rule keeps the original, so that nothing of it is lost or overwritten:

* **Beside ours** when it fits: at most 97 original attributes, each within Pub/Sub's limits
  (key 1-256 bytes not starting with `goog`, value at most 1024 bytes, both UTF-8), none
  named `error`, `error_stage`, `error_envelope` or `truncated_from_bytes`. The dead letter
  is then the original message, data and attributes unchanged, plus ours.
* **In an envelope** otherwise: the dead letter's data is the JSON object
  `{"attributes": {...the original attributes...}, "data": "<the original data, base64>"}`,
  it carries the attribute `error_envelope=json`, and its only other attributes are ours.

Either way a dead letter stays under Pub/Sub's 10 MB: when the original data would not fit,
the dead letter keeps its first bytes and says `truncated_from_bytes=<original length>`.
`original_message(dead_letter)` gives the original data and attributes back from both forms.

Outcomes name their input
-------------------------
Every outgoing message (a result or a dead letter) carries in `message_id` the id of the
input message it answers (`answering`, `dead_letter`). Pub/Sub assigns its own id on
publish and Beam drops the field, so it is free on the way out; the local runner uses it to
acknowledge an input only once its outcome is published (pipelines/local_pubsub.py).
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Mapping

import apache_beam as beam
from apache_beam.io.gcp.pubsub import (
    PubsubMessage,
    ReadFromPubSub,
    WriteToPubSub,
    parse_subscription,
    parse_topic,
)
from apache_beam.metrics import Metrics

from pipelines import local_pubsub
from pipelines.params import (
    PUBSUB_SUBSCRIPTION_REGEX,
    PUBSUB_TOPIC_OR_SUBSCRIPTION_REGEX,
    PUBSUB_TOPIC_REGEX,
    Parameter,
    ParameterError,
    matches,
)

ERROR_ATTRIBUTE = "error"
STAGE_ATTRIBUTE = "error_stage"
TRUNCATED_ATTRIBUTE = "truncated_from_bytes"
ENVELOPE_ATTRIBUTE = "error_envelope"
ENVELOPE_JSON = "json"
OUR_ATTRIBUTES = frozenset(
    {ERROR_ATTRIBUTE, STAGE_ATTRIBUTE, TRUNCATED_ATTRIBUTE, ENVELOPE_ATTRIBUTE}
)

# Pub/Sub's limits (https://cloud.google.com/pubsub/quotas#resource_limits), in bytes of UTF-8.
MAX_ATTRIBUTES = 100
MAX_KEY_BYTES = 256
MAX_VALUE_BYTES = 1024
MAX_MESSAGE_BYTES = 10_000_000
RESERVED_KEY_PREFIX = "goog"
# At most this many originals stay beside ours (error, error_stage, truncated_from_bytes).
MAX_KEPT_ATTRIBUTES = MAX_ATTRIBUTES - 3
# Room left under 10 MB for what a publish request adds (protobuf framing, the topic name).
_DEAD_LETTER_BYTES = MAX_MESSAGE_BYTES - 100_000
_LOOKUP_TIMEOUT_SECONDS = 10

_log = logging.getLogger(__name__)


# --- parameters and launch checks -------------------------------------------------------

# The console shows a typed picker for each; `input` (either kind) keeps the commands users
# already have working. Exactly one is given (resolve_input).
INPUT_NAMES = ("input_subscription", "input_topic", "input")


def input_source_parameters(what: str, example: str, message_format: str) -> tuple[Parameter, ...]:
    """The stream's input parameters: a subscription picker, a topic picker and `input`."""
    subscription = f"projects/PROJECT/subscriptions/{example}-sub"
    topic = f"projects/PROJECT/topics/{example}"
    return (
        Parameter(
            name="input_subscription",
            label="Input subscription (recommended)",
            help_text=(
                f"The subscription the {what} arrive on, e.g. {subscription}: nothing "
                f"is lost across restarts and updates. Give this or input_topic. "
                f"{message_format}"
            ),
            param_type="PUBSUB_SUBSCRIPTION",
            optional=True,
            regexes=(PUBSUB_SUBSCRIPTION_REGEX,),
        ),
        Parameter(
            name="input_topic",
            label="Input topic",
            help_text=(
                f"Instead of input_subscription, the topic itself, e.g. {topic}: Dataflow "
                f"then makes a subscription of its own (which needs roles/pubsub.editor), "
                f"so {what} published while the job is not running are lost."
            ),
            param_type="PUBSUB_TOPIC",
            optional=True,
            regexes=(PUBSUB_TOPIC_REGEX,),
        ),
        Parameter(
            name="input",
            label="Input topic or subscription (either)",
            help_text=(
                f"A topic or a subscription, as the lab's commands give it, e.g. "
                f"{subscription}. Give it instead of input_subscription or input_topic, "
                f"not with them."
            ),
            param_type="TEXT",
            optional=True,
            regexes=(PUBSUB_TOPIC_OR_SUBSCRIPTION_REGEX,),
        ),
    )


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
    if name == "input_subscription" and not matches(PUBSUB_SUBSCRIPTION_REGEX, value):
        raise ParameterError(
            name, f"expected projects/PROJECT/subscriptions/SUBSCRIPTION, got {value!r}"
        )
    if name == "input_topic":
        check_topic(name, value)
    else:
        check_input_source(name, value)
    args.input = value
    return name


def output_topic_parameter(label: str, help_text: str) -> Parameter:
    return Parameter(
        name="output",
        label=label,
        help_text=help_text,
        param_type="PUBSUB_TOPIC",
        regexes=(PUBSUB_TOPIC_REGEX,),
    )


def dead_letter_topic_parameter(example_topic: str) -> Parameter:
    return Parameter(
        name="dead_letter",
        label="Dead-letter topic",
        help_text=(
            f"Optional topic for messages that cannot be processed, e.g. "
            f"projects/PROJECT/topics/{example_topic}; it must differ from the input's "
            f"topic. Each is published with the attributes error (why) and "
            f"error_stage, and the original data and attributes (unchanged, or in a "
            f"JSON envelope marked error_envelope=json when they would not fit). "
            f"Without it, such messages are counted and logged, and never stop the "
            f"job."
        ),
        param_type="PUBSUB_TOPIC",
        optional=True,
        regexes=(PUBSUB_TOPIC_REGEX,),
    )


def is_subscription(source: str) -> bool:
    return "/subscriptions/" in source


def check_input_source(name: str, value: str) -> None:
    if not matches(PUBSUB_TOPIC_OR_SUBSCRIPTION_REGEX, value):
        raise ParameterError(
            name,
            "expected projects/PROJECT/topics/TOPIC or "
            f"projects/PROJECT/subscriptions/SUBSCRIPTION, got {value!r}",
        )
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
    is never a reason to refuse a launch."""

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
        except Exception as error:  # noqa: BLE001 - PermissionDenied, timeouts: cannot tell
            _log.info(
                "Pub/Sub launch check of %s skipped: %s: %s",
                what,
                type(error).__name__,
                str(error).splitlines()[0] if str(error) else "",
            )
            return None

    def topic_exists(self, topic: str) -> bool | None:
        def call():
            if self._publisher is None:
                from google.cloud import pubsub_v1

                self._publisher = pubsub_v1.PublisherClient()
            self._publisher.get_topic(
                request={"topic": topic}, retry=None, timeout=_LOOKUP_TIMEOUT_SECONDS
            )
            return True

        return self._call(topic, call)

    def subscription_topic(self, subscription: str) -> str | bool | None:
        """The topic behind `subscription`; False if the subscription does not exist."""

        def call():
            if self._subscriber is None:
                from google.cloud import pubsub_v1

                self._subscriber = pubsub_v1.SubscriberClient()
            return self._subscriber.get_subscription(
                request={"subscription": subscription}, retry=None, timeout=_LOOKUP_TIMEOUT_SECONDS
            ).topic

        return self._call(subscription, call)


def check_stream_parameters(args) -> str:
    """The format checks every stream job makes first: exactly one input, well-formed
    topics. Returns the name of the input parameter given, for the later checks' messages."""
    input_name = resolve_input(args)
    check_topic("output", args.output)
    check_topic("dead_letter", args.dead_letter)
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
        found = lookup.subscription_topic(input_source)
        if found is False:
            raise ParameterError(input_name, f"subscription {input_source} does not exist")
        input_topic = found or None
    elif lookup.topic_exists(input_source) is False:
        raise ParameterError(input_name, f"topic {input_source} does not exist")
    check_differs_from_input("dead_letter", dead_letter, input_topic, input_source)
    check_differs_from_input("output", output, input_topic, input_source)
    for name, topic in (("output", output), ("dead_letter", dead_letter)):
        if topic and lookup.topic_exists(topic) is False:
            raise ParameterError(name, f"topic {topic} does not exist")


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


# --- messages: limits, dead letters -------------------------------------------------------


def utf8_prefix(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` of UTF-8, never inside a character; characters
    UTF-8 cannot carry (lone surrogates) become backslash escapes."""
    encoded = text.encode("utf-8", "backslashreplace")
    return encoded[:max_bytes].decode("utf-8", "ignore")


def attribute_problem(key, value) -> str | None:
    """Why Pub/Sub would refuse this attribute, or None."""
    if not isinstance(key, str) or not isinstance(value, str):
        return f"attribute {key!r}: keys and values must be text"
    try:
        key_bytes, value_bytes = len(key.encode("utf-8")), len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return f"attribute {key[:40]!r}: not valid UTF-8"
    if not 1 <= key_bytes <= MAX_KEY_BYTES:
        return f"attribute key of {key_bytes} bytes (1 to {MAX_KEY_BYTES})"
    if key.startswith(RESERVED_KEY_PREFIX):
        return f"attribute key {key[:40]!r} starts with the reserved {RESERVED_KEY_PREFIX!r}"
    if value_bytes > MAX_VALUE_BYTES:
        return f"attribute {key[:40]!r} has a value of {value_bytes} bytes (max {MAX_VALUE_BYTES})"
    return None


def _attributes_bytes(attributes: Mapping[str, str]) -> int:
    return sum(len(k.encode("utf-8")) + len(v.encode("utf-8")) for k, v in attributes.items())


def publish_problem(message: PubsubMessage) -> str | None:
    """Why Pub/Sub would refuse to publish `message`, or None: checked before publishing, so
    that a message that can never be published becomes a dead letter instead of a publish
    that fails (and, in a stream, is retried) for ever."""
    data = message.data or b""
    attributes = message.attributes or {}
    if not data and not attributes:
        return "a message needs data or at least one attribute"
    if len(attributes) > MAX_ATTRIBUTES:
        return f"{len(attributes)} attributes (max {MAX_ATTRIBUTES})"
    for key, value in attributes.items():
        problem = attribute_problem(key, value)
        if problem:
            return problem
    size = len(data) + _attributes_bytes(attributes)
    if size > MAX_MESSAGE_BYTES:
        return f"{size} bytes with its attributes (max {MAX_MESSAGE_BYTES})"
    return None


def _fits_beside_ours(attributes: Mapping) -> bool:
    return len(attributes) <= MAX_KEPT_ATTRIBUTES and all(
        key not in OUR_ATTRIBUTES and attribute_problem(key, value) is None
        for key, value in attributes.items()
    )


def _as_bytes(data) -> bytes:
    if data is None:
        return b""
    if isinstance(data, str):
        return data.encode("utf-8", "backslashreplace")
    return bytes(data)


def dead_letter_message(
    data, attributes, reason, *, stage: str, source_id: str | None = None
) -> PubsubMessage:
    """The dead letter for the message (`data`, `attributes`) that failed at `stage` for
    `reason`, under the module's rule. Total: always publishable, never raises."""
    data = _as_bytes(data)
    originals = dict(attributes or {})
    ours = {
        ERROR_ATTRIBUTE: utf8_prefix(str(reason), MAX_VALUE_BYTES),
        STAGE_ATTRIBUTE: utf8_prefix(str(stage), MAX_VALUE_BYTES),
    }
    if _fits_beside_ours(originals):
        kept = {**originals, **ours}
        data, cut_from = _cut(data, _DEAD_LETTER_BYTES - _attributes_bytes(kept) - _MARK_BYTES)
    else:
        kept = {**ours, ENVELOPE_ATTRIBUTE: ENVELOPE_JSON}
        data, cut_from = _envelope(
            data, originals, _DEAD_LETTER_BYTES - _attributes_bytes(kept) - _MARK_BYTES
        )
    if cut_from is not None:
        kept[TRUNCATED_ATTRIBUTE] = str(cut_from)
    return PubsubMessage(data=data, attributes=kept, message_id=source_id)


# The attribute saying the data was cut: its key and the longest length it can name.
_MARK_BYTES = len(TRUNCATED_ATTRIBUTE) + len(str(MAX_MESSAGE_BYTES * 1000))


def _cut(data: bytes, room: int) -> tuple[bytes, int | None]:
    if len(data) <= room:
        return data, None
    return data[:room], len(data)


def _envelope(data: bytes, attributes: Mapping, room: int) -> tuple[bytes, int | None]:
    # ASCII JSON: any text, lone surrogates included, survives and reads back exactly.
    originals = json.dumps({str(k): str(v) for k, v in attributes.items()}, ensure_ascii=True)
    head, tail = b'{"attributes":' + originals.encode("ascii") + b',"data":"', b'"}'
    kept, cut_from = _cut(data, max(0, room - len(head) - len(tail)) // 4 * 3)
    return head + base64.b64encode(kept) + tail, cut_from


def original_message(dead_letter: PubsubMessage) -> tuple[bytes, dict, int | None]:
    """(original data, original attributes, original length if the data was cut) of a
    dead letter, from either of its forms."""
    attributes = dict(dead_letter.attributes or {})
    cut_from = attributes.get(TRUNCATED_ATTRIBUTE)
    cut_from = int(cut_from) if cut_from is not None else None
    if attributes.get(ENVELOPE_ATTRIBUTE) == ENVELOPE_JSON:
        envelope = json.loads(dead_letter.data)
        return base64.b64decode(envelope["data"]), envelope["attributes"], cut_from
    originals = {k: v for k, v in attributes.items() if k not in OUR_ATTRIBUTES}
    return dead_letter.data, originals, cut_from


def dead_letter(message: PubsubMessage, reason: str, *, stage: str) -> PubsubMessage:
    """The dead letter of an input `message`, answering it (see the module docstring)."""
    source_id = getattr(message, "message_id", None)
    try:
        return dead_letter_message(
            message.data, message.attributes, reason, stage=stage, source_id=source_id
        )
    except Exception as error:  # noqa: BLE001 - not a Pub/Sub message at all: say so, still
        return PubsubMessage(
            data=b"",
            message_id=source_id,
            attributes={
                ERROR_ATTRIBUTE: utf8_prefix(
                    f"{reason}; and the message could not be kept: {type(error).__name__}: {error}",
                    MAX_VALUE_BYTES,
                ),
                STAGE_ATTRIBUTE: utf8_prefix(str(stage), MAX_VALUE_BYTES),
            },
        )


def answering(source_id: str | None, message: PubsubMessage) -> PubsubMessage:
    """`message`, marked as the outcome of the input message whose id is `source_id`."""
    message.message_id = source_id
    return message


# --- publishing ---------------------------------------------------------------------------


def publish_to(topic: str, options) -> beam.PTransform:
    """The step that publishes outgoing messages to `topic`. On Dataflow, Beam's
    WriteToPubSub (Dataflow's own Pub/Sub sink, see local_pubsub for what it does when a
    publish fails); elsewhere a synchronous publish that acknowledges each input only once
    its outcome is published, and stops the job in one line when a topic refuses."""
    from pipelines.launch import is_dataflow

    if is_dataflow(options):
        return WriteToPubSub(topic, with_attributes=True)
    return beam.ParDo(local_pubsub.PublishAndAcknowledgeFn(topic))


class _LogDeadLetterFn(beam.DoFn):
    answers_input = True  # see local_pubsub.pipeline_answers_every_message

    def __init__(self):
        self._logged = Metrics.counter("pubsub", "dead_letters_logged")

    def process(self, message: PubsubMessage):
        self._logged.inc()
        _log.warning(
            "dead letter (%s, %d bytes): %s",
            message.attributes.get(STAGE_ATTRIBUTE),
            len(message.data or b""),
            message.attributes.get(ERROR_ATTRIBUTE),
        )
        local_pubsub.LEDGER.release([message.message_id])


class PublishDeadLetters(beam.PTransform):
    """Publishes dead letters to `topic`, or, without one, logs each with its reason."""

    def __init__(self, topic: str | None):
        super().__init__()
        self._topic = topic

    def expand(self, messages):
        if self._topic:
            return messages | "PublishDeadLetters" >> publish_to(
                self._topic, messages.pipeline.options
            )
        return messages | "LogDeadLetters" >> beam.ParDo(_LogDeadLetterFn())
