"""Sends dead letters back through a stream job after a fix, or turns mnist_batch's dead
letters back into an input file.

    python -m tools.replay_dead_letters --project PROJECT \\
        --subscription mnist_dead_letter-sub --topic mnist_input [--limit N] [--dry-run]
    python -m tools.replay_dead_letters \\
        --from-file 'out/predict_errors-*.json' --to-csv fixed.csv

Stream jobs (Pub/Sub): looks up --subscription and --topic (a missing one: exit 2, before
any pull), then pulls the dead letters, rebuilds each original exactly (data and attributes,
from either dead-letter form: beside ours or in the JSON envelope), publishes it to --topic
with the attribute `replayed=<this run>` added, and only then acknowledges the dead letter.
A dead letter that cannot be replayed (its data was truncated to fit, it cannot be rebuilt or
published, or its original carries this run's mark: the job refused what this run sent, so
the cause is not fixed) is left on the subscription, and the run says why. So one run
publishes each dead letter's original at most once, even while the job keeps refusing them;
a later run (after the fix) replays them again. --dry-run publishes and acknowledges nothing
and hands every dead letter back at once.
The run ends after --limit dead letters, or once no new dead letter (one this run has not
seen; a redelivery is not new) has arrived for --wait seconds. A long run says how far it is
every PROGRESS_SECONDS.

mnist_batch (files): reads the JSON-lines dead letters {"Error", "Row"} and writes an
`ID,Image` CSV the batch job takes as --input. A CSV line comes back byte for byte (a line
that was not UTF-8 too); a row the job wrote as JSON (a BigQuery row, or an image the model
refused after parsing) becomes the CSV line of its ID and Image. For a table of dead letters,
export it first: `bq extract --destination_format NEWLINE_DELIMITED_JSON TABLE gs://...`.

Credentials: Application Default Credentials; with PUBSUB_EMULATOR_HOST set, the emulator.
Exit status: 0 when the run ended (dead letters that could not be replayed are reported, not
an error), 1 when Pub/Sub or a file refused (nothing unpublished is acknowledged), 2 for a
bad command line (one line naming the argument).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from pipelines.core.checks import check_credentials, is_gcs
from pipelines.core.deadletters import (
    ERROR_ATTRIBUTE,
    MAX_MESSAGE_BYTES,
    REPLAYED_ATTRIBUTE,
    STAGE_ATTRIBUTE,
    dead_letter_message,
    original_message,
    publish_problem,
)
from pipelines.core.grammar import PUBSUB_SUBSCRIPTION, PUBSUB_TOPIC, Kind
from pipelines.core.json_text import NestedTooDeep, read_json
from pipelines.core.params import OneLineErrorParser, ParameterError, finite_float
from tools.pubsub_cli import add_project_argument

# --- the pure part: a dead letter -> its original, or why not --------------------------


class Message(NamedTuple):
    """A pulled message, as the dead-letter functions read one (no Beam needed)."""

    data: bytes
    attributes: dict
    message_id: str | None = None


@dataclass(frozen=True)
class Original:
    data: bytes
    attributes: dict


@dataclass(frozen=True)
class Refusal:
    kind: str  # what the final line counts by: "truncated", "cannot be rebuilt", ...
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


TRUNCATED = "truncated"
NOT_A_DEAD_LETTER = "not a dead letter"
NOT_REBUILT = "cannot be rebuilt"
NOT_PUBLISHABLE = "cannot be published"
FAILED_AGAIN = "failed again after replay"


def rebuild(dead_letter) -> Original | Refusal:
    """The original message of a dead letter (either form), exactly; or why it cannot be
    replayed. Total: never raises, whatever the message holds."""
    attributes = dict(dead_letter.attributes or {})
    if ERROR_ATTRIBUTE not in attributes:
        return Refusal(NOT_A_DEAD_LETTER, f"it has no {ERROR_ATTRIBUTE!r} attribute")
    try:
        data, originals, cut_from = original_message(dead_letter)
    except Exception as error:  # noqa: BLE001 - a broken envelope is one refusal, not a crash
        return Refusal(NOT_REBUILT, f"{type(error).__name__}: {error}")
    if cut_from is not None:
        return Refusal(
            TRUNCATED,
            f"the dead letter keeps {len(data)} of the original's {cut_from} bytes "
            f"(truncated_from_bytes)",
        )
    if not isinstance(originals, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in originals.items()
    ):
        return Refusal(NOT_REBUILT, "the envelope's attributes are not a map of text to text")
    original = Original(bytes(data), originals)
    # Exact means: the jobs' own rule makes this very dead letter of it again. (A lenient
    # read of an edited envelope, such as base64 with stray characters, would not.)
    again = dead_letter_message(
        original.data,
        original.attributes,
        attributes[ERROR_ATTRIBUTE],
        stage=attributes.get(STAGE_ATTRIBUTE),
    )
    if (bytes(again.data), dict(again.attributes)) != (bytes(dead_letter.data), attributes):
        return Refusal(
            NOT_REBUILT, "it is not the dead letter the jobs make of its original (edited?)"
        )
    problem = publish_problem(Message(original.data, original.attributes))
    if problem:
        return Refusal(NOT_PUBLISHABLE, problem)
    return original


def run_mark() -> str:
    """The value of `replayed` on what one run publishes: when, and a token that tells two
    runs started in the same second apart."""
    return f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {secrets.token_hex(4)}"


def to_replay(dead_letter, run: str) -> Original | Refusal:
    """What the run marked `run` publishes for a dead letter: its exact original plus
    `replayed=run`; or why nothing. Total, like `rebuild`."""
    outcome = rebuild(dead_letter)
    if isinstance(outcome, Refusal):
        return outcome
    if outcome.attributes.get(REPLAYED_ATTRIBUTE) == run:
        # Publishing it again would bring it back again, for as long as the job runs.
        reason = dict(dead_letter.attributes).get(ERROR_ATTRIBUTE, "")
        return Refusal(
            FAILED_AGAIN,
            f"this run replayed its original ({REPLAYED_ATTRIBUTE}={run}) and the job "
            f"refused it again: {reason}",
        )
    marked = Original(outcome.data, {**outcome.attributes, REPLAYED_ATTRIBUTE: run})
    problem = publish_problem(Message(marked.data, marked.attributes))
    if problem:
        return Refusal(NOT_PUBLISHABLE, f"with {REPLAYED_ATTRIBUTE!r} added: {problem}")
    return marked


def summary_line(replayed: int, refused: Counter, *, dry_run: bool, topic: str) -> str:
    """The run's last line: how many went back, and why any did not."""
    verb = "would replay" if dry_run else "replayed"
    line = f"{verb} {replayed} dead letter{'s' if replayed != 1 else ''} to {topic}"
    total = sum(refused.values())
    if total:
        reasons = ", ".join(f"{count} {kind}" for kind, count in sorted(refused.items()))
        line += f"; {total} not replayed, left on the subscription ({reasons})"
    return line


# --- Pub/Sub ------------------------------------------------------------------------------

PAGE = 100  # dead letters per pull
HOLD_SECONDS = 600  # Pub/Sub's longest ack deadline: what is kept back stays ours this long
PUBLISH_TIMEOUT_SECONDS = 60
# One publish request carries at most 1,000 messages and 10 MB; keep a margin for framing.
REQUEST_MESSAGES = 1000
REQUEST_BYTES = MAX_MESSAGE_BYTES - 100_000
ACK_IDS_PER_REQUEST = 1000
PROGRESS_SECONDS = 10.0  # a long run says how far it is this often


class ReplayFailed(Exception):
    """Pub/Sub refused: the run stops; nothing whose original is not out was acknowledged."""


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def _clients():
    """(subscriber, publisher) from the one Pub/Sub client factory (64 MiB gRPC limits, on
    the emulator when PUBSUB_EMULATOR_HOST is set). The publisher is the generated (GAPIC)
    one: one request per batch of originals, its attributes passed as a map. (The library's
    batching `publish(topic, data, **attrs)` would take an original's attribute named
    `timeout`, `retry` or `ordering_key` for its own argument.)"""
    from pipelines.io.pubsub_clients import publisher_client, subscriber_client

    return subscriber_client(), publisher_client().api


def _requests(originals: list) -> list[list]:
    """`(key, Original)` pairs grouped into publish requests within Pub/Sub's limits."""
    requests, current, size = [], [], 0
    for key, original in originals:
        message_bytes = len(original.data) + sum(
            len(k.encode()) + len(v.encode()) + 8 for k, v in original.attributes.items()
        )
        if current and (len(current) >= REQUEST_MESSAGES or size + message_bytes > REQUEST_BYTES):
            requests.append(current)
            current, size = [], 0
        current.append((key, original))
        size += message_bytes
    return requests + ([current] if current else [])


@dataclass
class Replay:
    subscription: str
    topic: str
    limit: int | None = None
    dry_run: bool = False
    wait: float = 5.0
    out: object = sys.stderr
    mark: str = field(default_factory=run_mark)  # this run's `replayed` value
    clock: Callable[[], float] = time.monotonic
    replayed: int = 0
    refused: Counter = field(default_factory=Counter)
    _outcome: dict = field(default_factory=dict)  # message_id -> "replayed" | "kept"
    _kept: dict = field(default_factory=dict)  # message_id -> latest ack_id

    @property
    def taken(self) -> int:
        return len(self._outcome)

    def run(self, subscriber, publisher) -> None:
        """Pulls until --limit, or until no new dead letter has arrived for `wait` seconds;
        raises ReplayFailed when Pub/Sub refuses."""
        try:
            last_new = last_progress = self.clock()
            while self.limit is None or self.taken < self.limit:
                wanted = PAGE if self.limit is None else min(PAGE, self.limit - self.taken)
                # Only a dead letter this run has not seen restarts the clock: redeliveries
                # of those it keeps back would otherwise hold a finished run open.
                if self._handle(subscriber, publisher, self._pull(subscriber, wanted)):
                    last_new = self.clock()
                elif self.clock() - last_new >= self.wait:
                    print(
                        f"no new dead letter for {self.wait:g} s: done ({self.progress()})",
                        file=self.out,
                    )
                    break
                if self.clock() - last_progress >= PROGRESS_SECONDS:
                    last_progress = self.clock()
                    print(self.progress(), file=self.out, flush=True)
        finally:
            self._hand_back(subscriber)

    def progress(self) -> str:
        reasons = ", ".join(f"{n} {kind}" for kind, n in sorted(self.refused.items()))
        return (
            f"{'would replay' if self.dry_run else 'replayed'} {self.replayed} of "
            f"{self.taken} dead letters seen"
            + (f"; not replayed {sum(self.refused.values())} ({reasons})" if reasons else "")
        )

    def _pull(self, subscriber, wanted: int) -> list:
        from google.api_core import exceptions

        try:
            response = subscriber.pull(
                request={"subscription": self.subscription, "max_messages": wanted},
                timeout=max(self.wait, 1.0),
            )
        except (exceptions.DeadlineExceeded, exceptions.ServiceUnavailable):
            return []  # nothing arrived in time: the caller's idle clock decides
        except exceptions.GoogleAPICallError as error:
            raise ReplayFailed(
                f"pulling from {self.subscription} failed: {_first_line(error)}"
            ) from None
        return list(response.received_messages)

    def _handle(self, subscriber, publisher, received: list) -> int:
        """Replays or keeps back what a pull brought; returns how many of it were new."""
        to_publish, to_ack, kept, new = [], [], [], 0
        for item in received:
            message = item.message
            seen = self._outcome.get(message.message_id)
            if seen == "replayed":  # redelivered after its ack was lost: its original is out
                to_ack.append(item.ack_id)
                continue
            if seen == "kept":  # redelivered after HOLD_SECONDS: keep the newest ack id
                self._kept[message.message_id] = item.ack_id
                kept.append(item.ack_id)
                continue
            new += 1
            outcome = to_replay(
                Message(bytes(message.data), dict(message.attributes), message.message_id),
                self.mark,
            )
            if isinstance(outcome, Refusal):
                self.refused[outcome.kind] += 1
                print(f"not replayed: message {message.message_id}: {outcome}", file=self.out)
                self._keep(message.message_id, item.ack_id, kept)
            elif self.dry_run:
                print(
                    f"would publish message {message.message_id} as {len(outcome.data)} "
                    f"bytes with {len(outcome.attributes)} attributes",
                    file=self.out,
                )
                self.replayed += 1
                self._keep(message.message_id, item.ack_id, kept)
            else:
                to_publish.append((item, outcome))
        self._extend(subscriber, kept)
        failure = None
        for request in _requests(to_publish):
            if failure is None:
                failure = self._publish(publisher, request)
            if failure is not None:  # not published: hand these back, unacknowledged
                for item, _ in request:
                    self._keep(item.message.message_id, item.ack_id, [])
            else:
                to_ack += [item.ack_id for item, _ in request]
                for item, _ in request:
                    self._outcome[item.message.message_id] = "replayed"
                self.replayed += len(request)
        self._acknowledge(subscriber, to_ack)
        if failure is not None:
            raise ReplayFailed(
                f"publishing to {self.topic} failed: {failure}; {self.replayed} replayed "
                f"before, the rest left on {self.subscription}"
            )
        return new

    def _keep(self, message_id: str, ack_id: str, kept: list) -> None:
        self._outcome[message_id] = "kept"
        self._kept[message_id] = ack_id
        kept.append(ack_id)

    def _publish(self, publisher, request: list) -> str | None:
        from google.pubsub_v1.types import PubsubMessage as Wire

        try:
            publisher.publish(
                topic=self.topic,
                messages=[Wire(data=o.data, attributes=o.attributes) for _, o in request],
                timeout=PUBLISH_TIMEOUT_SECONDS,
            )
        except Exception as error:  # noqa: BLE001 - any refusal stops the run in one line
            return _first_line(error)
        return None

    def _acknowledge(self, subscriber, ack_ids: list) -> None:
        for start in range(0, len(ack_ids), ACK_IDS_PER_REQUEST):
            try:
                subscriber.acknowledge(
                    request={
                        "subscription": self.subscription,
                        "ack_ids": ack_ids[start : start + ACK_IDS_PER_REQUEST],
                    }
                )
            except Exception as error:  # noqa: BLE001
                # Their originals are out: a dead letter whose ack is lost comes back
                # later and is acknowledged then (or replayed again by a later run).
                print(f"acknowledging failed: {_first_line(error)}", file=self.out)

    def _modify(self, subscriber, ack_ids: list, seconds: int) -> None:
        for start in range(0, len(ack_ids), ACK_IDS_PER_REQUEST):
            try:
                subscriber.modify_ack_deadline(
                    request={
                        "subscription": self.subscription,
                        "ack_ids": ack_ids[start : start + ACK_IDS_PER_REQUEST],
                        "ack_deadline_seconds": seconds,
                    }
                )
            except Exception as error:  # noqa: BLE001 - they come back after their deadline
                print(f"changing ack deadlines failed: {_first_line(error)}", file=self.out)

    def _extend(self, subscriber, ack_ids: list) -> None:
        # Kept back until the run ends, so that the next pull brings new dead letters.
        self._modify(subscriber, ack_ids, HOLD_SECONDS)

    def _hand_back(self, subscriber) -> None:
        self._modify(subscriber, list(self._kept.values()), 0)
        self._kept.clear()


# --- files: mnist_batch's dead-letter rows -> its CSV input --------------------------------

CSV_HEADER = "ID,Image"
_ESCAPED_BYTE = re.compile(rb"\\x([89a-f][0-9a-f])")


def _row_object(row: str) -> dict | None:
    """The row the job wrote as JSON (`json.dumps(row)`), or None for a raw CSV line."""
    if not row.startswith("{"):
        return None
    try:
        value = read_json(row)
    except ValueError:
        return None
    if (
        isinstance(value, dict)
        and set(value) == {"ID", "Image"}
        # The job's rows hold a number or text in each; anything else is a raw line.
        and all(isinstance(v, (str, int, float, type(None))) for v in value.values())
        and json.dumps(value, default=str) == row
    ):
        return value
    return None


def csv_line(dead_letter: dict) -> bytes | Refusal:
    """The input line (without its newline) that gave this dead-letter row, or why none."""
    row, error = dead_letter.get("Row"), dead_letter.get("Error")
    if not isinstance(row, str) or not isinstance(error, str):
        return Refusal(NOT_A_DEAD_LETTER, "expected the text fields Error and Row")
    value = _row_object(row)
    if value is not None:
        text = io.StringIO()
        csv.writer(text, lineterminator="").writerow(
            ["" if value[k] is None else value[k] for k in ("ID", "Image")]
        )
        line = text.getvalue().encode("utf-8", "backslashreplace")
    elif "not UTF-8" in error:
        # The job kept the line's bad bytes as \xNN escapes (and only those: UTF-8 text
        # decodes as it is), so the escapes of bytes 0x80-0xFF turn back into the bytes.
        line = _ESCAPED_BYTE.sub(
            lambda m: bytes([int(m[1], 16)]), row.encode("utf-8", "backslashreplace")
        )
        if line.decode("utf-8", "backslashreplace") != row:
            line = row.encode("utf-8", "backslashreplace")
    else:
        line = row.encode("utf-8", "backslashreplace")
    # The job reads lines split at \n, dropping a \r just before it (pipelines/lines.py).
    if b"\n" in line or line.endswith(b"\r"):
        return Refusal(NOT_REBUILT, "the row would not read back as one line of the CSV")
    return line


def line_to_csv(raw: bytes) -> bytes | Refusal:
    """The CSV line of one line of a dead-letter file (JSON text, as the job and
    `bq extract` write it), or why none. Total: never raises, whatever the line holds."""
    if not raw.strip():
        return Refusal(NOT_A_DEAD_LETTER, "an empty line")
    try:
        value = read_json(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return Refusal(NOT_A_DEAD_LETTER, "not UTF-8 text")
    except NestedTooDeep:
        return Refusal(NOT_A_DEAD_LETTER, "JSON nested too deeply to read")
    except ValueError as error:
        return Refusal(NOT_A_DEAD_LETTER, f"not JSON: {error}")
    if not isinstance(value, dict):
        return Refusal(NOT_A_DEAD_LETTER, f"a JSON {type(value).__name__}, not an object")
    return csv_line(value)


def same_file(destination: str, sources: list[str]) -> str | None:
    """The source that `destination` is, whatever the spelling (`./`, `..`, symbolic or
    hard links), or None. Object names in a bucket are compared as they are."""
    if is_gcs(destination):
        return next((s for s in sources if s == destination), None)
    target = os.path.realpath(destination)
    for source in sources:
        if is_gcs(source):
            continue
        if os.path.realpath(source) == target:
            return source
        try:
            if os.path.samefile(source, destination):
                return source
        except OSError:  # the destination does not exist yet
            pass
    return None


def rows_to_csv(pattern: str, destination: str, out=sys.stderr) -> tuple[int, Counter]:
    """Writes the CSV of every dead-letter row in the files matching `pattern`; returns how
    many rows it wrote and why any could not be (every line is one or the other).
    Raises ParameterError, before writing anything, when `destination` is one of them."""
    from apache_beam.io.filesystems import FileSystems

    matched = sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
    if not matched:
        raise ReplayFailed(f"--from-file: no file matches {pattern}")
    source = same_file(destination, matched)
    if source is not None:
        raise ParameterError(
            "to-csv",
            f"{destination} is {source}, a file --from-file reads: writing it would erase "
            f"its dead letters",
        )
    written, refused = 0, Counter()
    with FileSystems.create(destination) as sink:
        sink.write(CSV_HEADER.encode() + b"\n")
        for path in matched:
            with FileSystems.open(path) as handle:
                # A line ends at \n, as iterating over a binary file splits it.
                for number, raw in enumerate(io.BufferedReader(handle), start=1):
                    outcome = line_to_csv(raw)
                    if isinstance(outcome, Refusal):
                        refused[outcome.kind] += 1
                        print(f"not written: line {number} of {path}: {outcome}", file=out)
                        continue
                    sink.write(outcome + b"\n")
                    written += 1
    return written, refused


# --- command line -------------------------------------------------------------------------


def positive_int(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def _path(project: str | None, name: str, kind: str, grammar: Kind, argument: str) -> str:
    if not name.startswith("projects/"):
        if not project:
            raise ParameterError(
                argument, f"the short name {name!r} needs --project (or $GOOGLE_CLOUD_PROJECT)"
            )
        name = f"projects/{project}/{kind}/{name}"
    problem = grammar.problem(name)
    if problem:
        raise ParameterError(argument, problem)
    return name


def parse_arguments(argv=None):
    parser = OneLineErrorParser(
        prog="replay_dead_letters", description=__doc__.strip().splitlines()[0]
    )
    add_project_argument(parser)
    parser.add_argument("--subscription", help="the dead-letter subscription to replay from")
    parser.add_argument("--topic", help="the job's input topic to publish the originals to")
    parser.add_argument("--limit", type=positive_int, help="take at most this many dead letters")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="publish and acknowledge nothing; say what would be published",
    )
    parser.add_argument(
        "--wait",
        type=finite_float,
        default=5.0,
        help="stop once no new dead letter has arrived for this many seconds (default 5)",
    )
    parser.add_argument("--from-file", help="mnist_batch dead-letter files (JSON lines)")
    parser.add_argument("--to-csv", help="the ID,Image CSV to write from --from-file")
    args = parser.parse_args(argv)
    try:
        stream = args.subscription is not None or args.topic is not None
        files = args.from_file is not None or args.to_csv is not None
        if stream and files:
            raise ParameterError(
                "from-file", "replay from a subscription or from files, not both at once"
            )
        if files:
            if not args.from_file:
                raise ParameterError("from-file", "is required with --to-csv")
            if not args.to_csv:
                raise ParameterError("to-csv", "is required with --from-file")
            if args.limit or args.dry_run:
                raise ParameterError(
                    "limit" if args.limit else "dry-run", "applies to a subscription only"
                )
            for name in ("from-file", "to-csv"):
                value = getattr(args, name.replace("-", "_"))
                if is_gcs(value):
                    check_credentials(name, value)
                else:  # as a shell would: what is read and written is what is compared
                    setattr(args, name.replace("-", "_"), os.path.expanduser(value))
            if not is_gcs(args.from_file):
                # Beam matches nothing for a relative pattern without a folder ('x-*.json').
                args.from_file = os.path.join(os.getcwd(), args.from_file)
            return args
        if not args.subscription:
            raise ParameterError("subscription", "is required: where the dead letters are")
        if not args.topic:
            raise ParameterError("topic", "is required: the job's input topic")
        if not 0 < args.wait <= 600:
            raise ParameterError("wait", f"expected 0 to 600 seconds, got {args.wait:g}")
        args.subscription = _path(
            args.project,
            args.subscription,
            "subscriptions",
            PUBSUB_SUBSCRIPTION,
            "subscription",
        )
        args.topic = _path(args.project, args.topic, "topics", PUBSUB_TOPIC, "topic")
        _check_pubsub_credentials()
    except ParameterError as error:
        parser.error(str(error))
    return args


def _check_pubsub_credentials() -> None:
    # Without any, the client library would fail with a traceback at its first call.
    if os.environ.get("PUBSUB_EMULATOR_HOST"):
        return
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        google.auth.default()
    except DefaultCredentialsError:
        raise ParameterError(
            "subscription",
            "no Google credentials were found: run `gcloud auth application-default login`, "
            "or set PUBSUB_EMULATOR_HOST for the local emulator",
        ) from None


def _look_up(subscriber, publisher, args, out=sys.stderr) -> None:
    """Both exist, and are not a loop (publishing to the topic the dead letters come from
    would replay them for ever): checked before the first pull, in a dry run too."""
    from google.api_core import exceptions

    try:
        found = subscriber.get_subscription(
            request={"subscription": args.subscription}, timeout=10
        ).topic
    except exceptions.NotFound:
        raise ParameterError("subscription", f"{args.subscription} does not exist") from None
    except exceptions.GoogleAPICallError:
        found = None  # cannot tell (permissions): the pull says more if it matters
    try:
        publisher.get_topic(request={"topic": args.topic}, timeout=10)
    except exceptions.NotFound:
        raise ParameterError("topic", f"{args.topic} does not exist") from None
    except exceptions.GoogleAPICallError as error:
        # Publishing needs less than looking up (roles/pubsub.publisher): not a refusal.
        print(f"could not look up --topic: {_first_line(error)}", file=out)
    if found == args.topic:  # both are full paths (parse_arguments)
        raise ParameterError(
            "topic", f"is the dead letters' own topic ({found}): they would come back for ever"
        )


def main(argv=None) -> int:
    args = parse_arguments(argv)
    if args.from_file:
        try:
            written, refused = rows_to_csv(args.from_file, args.to_csv)
        except ParameterError as error:
            print(f"replay_dead_letters: error: {error}", file=sys.stderr)
            return 2
        except ReplayFailed as error:
            print(f"replay_dead_letters: error: {error}", file=sys.stderr)
            return 1
        except OSError as error:
            print(f"replay_dead_letters: error: {_first_line(error)}", file=sys.stderr)
            return 1
        line = f"wrote {written} row{'s' if written != 1 else ''} to {args.to_csv}"
        if refused:
            reasons = ", ".join(f"{n} {kind}" for kind, n in sorted(refused.items()))
            line += f"; {sum(refused.values())} not written ({reasons})"
        print(line)
        return 0

    subscriber, publisher = _clients()
    try:
        try:
            _look_up(subscriber, publisher, args)
        except ParameterError as error:
            print(f"replay_dead_letters: error: {error}", file=sys.stderr)
            return 2
        replay = Replay(
            args.subscription, args.topic, limit=args.limit, dry_run=args.dry_run, wait=args.wait
        )
        try:
            replay.run(subscriber, None if args.dry_run else publisher)
        except ReplayFailed as error:
            print(f"replay_dead_letters: error: {error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
        print(summary_line(replay.replayed, replay.refused, dry_run=args.dry_run, topic=args.topic))
        return 0
    finally:
        subscriber.close()
        publisher.transport.close()


if __name__ == "__main__":
    sys.exit(main())
