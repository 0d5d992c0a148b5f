"""The pure part of tools.replay_dead_letters: a dead letter made by the jobs' own
dead_letter_message (or dead_letter_row) back to its original, exactly, or a stated refusal."""

from __future__ import annotations

import io
import json
import os
from collections import Counter
from types import SimpleNamespace

import pytest
from apache_beam.io.gcp.pubsub import PubsubMessage
from hypothesis import assume, given
from hypothesis import strategies as st

from pipelines.core.deadletters import (
    dead_letter_message,
    dead_letter_row,
    publish_problem,
    to_json_line,
)
from pipelines.mnist.records import image_row, split_csv_line
from tests.support.properties import PROPERTY
from tools.replay_dead_letters import (
    FAILED_AGAIN,
    NOT_A_DEAD_LETTER,
    NOT_PUBLISHABLE,
    NOT_REBUILT,
    PROGRESS_SECONDS,
    TRUNCATED,
    Original,
    Refusal,
    Replay,
    csv_line,
    line_to_csv,
    main,
    rebuild,
    rows_to_csv,
    same_file,
    summary_line,
    to_replay,
)

# Keys and values of every kind the dead-letter rule tells apart: fine, too long, reserved
# (goog...), ours (error...), and lone surrogates that UTF-8 cannot carry.
keys = st.text(min_size=0, max_size=300) | st.sampled_from(
    ["error", "error_stage", "error_envelope", "truncated_from_bytes", "googx", "ID", "timeout"]
)
values = st.text(max_size=1100)
attribute_sets = st.dictionaries(keys, values, max_size=101)


@PROPERTY
@given(data=st.binary(max_size=3000), attributes=attribute_sets, reason=st.text(max_size=50))
def test_a_dead_letter_gives_back_its_original_exactly_or_says_why_not(data, attributes, reason):
    check_round_trip(data, attributes, reason)


# Data near Pub/Sub's 10 MB, in both forms (kept beside ours, or in the envelope): a few
# examples rather than a property, each costs a second.
@pytest.mark.parametrize("size", [9_850_000, 9_899_000, 10_000_000])
@pytest.mark.parametrize("attributes", [{"ID": "7"}, {f"a{i}": "v" for i in range(99)}])
def test_large_originals_come_back_or_are_refused_as_truncated(size, attributes):
    check_round_trip(b"\xfe" * size, attributes, "too big")


def check_round_trip(data: bytes, attributes: dict, reason: str) -> None:
    dead_letter = dead_letter_message(data, attributes, reason, stage="parse")
    outcome = rebuild(dead_letter)
    if "truncated_from_bytes" in dead_letter.attributes:
        assert outcome.kind == TRUNCATED
        assert f"of the original's {len(data)} bytes" in outcome.detail
    elif publish_problem(PubsubMessage(data, attributes)):
        assert outcome == Refusal(NOT_PUBLISHABLE, publish_problem(PubsubMessage(data, attributes)))
    else:
        assert outcome == Original(data, attributes)


def test_a_message_that_is_not_a_dead_letter_is_refused():
    assert rebuild(PubsubMessage(b"x", {"ID": "1"})).kind == NOT_A_DEAD_LETTER
    for data in (b"{", b'{"attributes": [1], "data": ""}', b'{"data": "AA=="}', b"[]"):
        outcome = rebuild(PubsubMessage(data, {"error": "e", "error_envelope": "json"}))
        assert outcome.kind == NOT_REBUILT, (data, outcome)
    # Edited after the job made it: lenient base64 would read "aGk=\n!" as b"hi".
    made = dead_letter_message(b"hi", {"error": "theirs"}, "bad", stage="parse")
    edited = made.data.replace(b'"aGk="', b'"aGk=\\n!"')
    assert edited != made.data
    assert rebuild(PubsubMessage(made.data, made.attributes)) == Original(
        b"hi", {"error": "theirs"}
    )
    assert rebuild(PubsubMessage(edited, made.attributes)).kind == NOT_REBUILT
    assert rebuild(PubsubMessage(b"x", {"error": "e"})).kind == NOT_REBUILT  # no error_stage


def test_the_summary_counts_each_reason():
    assert summary_line(1, Counter(), dry_run=False, topic="T") == "replayed 1 dead letter to T"
    assert summary_line(0, Counter({TRUNCATED: 2}), dry_run=True, topic="T") == (
        "would replay 0 dead letters to T; 2 not replayed, left on the subscription (2 truncated)"
    )


# --- mnist_batch: dead-letter rows back to CSV lines ----------------------------------------

# Lines as the job reads them: no newline, no carriage return at the end (ReadLines drops it).
lines = st.binary(max_size=400).filter(lambda b: b"\n" not in b and not b.endswith(b"\r"))


def job_reason(line: bytes) -> str:
    """The reason mnist_batch gives for a line (or any reason, for a line it would take)."""
    try:
        split_csv_line(line)
    except Exception as error:  # noqa: BLE001
        return str(error)
    return "inference failed: something"


@PROPERTY
@given(line=lines)
def test_a_csv_line_comes_back_byte_for_byte(line):
    # Two lines the dead letter cannot tell apart (a documented limit): a line that is not
    # UTF-8 and also holds the text \xHH; and a line that is exactly a JSON row of ID, Image.
    assume(not (b"\\x" in line and _not_utf8(line)))
    row = dead_letter_row(line, job_reason(line))
    assume(not row["Row"].startswith('{"ID": '))
    assert csv_line(json.loads(to_json_line(row))) == line


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


@PROPERTY
@given(
    image_id=st.integers(-(2**63), 2**63 - 1),
    pixels=st.lists(st.floats(0, 1, width=32), min_size=0, max_size=784),
)
def test_a_row_written_as_json_becomes_the_csv_line_of_its_id_and_image(image_id, pixels):
    row = dead_letter_row(image_row(image_id, pixels), "inference failed: x")
    line = csv_line(json.loads(to_json_line(row)))
    assert split_csv_line(line) == (str(image_id), ",".join(f"{v:g}" for v in pixels))


def test_rows_that_are_not_dead_letters_are_refused():
    assert csv_line({"Error": "x"}).kind == NOT_A_DEAD_LETTER
    assert csv_line({"Error": "x", "Row": 7}).kind == NOT_A_DEAD_LETTER
    spanning = dead_letter_row({"ID": 1, "Image": "0.0\n1.0"}, "bad")
    assert csv_line(spanning).kind == NOT_REBUILT


def test_importing_the_tool_imports_neither_beam_nor_the_pubsub_client():
    import subprocess
    import sys

    code = (
        "import sys, tools.replay_dead_letters; "
        "print(sorted(m for m in ('apache_beam', 'google.cloud.pubsub_v1') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# --- one run replays each original at most once ---------------------------------------------

RUN = "2026-12-07T01:00:00Z 0a1b2c3d"


@pytest.mark.parametrize(
    "attributes",
    [{"ID": "1"}, {f"a{i}": "v" for i in range(97)}, {"error": "the sender's own"}],
    ids=["beside ours", "envelope once marked", "envelope"],
)
def test_an_original_this_run_replayed_that_fails_again_stays(attributes):
    first = dead_letter_message(b"data", attributes, "bad", stage="parse")
    sent = to_replay(first, RUN)
    assert sent == Original(b"data", {**attributes, "replayed": RUN})
    # The job refuses it again, carrying the mark as it carries every original attribute.
    again = dead_letter_message(sent.data, sent.attributes, "still bad", stage="parse")
    outcome = to_replay(again, RUN)
    assert outcome.kind == FAILED_AGAIN
    assert outcome.detail.endswith("refused it again: still bad")
    # A later run (after the fix) replays it: once more, under its own mark.
    assert to_replay(again, "later") == Original(b"data", {**attributes, "replayed": "later"})


def test_an_original_with_no_room_for_the_mark_is_refused_as_unpublishable():
    full = {f"a{i:03d}": "v" for i in range(100)}
    outcome = to_replay(dead_letter_message(b"x", full, "bad", stage="parse"), RUN)
    assert outcome == Refusal(NOT_PUBLISHABLE, "with 'replayed' added: 101 attributes (max 100)")


class ScriptedSubscriber:
    """The calls Replay makes of a subscriber, on a queue of messages; every pull takes one
    second of the run's clock. Kept-back (extended) messages are not delivered again."""

    def __init__(self, messages=()):
        self.queue = list(messages)
        self.now = 0.0
        self.acked, self.handed_back = [], []
        self._ids = 0

    def add(self, data, attributes):
        self._ids += 1
        message_id = f"m{self._ids}"
        self.queue.append(
            SimpleNamespace(
                ack_id=f"ack-{message_id}",
                message=SimpleNamespace(message_id=message_id, data=data, attributes=attributes),
            )
        )
        return message_id

    def clock(self):
        return self.now

    def tick(self):
        self.now += 1.0
        if self.now > 1000:  # what today's main did: the run never ends
            raise AssertionError("the run did not end after 1,000 pulls")

    def pull(self, request, timeout):
        self.tick()
        page, self.queue = (
            self.queue[: request["max_messages"]],
            self.queue[request["max_messages"] :],
        )
        return SimpleNamespace(received_messages=page)

    def acknowledge(self, request):
        self.acked += request["ack_ids"]

    def modify_ack_deadline(self, request):
        if request["ack_deadline_seconds"] == 0:
            self.handed_back += request["ack_ids"]


class JobThatFailsAgain:
    """A publisher whose messages reach a running job that dead-letters every one of them
    again, onto the subscription being replayed: the cause was never fixed."""

    def __init__(self, subscriber):
        self.subscriber = subscriber
        self.published = []

    def publish(self, topic, messages, timeout):
        for message in messages:
            self.published.append((bytes(message.data), dict(message.attributes)))
            dead = dead_letter_message(
                message.data, dict(message.attributes), "still broken", stage="parse"
            )
            self.subscriber.add(dead.data, dict(dead.attributes))


def test_replaying_while_the_job_still_refuses_them_ends_and_publishes_each_once():
    subscriber = ScriptedSubscriber()
    originals = [(f"image {i}".encode(), {"ID": str(i)}) for i in range(5)]
    for data, attributes in originals:
        dead = dead_letter_message(data, attributes, "broken", stage="parse")
        subscriber.add(dead.data, dict(dead.attributes))
    job = JobThatFailsAgain(subscriber)
    out = io.StringIO()
    replay = Replay("S", "T", wait=3, out=out, mark=RUN, clock=subscriber.clock)

    replay.run(subscriber, job)

    assert job.published == [(d, {**a, "replayed": RUN}) for d, a in originals]
    assert replay.replayed == 5 and replay.refused == Counter({FAILED_AGAIN: 5})
    assert set(subscriber.acked) == {f"ack-m{i}" for i in range(1, 6)}
    # The second generation stays on the subscription, handed back at the end.
    assert set(subscriber.handed_back) == {f"ack-m{i}" for i in range(6, 11)}
    assert subscriber.now <= 3 + 3  # the pulls that brought something, then the idle window
    assert out.getvalue().count("failed again after replay: this run replayed") == 5
    assert summary_line(5, replay.refused, dry_run=False, topic="T") == (
        "replayed 5 dead letters to T; 5 not replayed, left on the subscription "
        "(5 failed again after replay)"
    )


class Redelivering(ScriptedSubscriber):
    """Delivers the same messages on every pull, as Pub/Sub does once a deadline passes."""

    def pull(self, request, timeout):
        self.tick()
        return SimpleNamespace(received_messages=list(self.queue))


def test_redeliveries_of_what_the_run_keeps_back_do_not_hold_it_open():
    subscriber = Redelivering()
    subscriber.add(b"not a dead letter", {"ID": "1"})
    replay = Replay("S", "T", wait=5, out=io.StringIO(), clock=subscriber.clock)
    replay.run(subscriber, None)
    assert subscriber.now == 1 + 5  # the pull that brought it, then the idle window
    assert replay.refused == Counter({NOT_A_DEAD_LETTER: 1})


class Trickle(ScriptedSubscriber):
    """A new dead letter with every pull, for `pulls` pulls."""

    def __init__(self, pulls):
        super().__init__()
        self.pulls = pulls

    def pull(self, request, timeout):
        if self.now < self.pulls:
            dead = dead_letter_message(b"x", {"ID": str(self.now)}, "bad", stage="parse")
            self.add(dead.data, dict(dead.attributes))
        return super().pull(request, timeout)


def test_a_long_run_says_how_far_it_is_and_why_it_ended():
    subscriber = Trickle(pulls=25)
    out = io.StringIO()
    replay = Replay("S", "T", dry_run=True, wait=2, out=out, clock=subscriber.clock)
    replay.run(subscriber, None)
    lines = [line for line in out.getvalue().splitlines() if "dead letters seen" in line]
    assert lines == [
        "would replay 10 of 10 dead letters seen",
        "would replay 20 of 20 dead letters seen",
        "no new dead letter for 2 s: done (would replay 25 of 25 dead letters seen)",
    ]
    assert PROGRESS_SECONDS == 10


# --- mnist_batch files: every line converts or is counted, the input is never the output ----


def good_line(image_id: int) -> bytes:
    return to_json_line(dead_letter_row(f'{image_id},"0.5"'.encode(), "784 values")).encode()


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    "hostile, reason",
    [
        (DEEP, "JSON nested too deeply to read"),
        (b'{"Error": "x", "Row": ' + DEEP + b"}", "JSON nested too deeply to read"),
        (b"", "an empty line"),
        (b"\xff{}", "not UTF-8 text"),
        (b"{\x00}\x00", "not JSON: "),  # what json.loads(bytes) would read as UTF-16
        (b"NaN", "a JSON float, not an object"),
        (b"1" * 5000, "not JSON: "),  # past Python's digits limit
    ],
)
def test_every_line_of_a_file_converts_or_is_counted_with_its_reason(tmp_path, hostile, reason):
    source = tmp_path / "errors-0.json"
    source.write_bytes(b"\n".join([good_line(1), hostile, good_line(2)]) + b"\n")
    out = io.StringIO()
    written, refused = rows_to_csv(str(tmp_path / "errors-*.json"), str(tmp_path / "x.csv"), out)
    assert (written, refused) == (2, Counter({NOT_A_DEAD_LETTER: 1}))
    assert f"not written: line 2 of {source}: not a dead letter: {reason}" in out.getvalue()
    assert (tmp_path / "x.csv").read_bytes() == b'ID,Image\n1,"0.5"\n2,"0.5"\n'


def test_a_row_nested_too_deeply_is_kept_as_the_raw_line_it_is():
    row = '{"ID": ' + "[" * 50_000 + "]" * 50_000 + ', "Image": ""}'
    assert csv_line({"Error": "e", "Row": row}) == row.encode()


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
rows = st.one_of(
    st.text(),
    json_values.map(json.dumps),
    st.fixed_dictionaries({"ID": json_values, "Image": json_values}).map(json.dumps),
    # The job's own JSON row shape, nested past what json reads.
    st.integers(1, 3000).map(lambda d: '{"ID": ' + "[" * d + "]" * d + ', "Image": ""}'),
)
file_lines = st.one_of(
    st.binary(max_size=200).map(lambda b: b.replace(b"\n", b"")),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"Error": st.text() | json_values, "Row": rows}).map(
        lambda d: json.dumps(d, ensure_ascii=False).encode("utf-8", "surrogatepass")
    ),
    st.integers(1, 20_000).map(lambda depth: b"{" * depth),
    st.integers(1, 20_000).map(lambda depth: b"[" * depth + b"]" * depth),
)


@PROPERTY
@given(lines=st.lists(file_lines, max_size=8))
def test_the_file_reader_has_one_outcome_per_line_whatever_the_line(lines):
    for line in lines:
        outcome = line_to_csv(line + b"\n")
        if isinstance(outcome, Refusal):
            assert outcome.kind and outcome.detail
        else:
            assert isinstance(outcome, bytes) and b"\n" not in outcome


@PROPERTY
@given(data=st.binary(max_size=2000) | st.lists(file_lines, max_size=6).map(b"\n".join))
def test_a_whole_file_of_anything_is_written_or_counted_line_by_line(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("lines")
    (folder / "errors-0.json").write_bytes(data)
    out = io.StringIO()
    written, refused = rows_to_csv(str(folder / "errors-*.json"), str(folder / "x.csv"), out)
    lines = data.split(b"\n")
    if lines[-1] == b"":  # the newline that ends the last line starts no new one
        lines.pop()
    assert written + sum(refused.values()) == len(lines)
    assert out.getvalue().count("not written: line ") == sum(refused.values())
    assert (folder / "x.csv").read_bytes().count(b"\n") == 1 + written


@pytest.mark.parametrize(
    "spelling",
    [
        "{d}/errors-1.json",
        "{d}/./sub/../errors-1.json",
        "{d}/link.json",
        "{d}/hard.json",
        "~/errors-1.json",
    ],
)
def test_a_csv_that_is_one_of_the_input_files_is_refused_and_the_file_kept(
    tmp_path, monkeypatch, capsys, spelling
):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "sub").mkdir()
    inputs = {
        name: good_line(i) + b"\n" for i, name in enumerate(["errors-0.json", "errors-1.json"])
    }
    for name, content in inputs.items():
        (tmp_path / name).write_bytes(content)
    (tmp_path / "link.json").symlink_to(tmp_path / "errors-1.json")
    os.link(tmp_path / "errors-1.json", tmp_path / "hard.json")
    target = spelling.format(d=tmp_path)

    status = main(["--from-file", str(tmp_path / "errors-*.json"), "--to-csv", target])

    assert status == 2
    assert capsys.readouterr().err.splitlines() == [
        f"replay_dead_letters: error: --to-csv: {os.path.expanduser(target)} is "
        f"{tmp_path / 'errors-1.json'}, a file --from-file reads: writing it would erase its "
        f"dead letters"
    ]
    assert {n: (tmp_path / n).read_bytes() for n in inputs} == inputs


def test_the_same_object_in_a_bucket_is_the_same_file():
    assert same_file("gs://b/e-1.json", ["gs://b/e-0.json", "gs://b/e-1.json"]) == "gs://b/e-1.json"
    assert same_file("gs://b/x.csv", ["gs://b/e-1.json"]) is None
    assert same_file("gs://b/e-1.json", ["/b/e-1.json"]) is None
