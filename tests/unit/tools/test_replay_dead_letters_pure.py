"""The pure part of tools.replay_dead_letters: a dead letter made by the jobs' own
dead_letter_message (or dead_letter_row) back to its original, exactly, or a stated refusal."""

from __future__ import annotations

import json
from collections import Counter

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
    NOT_A_DEAD_LETTER,
    NOT_PUBLISHABLE,
    NOT_REBUILT,
    TRUNCATED,
    Original,
    Refusal,
    csv_line,
    rebuild,
    summary_line,
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
