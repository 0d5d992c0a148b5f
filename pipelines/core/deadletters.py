"""Dead letters: one module for every job's failed records.

A record that cannot be processed never stops a job: it becomes a dead letter that says why
and keeps the original, verbatim, so that it can be replayed once the cause is fixed
(tools/replay_dead_letters.py). Two forms, one per kind of output:

* **Rows** (batch jobs: text, CSV, BigQuery): `{"Error": reason, "Row": the original}`
  (`dead_letter_row`), written beside the output as `<output>_errors` (ERRORS_SUFFIX).
* **Messages** (stream jobs: Pub/Sub), below.

Pub/Sub plumbing the streaming jobs share: where messages come from, where each outcome
goes, what a dead letter looks like, and the launch checks on topics and subscriptions.

Messages
--------
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

Replayed originals
------------------
tools/replay_dead_letters.py publishes each original it replays with one attribute added,
`replayed` (REPLAYED_ATTRIBUTE), naming its run. The jobs treat it as any other original
attribute, so a replayed message that fails again makes a dead letter that still carries it:
that is how the tool tells a dead letter it caused from one it has yet to replay.

Outcomes name their input
-------------------------
A stream job's every outgoing message (a result or a dead letter) travels as an `Outcome`:
the message to publish and the id of the input message it answers (`answering`,
`dead_letter`), its lineage. The publishing steps unwrap it (pipelines/io/pubsub.py): what
Pub/Sub receives is the message alone. A runner that acknowledges input only once its
outcome is published (local_runtime/) reads the id there.

No Beam at import: tools (producers, replay) use the limits and `original_message` too.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, NamedTuple

# The tag of every transform's dead-letter output.
DEAD_LETTERS = "dead_letters"
# Where a batch job's dead letters go: beside its output, with this suffix.
ERRORS_SUFFIX = "_errors"


def errors_location(output: str) -> str:
    """Where a batch job writes the dead letters of `output`."""
    return f"{output}{ERRORS_SUFFIX}"


# --- rows -------------------------------------------------------------------------------


def dead_letter_row(original: Any, reason: str) -> dict:
    """What a bad record becomes: the reason and the original, verbatim, as JSON text
    (bytes that are not UTF-8 as `\\xNN` escapes)."""
    if isinstance(original, (bytes, bytearray)):
        original = bytes(original).decode("utf-8", errors="backslashreplace")
    return {
        "Error": reason,
        "Row": original if isinstance(original, str) else json.dumps(original, default=str),
    }


def to_json_line(row: Mapping[str, Any]) -> str:
    return json.dumps(row, separators=(",", ":"))


# --- messages -----------------------------------------------------------------------------


def _message(**fields):
    from apache_beam.io.gcp.pubsub import PubsubMessage

    return PubsubMessage(**fields)


ERROR_ATTRIBUTE = "error"
STAGE_ATTRIBUTE = "error_stage"
TRUNCATED_ATTRIBUTE = "truncated_from_bytes"
ENVELOPE_ATTRIBUTE = "error_envelope"
ENVELOPE_JSON = "json"
# Set by the replay tool on what it republishes; an original attribute to the jobs, not ours.
REPLAYED_ATTRIBUTE = "replayed"
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
        key_bytes, value_bytes = _utf8_bytes(key), _utf8_bytes(value)
    except UnicodeEncodeError:
        return f"attribute {key[:40]!r}: not valid UTF-8"
    if not 1 <= key_bytes <= MAX_KEY_BYTES:
        return f"attribute key of {key_bytes} bytes (1 to {MAX_KEY_BYTES})"
    if key.startswith(RESERVED_KEY_PREFIX):
        return f"attribute key {key[:40]!r} starts with the reserved {RESERVED_KEY_PREFIX!r}"
    if value_bytes > MAX_VALUE_BYTES:
        return f"attribute {key[:40]!r} has a value of {value_bytes} bytes (max {MAX_VALUE_BYTES})"
    return None


def _utf8_bytes(text: str) -> int:
    """Bytes of `text` in UTF-8 (UnicodeEncodeError if it cannot be); why not always
    len(encode()): every prediction is checked twice on a local run, and ASCII, the common
    case, needs no copy (1.9 against 3.0 us a check)."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _attributes_bytes(attributes: Mapping[str, str]) -> int:
    return sum(_utf8_bytes(k) + _utf8_bytes(v) for k, v in attributes.items())


def publish_problem(message) -> str | None:
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


def dead_letter_message(data, attributes, reason, *, stage: str):
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
    return _message(data=data, attributes=kept)


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


def original_message(dead_letter) -> tuple[bytes, dict, int | None]:
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


class Outcome(NamedTuple):
    """What a stream job sends out for one input message: `message` (a PubsubMessage) to
    publish, answering the input whose Pub/Sub id is `source_id` (None if it had none)."""

    source_id: str | None
    message: Any


def dead_letter(message, reason: str, *, stage: str) -> Outcome:
    """The dead letter of an input `message`, answering it (see the module docstring)."""
    source_id = getattr(message, "message_id", None)
    try:
        letter = dead_letter_message(message.data, message.attributes, reason, stage=stage)
    except Exception as error:  # noqa: BLE001 - not a Pub/Sub message at all: say so, still
        letter = _message(
            data=b"",
            attributes={
                ERROR_ATTRIBUTE: utf8_prefix(
                    f"{reason}; and the message could not be kept: {type(error).__name__}: {error}",
                    MAX_VALUE_BYTES,
                ),
                STAGE_ATTRIBUTE: utf8_prefix(str(stage), MAX_VALUE_BYTES),
            },
        )
    return Outcome(source_id, letter)


def answering(source_id: str | None, message) -> Outcome:
    """`message`, as the outcome of the input message whose id is `source_id`."""
    return Outcome(source_id, message)
