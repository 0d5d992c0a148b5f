"""Properties of the MNIST records and model contract over hostile input (hypothesis).

Every input has exactly one outcome, a parsed row or a BadRecord with a reason; no other
exception escapes, whatever the bytes."""

from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from pipelines.core.deadletters import dead_letter_row, to_json_line
from pipelines.mnist import contract
from pipelines.mnist.records import (
    ID_RANGE,
    NUM_PIXELS,
    BadRecord,
    is_csv_header,
    parse_csv_bytes,
    parse_id,
    parse_image,
    parse_image_batch,
    parse_json_message,
    prediction_lines,
    prediction_row,
    prediction_rows,
    split_csv_line,
)
from tests.support.mnist_reference import parse_row
from tests.support.processes import REPO
from tests.support.properties import PROPERTY

SAVED_MODEL = (REPO / "models" / "mnist" / "saved_model.pb").read_bytes()


def outcome(parse, raw):
    """('row', (ID, pixels)) or ('dead', reason): the only two ways out."""
    try:
        image_id, pixels = parse_row(parse(raw))
    except BadRecord as error:
        assert str(error), "a dead letter always says why"
        return "dead", str(error)
    assert ID_RANGE[0] <= image_id <= ID_RANGE[1]
    assert pixels.dtype == np.float32 and pixels.shape == (NUM_PIXELS,)
    assert np.all((pixels >= 0) & (pixels <= 1))
    return "row", image_id


pixel_text = st.one_of(
    st.floats(0, 1).map(repr),
    st.sampled_from(
        ["0", "1", ".5", "0.0", "1.0", "nan", "-0.1", "1e-3", " 0.5", "inf", "", "0x1", "\u0661"]
    ),
)


def _image(specials: list[str], count: int, start: int) -> str:
    # A few drawn values at a drawn place among plain ones: drawing all 784 would make each
    # example a hundred times slower and find nothing more.
    values = ["0.25"] * count
    values[start % count : start % count + len(specials)] = specials
    return ",".join(values)


images = st.builds(
    _image, st.lists(pixel_text, max_size=6), st.integers(780, 788), st.integers(0, 800)
)
ids = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.text(max_size=8),
    st.sampled_from(["+-5", "\u00b2", "1.0", " 7 ", "-0"]),
)
csv_lines = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda i, img, q: f"{i},{q}{img}{q}".encode(), ids, images, st.sampled_from(['"', ""])
    ),
    st.builds(
        lambda i, img, junk: f'{i},"{img}"'.encode() + junk, ids, images, st.binary(max_size=4)
    ),
)


@PROPERTY
@given(csv_lines)
def test_every_csv_line_is_a_row_or_a_dead_letter_with_its_reason(line):
    kind, _ = outcome(parse_csv_bytes, line)
    if kind == "dead":
        row = dead_letter_row(line, "reason")
        assert json.loads(to_json_line(row))["Row"] == line.decode("utf-8", "backslashreplace")
    assert not (kind == "row" and is_csv_header(line))


@PROPERTY
@given(
    st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda i, img: json.dumps({"ID": i, "Image": img}).encode(),
            st.one_of(
                st.integers(-(2**70), 2**70),
                st.floats(),
                st.text(max_size=5),
                st.none(),
                st.booleans(),
            ),
            images,
        ),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.text(max_size=5),
            lambda children: (
                st.lists(children, max_size=3)
                | st.dictionaries(st.text(max_size=5), children, max_size=3)
            ),
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_every_message_is_a_row_or_a_dead_letter_with_its_reason(data):
    outcome(parse_json_message, data)


@PROPERTY
@given(
    st.one_of(
        st.integers(),
        st.floats(allow_nan=True),
        st.text(),
        st.none(),
        st.booleans(),
        st.binary(max_size=10),
        st.lists(st.integers(), max_size=2),
    )
)
def test_an_id_is_an_int64_or_a_reason(value):
    try:
        parsed = parse_id(value)
    except BadRecord:
        return
    assert isinstance(parsed, int) and ID_RANGE[0] <= parsed <= ID_RANGE[1]


@PROPERTY
@given(st.lists(st.floats(0, 1, width=32), min_size=1, max_size=16), st.integers(0, 1000))
def test_valid_images_parse_exactly(drawn, start):
    values = [0.5] * NUM_PIXELS
    values[start % NUM_PIXELS : start % NUM_PIXELS + len(drawn)] = drawn
    values = values[:NUM_PIXELS] + [0.5] * (NUM_PIXELS - len(values))
    text = ",".join(repr(v) for v in values)
    assert np.array_equal(parse_image(text), np.array(values, dtype=np.float32))


@PROPERTY
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=12))
def test_a_prediction_row_is_finite_json_or_a_reason(probabilities):
    try:
        row = prediction_row(7, probabilities)
    except BadRecord as error:
        assert "finite probabilities" in str(error)
        return
    assert all(math.isfinite(row[f"P{d}"]) for d in range(10))
    json.loads(json.dumps(row, allow_nan=False))


@PROPERTY
@given(
    st.one_of(
        st.binary(max_size=400),
        st.tuples(
            st.integers(0, len(SAVED_MODEL) - 1),
            st.integers(0, 255),
            st.integers(0, len(SAVED_MODEL)),
        ).map(
            lambda m: (SAVED_MODEL[: m[0]] + bytes([m[1]]) + SAVED_MODEL[m[0] + 1 :])[
                : max(m[2], 1)
            ]
        ),
    )
)
def test_the_model_check_accepts_or_says_why_never_crashes(data):
    try:
        contract.check_saved_model(data)
        contract.check_checkpoint_meta(data)
    except contract.ModelFormatError as error:
        assert str(error)


def test_the_bundled_model_meets_the_contract():
    contract.check_saved_model(SAVED_MODEL)


def reference(line: bytes):
    """The row-by-row path the batch path must equal: ('row', ID, pixel bytes) or ('dead',
    reason)."""
    try:
        image_id, pixels = parse_row(parse_csv_bytes(line))
    except BadRecord as error:
        return "dead", str(error)
    return "row", image_id, pixels.tobytes()


def batched(lines: list[bytes]) -> list:
    outcomes: list = [None] * len(lines)
    kept, ids, images = [], [], []
    for index, line in enumerate(lines):
        try:
            raw_id, raw_image = split_csv_line(line)
            ids.append(parse_id(raw_id))
        except BadRecord as error:
            outcomes[index] = ("dead", str(error))
        else:
            kept.append(index)
            images.append(raw_image)
    pixels, failures = parse_image_batch(images)
    for position, index in enumerate(kept):
        outcomes[index] = (
            ("dead", str(failures[position]))
            if position in failures
            else ("row", ids[position], pixels[position].tobytes())
        )
    return outcomes


BUNDLED = (REPO / "data" / "mnist_sample.csv").read_bytes().splitlines()[1:]


@PROPERTY
@given(st.lists(st.one_of(csv_lines, st.sampled_from(BUNDLED)), max_size=12))
def test_the_batch_parser_equals_the_row_by_row_reference(lines):
    assert batched(lines) == [reference(line) for line in lines]


def test_the_batch_parser_equals_the_reference_on_the_bundled_sample():
    assert batched(BUNDLED) == [reference(line) for line in BUNDLED]


@PROPERTY
@given(
    st.lists(
        st.tuples(
            st.integers(*ID_RANGE), st.lists(st.floats(0, 1, width=32), min_size=10, max_size=10)
        ),
        min_size=1,
        max_size=8,
    )
)
def test_bulk_formatting_equals_the_row_by_row_reference(rows):
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    probabilities = np.array([r[1] for r in rows], dtype=np.float32)
    expected = [prediction_row(i, p) for i, p in zip(ids, probabilities)]
    assert prediction_lines(ids, probabilities).split("\n") == [to_json_line(r) for r in expected]
    assert prediction_rows(ids, probabilities) == expected


def _wrap(record: bytes, breaks: list[int], ending: bytes) -> bytes:
    """`record` with line breaks put after some of its commas (inside the quoted Image)."""
    parts = record.split(b",")
    return (
        b"".join(
            part + (b"," + ending if i in breaks else b",") for i, part in enumerate(parts[:-1])
        )
        + parts[-1]
    )


@PROPERTY
@given(
    st.lists(
        st.tuples(
            st.one_of(csv_lines, st.sampled_from(BUNDLED)),
            st.lists(st.integers(1, NUM_PIXELS), max_size=3),
            st.sampled_from([b"\n", b"\r\n"]),
        ),
        max_size=6,
    )
)
def test_a_csv_file_is_records_each_with_one_outcome(rows):
    """Quoted line breaks or not, each record of a file read as the job reads it (records,
    then the batch parser) has one outcome, the reference's for that record; and a record with
    an unclosed quote is a dead letter that says so."""
    import io

    from pipelines.io.lines import iter_lines, iter_records

    data = b"\n".join(_wrap(line, breaks, ending) for line, breaks, ending in rows)
    records = [r for _, r in iter_records(iter_lines(io.BytesIO(data)))]
    outcomes = batched(records)
    assert outcomes == [reference(record) for record in records]
    for record, result in zip(records, outcomes):
        if record.count(b'"') % 2:
            assert result[0] == "dead"
            assert result[1].startswith(("unclosed quote", "line is not UTF-8")), result
    # A bundled row wrapped inside its quotes is still that one row.
    for line, breaks, ending in rows:
        if line in BUNDLED and _wrap(line, breaks, ending) in records:
            assert reference(_wrap(line, breaks, ending)) == reference(line)
