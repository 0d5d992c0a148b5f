"""Reading text: the decode rule, line cutting and the line reader (pipelines/io/lines.py), and
the Beam transforms around them (pipelines/io/text.py)."""

import collections
import gzip
import io
import itertools
import json
import re
import tempfile
from array import array
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam import coders
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.range_trackers import OffsetRangeTracker
from apache_beam.io.textio import _TextSource
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given
from hypothesis import strategies as st

from pipelines.core.deadletters import dead_letter_row, to_json_line
from pipelines.io.lines import (
    Line,
    cut_line,
    decode_line,
    iter_lines,
    iter_records,
    odd_quotes,
    split_pieces,
)
from pipelines.io.text import (
    DecodeLines,
    LineBatch,
    ReadLines,
    ReadRecords,
    WriteDeadLetters,
    _DecodeLines,
    _LineSource,
    stale_files,
)
from tests.support.properties import PROPERTY

WORD = re.compile(r"[\w']+")
# Bytes after which a line may be cut: ASCII, and not in a word (bytes patterns: ASCII \w).
CUT_BYTE = re.compile(rb"[^\w'\x80-\xff]")
# Bytes that make the interesting cases likely: word bytes, separators, a valid two- and
# three-byte character (é, ’), bytes that are not UTF-8, CR and LF.
TOKENS = [
    b"a",
    b"Z",
    b"7",
    b"_",
    b"'",
    b" ",
    b"-",
    b",",
    b"\t",
    b"\xc3\xa9",
    b"\xe2\x80\x99",
    b"\xe9",
    b"\xff",
    b"\xc3",
    b"\xe2\x80",
    b"\r",
    b"\n",
    b"\xef\xbf\xbd",
]
texts = st.one_of(
    st.binary(max_size=300), st.lists(st.sampled_from(TOKENS), max_size=200).map(b"".join)
)
lines = texts.map(lambda data: data.replace(b"\n", b""))


def counts(texts_):
    return collections.Counter(w for text in texts_ for w in WORD.findall(text))


# ---- decode rule ---------------------------------------------------------------------------


def test_valid_utf8_is_clean():
    assert decode_line("naïve café 東京".encode()) == ("naïve café 東京", None)


def test_a_latin1_byte_splits_words_and_names_its_offset():
    text, problem = decode_line(b"caf\xe9s ok")
    assert text == "caf\ufffds ok"
    assert WORD.findall(text) == ["caf", "s", "ok"]
    assert problem == "not UTF-8: byte 0xE9 at offset 3 of the line"


@PROPERTY
@given(lines)
def test_every_line_is_clean_or_counted_and_dead_lettered(data):
    text, problem = decode_line(data)
    assert text == data.decode("utf-8", errors="replace")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        assert problem == (
            f"not UTF-8: byte 0x{data[error.start]:02X} at offset {error.start} of the line"
        )
    else:
        assert problem is None
    # A bad byte never joins two words: each word is a run of the original bytes.
    for word in WORD.findall(text):
        assert "\ufffd" not in word
        assert word.encode() in data


@PROPERTY
@given(lines)
def test_dead_letter_rows_keep_the_line_with_bad_bytes_escaped(data):
    row = dead_letter_row(data, "why")
    assert row["Error"] == "why"
    assert json.loads(to_json_line(row)) == row
    # Undoing the escapes gives back the bytes (when the line has no backslash of its own).
    if b"\\" not in data:
        restored = re.sub(
            r"\\x([0-9a-f]{2})", lambda m: chr(0xDC00 + int(m[1], 16)), row["Row"]
        ).encode("utf-8", errors="surrogateescape")
        assert restored == data


# ---- cutting long lines --------------------------------------------------------------------


def test_cut_line_cuts_after_non_word_bytes():
    assert cut_line(b"hello world foo bar baz", 8) == [b"hello ", b"world ", b"foo bar ", b"baz"]
    assert cut_line(b"x" * 20 + b" y", 4) == [b"x" * 20 + b" ", b"y"]
    assert cut_line(b"x" * 20, 4) == [b"x" * 20]
    assert cut_line(b"", 4) == [b""]
    assert cut_line(b"caf\xc3\xa9 \xc3\xa9t\xc3\xa9", 3) == [b"caf\xc3\xa9 ", b"\xc3\xa9t\xc3\xa9"]


@PROPERTY
@given(lines, st.integers(1, 40))
def test_counting_the_pieces_of_a_line_counts_the_line(line, piece_bytes):
    pieces = cut_line(line, piece_bytes)
    assert b"".join(pieces) == line
    assert all(pieces) or pieces == [b""]
    whole = decode_line(line)[0]
    assert counts(decode_line(p)[0] for p in pieces) == counts([whole])
    for piece in pieces[:-1]:
        # Each piece ends at a cut byte, and is short enough or one long run of word bytes.
        assert CUT_BYTE.fullmatch(piece[-1:])
        assert len(piece) <= piece_bytes or not CUT_BYTE.search(piece[:-1])


@PROPERTY
@given(lines, st.integers(1, 40))
def test_split_pieces_leaves_a_short_rest(data, piece_bytes):
    pieces, rest = split_pieces(data, piece_bytes)
    assert b"".join(pieces) + rest == data
    assert len(rest) <= piece_bytes or not CUT_BYTE.search(rest)


# ---- reading lines -------------------------------------------------------------------------


def beam_lines(data: bytes) -> list[bytes]:
    """What Beam's own text source reads from `data` (the reference for line rules)."""
    with tempfile.NamedTemporaryFile(suffix=".txt") as file:
        file.write(data)
        file.flush()
        source = _TextSource(
            file.name, 0, CompressionTypes.UNCOMPRESSED, True, coders.BytesCoder(), validate=False
        )
        return list(source.read_records(file.name, OffsetRangeTracker(0, len(data))))


@pytest.mark.parametrize(
    "data, want",
    [
        (b"", []),
        (b"\n", [b""]),
        (b"a\r\nb\n\nc", [b"a", b"b", b"", b"c"]),
        (b"no newline at the end", [b"no newline at the end"]),
        (b"a\rb\n", [b"a\rb"]),
    ],
)
def test_lines_follow_beams_rules(data, want):
    assert [d for _, d, _ in iter_lines(io.BytesIO(data))] == want == beam_lines(data)


@PROPERTY
@given(texts, st.integers(1, 50))
def test_lines_are_beams_lines_and_offsets_point_at_them(data, block_bytes):
    read = list(iter_lines(io.BytesIO(data), block_bytes=block_bytes))
    assert [d for _, d, _ in read] == beam_lines(data)
    assert all(starts for _, _, starts in read)
    for offset, piece, _ in read:
        assert data[offset : offset + len(piece)] == piece


@PROPERTY
@given(texts, st.integers(1, 30), st.integers(1, 50))
def test_pieces_rebuild_the_lines_and_keep_the_counts(data, piece_bytes, block_bytes):
    read = list(iter_lines(io.BytesIO(data), piece_bytes=piece_bytes, block_bytes=block_bytes))
    rebuilt = []
    for offset, piece, starts in read:
        assert data[offset : offset + len(piece)] == piece
        if starts:
            rebuilt.append(piece)
        else:
            rebuilt[-1] += piece
    assert rebuilt == beam_lines(data)
    assert counts(decode_line(p)[0] for _, p, _ in read) == counts(
        decode_line(line)[0] for line in rebuilt
    )


def read_range(path: str, start: int, stop: int, piece_bytes=None, batch_bytes=None):
    source = _LineSource(
        path, piece_bytes, with_position=True, validate=False, batch_bytes=batch_bytes
    )
    return list(source.read_records(path, OffsetRangeTracker(start, stop)))


@PROPERTY
@given(texts, st.lists(st.integers(0, 300), max_size=4), st.sampled_from([None, 3, 16]))
def test_ranges_split_a_file_without_losing_or_repeating_a_line(data, cuts, piece_bytes):
    """Beam splits a big file into byte ranges for several workers: each line exactly once."""
    with tempfile.NamedTemporaryFile(suffix=".txt") as file:
        file.write(data)
        file.flush()
        bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
        whole = read_range(file.name, 0, len(data), piece_bytes)
        parts = [
            line
            for start, stop in itertools.pairwise(bounds)
            for line in read_range(file.name, start, stop, piece_bytes)
        ]
    assert parts == whole
    assert all(line.data == data[line.offset : line.offset + len(line.data)] for line in whole)


@PROPERTY
@given(
    texts,
    st.lists(st.integers(0, 300), max_size=4),
    st.sampled_from([None, 3, 16]),
    st.integers(1, 40),
)
def test_batches_hold_the_same_lines_in_every_range(data, cuts, piece_bytes, batch_bytes):
    with tempfile.NamedTemporaryFile(suffix=".txt") as file:
        file.write(data)
        file.flush()
        bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
        for start, stop in itertools.pairwise(bounds):
            batches = read_range(file.name, start, stop, piece_bytes, batch_bytes)
            assert all(isinstance(batch, LineBatch) for batch in batches)
            assert [line for batch in batches for line in batch.lines()] == read_range(
                file.name, start, stop, piece_bytes
            )


@PROPERTY
@given(st.lists(lines, min_size=1, max_size=8))
def test_a_batch_decodes_to_its_lines_words_and_dead_letters(items):
    batch = LineBatch(
        "f.txt", array("q", range(0, 100 * len(items), 100)).tobytes(), b"\n".join(items)
    )
    singles = [out for line in batch.lines() for out in _DecodeLines().process(line)]
    batched = list(_DecodeLines().process(tuple(batch)))  # as Beam passes it: a tuple
    texts = [out for out in batched if isinstance(out, str)]
    assert counts(texts) == counts(out for out in singles if isinstance(out, str))
    letters = [out.value for out in batched if not isinstance(out, str)]
    assert letters == [out.value for out in singles if not isinstance(out, str)]
    assert len(texts) == (1 if not letters else len(items))


def test_a_50_megabyte_line_reads_in_linear_time():
    """Beam's text source takes minutes on this; the reader takes well under a second."""
    import time

    data = b"the king's fool " * 3_200_000
    start = time.perf_counter()
    pieces = sum(1 for _ in iter_lines(io.BytesIO(data), piece_bytes=1 << 18))
    assert time.perf_counter() - start < 10
    assert pieces == pytest.approx(len(data) / (1 << 18), abs=2)


# ---- composites ----------------------------------------------------------------------------


def test_read_lines_reads_plain_and_gzip_files(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"one\r\ntwo\n")
    (tmp_path / "b.txt.gz").write_bytes(gzip.compress(b"caf\xe9\nfour"))
    with TestPipeline() as p:
        assert_that(
            p | ReadLines(str(tmp_path / "*")), equal_to([b"one", b"two", b"caf\xe9", b"four"])
        )


def test_read_lines_with_position(tmp_path):
    path = str(tmp_path / "a.txt")
    Path(path).write_bytes(b"one\ntwo words here\n")
    with TestPipeline() as p:
        assert_that(
            p | ReadLines(path, piece_bytes=6, with_position=True) | beam.Map(tuple),
            equal_to(
                [(path, 0, b"one"), (path, 4, b"two "), (path, 8, b"words "), (path, 14, b"here")]
            ),
        )


def test_decode_lines_counts_bad_lines_and_dead_letters_them():
    with TestPipeline() as p:
        text, dead = (
            p | beam.Create([b"ok line", b"caf\xe9", Line("f.txt", 42, b"x\xffy")]) | DecodeLines()
        )
        assert_that(text, equal_to(["ok line", "caf\ufffd", "x\ufffdy"]), label="Text")
        assert_that(
            dead,
            equal_to(
                [
                    {"Error": "not UTF-8: byte 0xE9 at offset 3 of the line", "Row": "caf\\xe9"},
                    {
                        "Error": "not UTF-8: byte 0xFF at offset 1 of the line starting at "
                        "byte 42 of f.txt",
                        "Row": "x\\xffy",
                    },
                ]
            ),
            label="DeadLetters",
        )


def test_write_dead_letters_writes_json_lines_and_nothing_when_empty(tmp_path):
    with TestPipeline() as p:
        rows = p | "Rows" >> beam.Create([dead_letter_row(b"\xe9", "why")])
        rows | "Some" >> WriteDeadLetters(str(tmp_path / "some"))
        p | "NoRows" >> beam.Create([]) | "None" >> WriteDeadLetters(str(tmp_path / "none"))
    written = sorted(path.name for path in tmp_path.iterdir())
    assert written == ["some-00000-of-00001.json"]
    assert [json.loads(line) for line in (tmp_path / written[0]).read_text().splitlines()] == [
        {"Error": "why", "Row": "\\xe9"}
    ]


# ---- CSV records ---------------------------------------------------------------------------

CSV_TOKENS = [b'"', b'""', b",", b"0.5", b"7", b"\n", b"\r\n", b"\r", b" ", b"\xe9"]
csv_texts = st.lists(st.sampled_from(CSV_TOKENS), max_size=120).map(b"".join)


def records_of(data: bytes, max_bytes: int) -> list[tuple[int, bytes]]:
    return list(iter_records(iter_lines(io.BytesIO(data), block_bytes=7), max_bytes))


def test_a_quoted_line_break_is_inside_one_record():
    data = b'ID,Image\n1,"0.5,\r\n0.25"\r\n2,"0.5\n\n1"\n3,"0.5"'
    assert records_of(data, 1 << 20) == [
        (0, b"ID,Image"),
        (9, b'1,"0.5,\r\n0.25"'),
        (25, b'2,"0.5\n\n1"'),
        (36, b'3,"0.5"'),
    ]


def test_an_unclosed_quote_costs_its_own_line_only():
    lines = [b'1,"0.5'] + [f'{i},"0.5"'.encode() for i in range(2, 40)]
    data = b"\n".join(lines) + b"\n"
    # Within the bound the quote is open to the end of the file; past it, the same answer.
    for max_bytes in (64, 1 << 20):
        assert [record for _, record in records_of(data, max_bytes)] == lines


@PROPERTY
@given(csv_texts, st.integers(min_value=1, max_value=40))
def test_records_reassemble_to_the_file(data, max_bytes):
    records = records_of(data, max_bytes)
    position = 0
    for number, (offset, record) in enumerate(records):
        # Every byte in exactly one record, in order; between records only their line end.
        assert data[position:offset] in ((b"",) if number == 0 else (b"\n", b"\r\n"))
        assert data[offset : offset + len(record)] == record
        position = offset + len(record)
        if record.count(b'"') % 2:  # an unclosed quote: one line, a dead letter downstream
            assert b"\n" not in record
        elif b"\n" in record:  # several lines: the first line end with an even count ends it
            assert len(record) <= max_bytes
            ends = [i for i, byte in enumerate(record) if byte == ord("\n")]
            assert all(record[:end].count(b'"') % 2 for end in ends)
    assert data[position:] in ((b"",) if not records else (b"", b"\n", b"\r\n"))
    # Without quotes, records are lines.
    if b'"' not in data:
        assert [r for _, r in records] == [d for _, d, _ in iter_lines(io.BytesIO(data))]


@PROPERTY
@given(st.lists(st.sampled_from([b'"', b",", b"0", b"\xff", b"\n"]), max_size=40).map(b"".join))
def test_odd_quotes_is_the_parity_of_the_count(data):
    assert odd_quotes(data) == bool(data.count(b'"') % 2)


def test_read_records_reads_records_in_beam(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(b'ID,Image\n1,"a\nb"\n2,"open\n3,"c"\n')
    with TestPipeline() as p:
        assert_that(
            p | ReadRecords(str(path)), equal_to([b"ID,Image", b'1,"a\nb"', b'2,"open', b'3,"c"'])
        )


def test_read_records_in_blocks_keeps_every_record_in_order(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(b'ID,Image\n1,"a\nb"\n2,"open\n3,"c"\n')
    with TestPipeline() as p:
        assert_that(
            p | ReadRecords(str(path), block_records=3),
            equal_to([[b"ID,Image", b'1,"a\nb"', b'2,"open'], [b'3,"c"']]),
        )
    with pytest.raises(ValueError, match="block_records"):
        ReadRecords(str(path), block_records=0)


# ---- a run's files are its own -------------------------------------------------------------


def test_stale_files_are_the_prefixs_shards_this_run_did_not_write(tmp_path):
    prefix = str(tmp_path / "out")
    existing = [
        f"{prefix}-00000-of-00002.json",  # this run's
        f"{prefix}-00000-of-00003.json",  # an earlier run's
        f"{prefix}-00002-of-00003.json",
        f"{prefix}-00000-of-00003",  # no suffix: another output's
        f"{prefix}-x-00000-of-00003.json",  # another prefix's
        f"{prefix}_errors-00000-of-00001.json",
    ]
    written = [f"{tmp_path}/./out-00000-of-00002.json"]  # spelled otherwise, the same file
    assert stale_files(prefix, ".json", existing, written) == existing[1:3]
    gcs = ["gs://b/p/out-00000-of-00001", "gs://b/p/out-00000-of-00002", "gs://b/p/out2-0-of-1"]
    assert stale_files("gs://b/p/out", "", gcs, gcs[1:2]) == gcs[:1]
