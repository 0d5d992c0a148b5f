"""Properties of the MNIST records and model contract over hostile input (hypothesis).

Every input has exactly one outcome, a parsed row or a BadRecord with a reason; no other
exception escapes, whatever the bytes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.core import tf_files
from pipelines.core.deadletters import dead_letter_row, to_json_line
from pipelines.mnist import contract
from pipelines.mnist.records import (
    ARROW_FORMAT_MIN_ROWS,
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
from tests.support.mnist_models import write_lab_checkpoint
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
@given(st.one_of(st.integers(0, 10**19), st.integers(-(10**19), 0)).map(str))
def test_an_id_of_plain_digits_is_its_integer_or_a_reason(text):
    try:
        assert parse_id(text) == int(text)
    except BadRecord as error:
        assert not ID_RANGE[0] <= int(text) <= ID_RANGE[1], error


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
        variables = contract.check_saved_model(data)
        assert all(
            isinstance(key, str) and isinstance(v.dtype, int) for key, v in variables.items()
        )
        assert all(v.shape is None or all(d >= -1 for d in v.shape) for v in variables.values())
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


def reference_lines(ids, probabilities) -> list[str]:
    """What json.dumps writes for each prediction row: the floats as Python's repr."""
    return [to_json_line(prediction_row(i, p)) for i, p in zip(ids, probabilities)]


finite_scores = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.floats(allow_nan=False, allow_infinity=False),
    # Around the decades where Arrow's and repr's forms change (1e-9, 1e-6, 1e-4, 1).
    st.sampled_from([-9, -6, -4, 0]).flatmap(
        lambda exponent: st.floats(0.5 * 10.0**exponent, 2 * 10.0**exponent).map(
            lambda value: float(np.float32(value))
        )
    ),
)


@PROPERTY
@given(st.lists(st.lists(finite_scores, min_size=10, max_size=10), min_size=1, max_size=8))
def test_arrow_formatted_lines_equal_repr_for_any_finite_score(rows):
    # The drawn rows over and over, to a batch that Arrow formats.
    probabilities = np.resize(np.array(rows, dtype=np.float64), (ARROW_FORMAT_MIN_ROWS, 10))
    ids = np.arange(len(probabilities), dtype=np.int64) - 3
    for size in (len(rows), len(probabilities)):  # the small batch is repr's, the other Arrow's
        lines = prediction_lines(ids[:size], probabilities[:size]).split("\n")
        assert lines == reference_lines(ids[:size], probabilities[:size])


def test_arrow_formatted_lines_equal_repr_across_every_float32_exponent():
    """200k float32 scores with uniformly random bits (every exponent alike, subnormals too),
    and each decade's float32 and float64 neighbours from 1e-45 to 10: repr's digits, every
    one."""
    bits = np.random.default_rng(25).integers(0, 2**32, 200_000, dtype=np.uint64)
    scores = bits.astype(np.uint32).view(np.float32)
    scores = np.abs(scores[np.isfinite(scores)])
    decades = 10.0 ** np.arange(-45, 2)
    edges = [
        np.nextafter(decades.astype(kind), direction).astype(np.float64)
        for kind in (np.float32, np.float64)
        for direction in (0, np.inf)
    ]
    values = np.concatenate([scores.astype(np.float64), decades, *edges, [0.0, 1.0, -0.0]])
    values = values[: len(values) // 10 * 10].reshape(-1, 10)
    ids = np.arange(len(values), dtype=np.int64)
    assert prediction_lines(ids, values).split("\n") == reference_lines(ids, values)
    assert prediction_lines(ids[:0], values[:0]) == ""


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


# --- the model files read at launch (pipelines/core/tf_files.py, contract.py) -------------


def mutations(original: bytes):
    """`original` with one byte replaced, then cut short: mostly almost-valid files."""
    return st.tuples(
        st.integers(0, len(original) - 1), st.integers(0, 255), st.integers(1, len(original))
    ).map(lambda m: (original[: m[0]] + bytes([m[1]]) + original[m[0] + 1 :])[: m[2]])


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def block(entries) -> bytes:
    body = b"".join(varint(0) + varint(len(k)) + varint(len(v)) + k + v for k, v in entries)
    return body + (0).to_bytes(4, "little") + (1).to_bytes(4, "little")  # one restart, at 0


def table(entries) -> bytes:
    """A LevelDB-style table of `entries` (sorted (key, value) pairs), as TensorFlow writes a
    bundle index: one data block, an empty metaindex block, the index block, the footer."""
    out = bytearray()

    def put(contents: bytes) -> bytes:
        handle = varint(len(out)) + varint(len(contents))
        out.extend(
            contents + b"\0" + tf_files._masked_crc32c(contents + b"\0").to_bytes(4, "little")
        )
        return handle

    data_handle = put(block(entries))
    metaindex = put(block([]))
    index = put(block([(entries[-1][0] if entries else b"", data_handle)]))
    footer = (metaindex + index).ljust(40, b"\0")
    return bytes(out) + footer + (0xDB4775248B80FB57).to_bytes(8, "little")


def message(*fields_: tuple[int, object]) -> bytes:
    """A protobuf message of (field number, int or bytes) fields."""
    out = b""
    for number, value in fields_:
        if isinstance(value, int):
            out += varint(number << 3) + varint(value % (1 << 64))
        else:
            out += varint(number << 3 | 2) + varint(len(value)) + value
    return out


def entry_proto(dtype, dims, shard, offset, size, extra) -> bytes:
    shape = message(*((2, message((1, d))) for d in dims))
    if size is None:  # the size the shape needs, so that more entries get past that check
        size = math.prod(dims) * tf_files.DTYPE_SIZES.get(dtype, 1)
    return message((1, dtype), (2, shape), (3, shard), (4, offset), (5, size)) + extra


entry_protos = st.one_of(
    st.binary(max_size=40),
    st.builds(
        entry_proto,
        st.one_of(st.just(1), st.integers(0, 25)),
        st.lists(st.one_of(st.integers(0, 5), st.just(-1)), max_size=4),
        st.one_of(st.just(0), st.integers(-1, 3)),
        st.integers(-1, 100),
        st.one_of(st.none(), st.integers(-1, 100)),
        st.sampled_from([b"", message((7, b"")), b"\xff"]),
    ),
)
bundle_indexes = st.builds(
    lambda shards, header_extra, entries: table(
        [(b"", message((1, shards)) + header_extra), *sorted(entries.items())]
    ),
    st.one_of(st.integers(1, 3), st.integers(-1, 3)),
    st.sampled_from([b"", message((3, message((1, 1))))]),
    st.dictionaries(
        st.one_of(st.text("wb/._", min_size=1, max_size=6).map(str.encode), st.binary(min_size=1)),
        entry_protos,
        max_size=5,
    ),
)
BUNDLED_INDEX = (REPO / "models" / "mnist" / "variables" / "variables.index").read_bytes()


@PROPERTY
@given(st.one_of(st.binary(max_size=300), mutations(BUNDLED_INDEX), bundle_indexes))
def test_a_bundle_index_is_read_or_says_why(data):
    try:
        bundle = tf_files.read_bundle(data)
    except contract.ModelFormatError as error:
        assert str(error)
        return
    assert 1 <= bundle.num_shards <= tf_files.MAX_SHARDS
    for entry in bundle.entries.values():
        assert 0 <= entry.shard < bundle.num_shards and entry.offset >= 0 and entry.size >= 0
        assert all(dim >= 0 for dim in entry.shape)
        if entry.dtype in tf_files.DTYPE_SIZES and not entry.sliced:
            assert entry.size == math.prod(entry.shape) * tf_files.DTYPE_SIZES[entry.dtype]


@PROPERTY
@given(st.dictionaries(st.binary(min_size=1, max_size=8), st.binary(max_size=20), max_size=8))
def test_the_table_reader_gives_back_what_a_table_holds(entries):
    pairs = sorted(entries.items())
    assert tf_files.table_entries(table(pairs)) == pairs


@PROPERTY
@given(
    bundle_indexes,
    st.dictionaries(
        st.sampled_from([f"export.data-{i:05d}-of-{n:05d}" for i in range(3) for n in range(1, 4)]),
        st.integers(0, 200),
        max_size=4,
    ),
)
def test_data_file_lengths_pass_only_when_each_is_as_long_as_its_index_says(index, lengths):
    try:
        bundle = tf_files.read_bundle(index)
    except contract.ModelFormatError:
        return
    try:
        contract.check_data_files(bundle, "export", lengths)
    except contract.ModelFormatError as error:
        assert str(error)
        return
    for shard, end in bundle.shard_ends().items():
        assert lengths[f"export{tf_files.data_file_suffix(shard, bundle.num_shards)}"] >= end


@pytest.fixture(scope="module")
def lab_files(tmp_path_factory):
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("lab")
    write_lab_checkpoint(tf, folder)
    return {name: (folder / name).read_bytes() for name in ("export.meta", "export.index")}


def test_the_lab_checkpoint_meets_the_contract(lab_files):
    variables = contract.check_checkpoint_meta(lab_files["export.meta"])
    assert variables == {"w": (1, (784, 10)), "b": (1, (10,))}
    contract.check_weights(variables, lab_files["export.index"], "export.index")


@PROPERTY
@given(data=st.data())
def test_a_meta_graph_and_its_index_are_read_or_say_why(lab_files, data):
    meta = data.draw(st.one_of(st.binary(max_size=300), mutations(lab_files["export.meta"])))
    index = data.draw(st.one_of(bundle_indexes, mutations(lab_files["export.index"])))
    try:
        variables = contract.check_checkpoint_meta(meta)
        for variable in variables.values():
            assert isinstance(variable.dtype, int)
            assert variable.shape is None or all(isinstance(d, int) for d in variable.shape)
        contract.check_weights(variables, index, "export.index")
    except contract.ModelFormatError as error:
        assert str(error) and "\n" not in str(error)


def lab_meta(inputs: str, outputs: str) -> bytes:
    """A MetaGraphDef with the lab's collections holding `inputs` and `outputs` (JSON text)
    and a graph of the two placeholders they name."""

    def placeholder(name: str, width: int) -> bytes:
        dims = message((2, message((1, (1 << 64) - 1))), (2, message((1, width))))
        recorded = message((1, message((7, dims))))  # AttrValue.list.shape, as TF exports
        return message(
            (1, name.encode()),
            (2, b"Placeholder"),
            (5, message((1, b"shape"), (2, message((7, dims))))),
            (5, message((1, b"_output_shapes"), (2, recorded))),
        )

    def collection(name: str, text: str) -> bytes:
        value = message((2, message((1, text.encode()))))
        return message((1, name.encode()), (2, value))

    graph = message((1, placeholder("image", 784)), (1, placeholder("scores", 10)))
    return message(
        (2, graph), (4, collection("inputs", inputs)), (4, collection("outputs", outputs))
    )


GOOD_OUTPUTS = json.dumps({"scores": "scores:0"})


@pytest.mark.parametrize(
    "inputs, problem",
    [
        (json.dumps({"image": "image:0"}), None),
        ("[" * 100_000, "collection 'inputs' is not JSON"),
        ("9" * 5000, "collection 'inputs' is not JSON"),
        (json.dumps({"image": "image:" + "9" * 5000}), "which the graph lacks"),
        (json.dumps({"image": 7}), "collection 'inputs' names 'image' as 7"),
        (json.dumps({"image": "scores:0"}), "'image' has shape [-1, 10]; expected [None, 784]"),
        (json.dumps({"image": "image:3"}), "the graph's 'image' has 1 output(s), not 3"),
    ],
)
def test_hostile_collections_are_one_problem_line(inputs, problem):
    try:
        contract.check_checkpoint_meta(lab_meta(inputs, GOOD_OUTPUTS))
    except contract.ModelFormatError as error:
        assert problem is not None and problem in str(error), error
    else:
        assert problem is None
