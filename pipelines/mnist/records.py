"""The lab's MNIST rows: parsing, validation and output formats. Pure; no Beam, no TensorFlow.

An input row is `{"ID": <integer>, "Image": "<784 comma-separated numbers in [0, 1]>"}`
(a BigQuery row, a CSV line of `mnist.csv`, or a Pub/Sub message's JSON). A valid row becomes
`(ID, float32[784])`; anything else raises `BadRecord` with a reason a person can act on.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipelines.core.json_text import NestedTooDeep, read_json
from pipelines.io.lines import MAX_RECORD_BYTES
from pipelines.mnist.contract import NUM_CLASSES, NUM_PIXELS

PROBABILITY_FIELDS = tuple(f"P{digit}" for digit in range(NUM_CLASSES))

# The lab's schemas, as BigQuery takes them.
PREDICTION_SCHEMA = {
    "fields": [{"name": "ID", "type": "INTEGER", "mode": "REQUIRED"}]
    + [{"name": name, "type": "FLOAT", "mode": "REQUIRED"} for name in PROBABILITY_FIELDS]
}
DEAD_LETTER_SCHEMA = {
    "fields": [
        {"name": "Error", "type": "STRING", "mode": "REQUIRED"},
        {"name": "Row", "type": "STRING", "mode": "NULLABLE"},
    ]
}
CSV_HEADER = ("ID", "Image")
# The BigQuery types an input table's columns may have, per column of CSV_HEADER: an ID is
# an INTEGER or, as in a CSV file, a STRING holding one (parse_id checks each row's value).
INPUT_COLUMN_TYPES = dict(zip(CSV_HEADER, (("INTEGER", "STRING"), ("STRING",))))


class BadRecord(ValueError):
    """A row that cannot be classified; the message says why."""


# BigQuery's INTEGER is 64-bit: one larger ID would fail the whole load job.
ID_RANGE = (-(2**63), 2**63 - 1)
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")


# The lab's IDs: at most 18 ASCII digits, so always below 2**63 (int() of them is parse_id's).
_MAX_PLAIN_ID_DIGITS = 18


def parse_id(value: Any) -> int:
    if type(value) is str and value.isascii() and value.isdigit():
        if len(value) <= _MAX_PLAIN_ID_DIGITS:  # the CSV's IDs: nothing to strip or check
            return int(value)
    if isinstance(value, bool):  # bool is an int in Python, never an ID
        raise BadRecord(f"ID must be an integer, got {value!r}")
    if value is None or value == "":
        raise BadRecord("missing ID")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
        value = int(value.strip())
    if not isinstance(value, int):
        raise BadRecord(f"ID must be an integer, got {_short(value)}")
    if not ID_RANGE[0] <= value <= ID_RANGE[1]:
        raise BadRecord(f"ID {_short(value)} is outside the 64-bit range of a BigQuery INTEGER")
    return value


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_image(value: Any) -> np.ndarray:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadRecord("missing Image")
    if not isinstance(value, str):
        raise BadRecord(
            f"Image must be a string of {NUM_PIXELS} comma-separated numbers, "
            f"got {type(value).__name__}"
        )
    pixels = _plain_decimals(value, NUM_PIXELS)
    if pixels is None:  # not plain decimals: the general path, with its detailed reasons
        parts = value.split(",")
        if len(parts) != NUM_PIXELS:
            raise BadRecord(f"Image must have {NUM_PIXELS} values, got {len(parts)}")
        try:
            pixels = np.array(parts, dtype=np.float32)
        except ValueError:
            position, text = _first_non_number(parts)
            raise BadRecord(f"Image value {position} is not a number: {text!r}") from None
    # Fast path: one vectorised test; the detailed reason only for rows that fail it.
    if not (np.all(pixels >= 0.0) and np.all(pixels <= 1.0)):
        parts = value.split(",")
        position = int(np.flatnonzero(~((pixels >= 0.0) & (pixels <= 1.0)))[0])
        bad = float(pixels[position])
        if not math.isfinite(bad):
            raise BadRecord(
                f"Image value {position} is {parts[position].strip()!r}, not a finite number"
            )
        raise BadRecord(f"Image value {position} is {parts[position].strip()}, outside [0, 1]")
    return pixels


_POW10 = 10.0 ** np.arange(16)
_MAX_DIGITS = 15  # below 2**53: every partial sum of the digits is exact in float64
_ZERO, _COMMA, _DOT = np.uint8(ord("0")), ord(","), ord(".")


def _plain_decimals(value: str, count: int) -> np.ndarray | None:
    """`count` comma-separated plain decimals ("0.328125", "1", ".5") as float32, or None.

    The hot path of both jobs: 784 numbers per row, parsed with a few vectorised passes
    over the text's bytes instead of 784 string-to-float conversions (about 2x faster).
    None for anything else (signs, exponents, spaces, nan, more than 15 digits, a wrong
    count, ...), which the general path then parses or explains. The result is bit for bit
    what np.array(value.split(","), dtype=np.float32) gives: digits / 10**k of two exact
    float64s is the correctly rounded float64, which is then cast to float32, as numpy does.
    """
    try:
        text = np.frombuffer(value.encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError:
        return None
    digit = text - _ZERO  # uint8 wraps around: a digit iff <= 9
    is_digit = digit <= 9
    is_comma = text == _COMMA
    is_dot = text == _DOT
    if not np.all(is_digit | is_comma | is_dot):
        return None
    commas = np.flatnonzero(is_comma)
    if len(commas) != count - 1 or not len(text):
        return None
    number = np.cumsum(is_comma)  # which number each byte belongs to
    digits_so_far = np.cumsum(is_digit)
    digits_at_end = np.empty(count, dtype=digits_so_far.dtype)
    digits_at_end[:-1] = digits_so_far[commas]
    digits_at_end[-1] = digits_so_far[-1]
    digits_per_number = digits_at_end.copy()
    digits_per_number[1:] -= digits_at_end[:-1]
    if digits_per_number.min() < 1 or digits_per_number.max() > _MAX_DIGITS:
        return None
    dots = np.flatnonzero(is_dot)
    dotted = number[dots]
    if len(dots) > 1 and not np.all(dotted[1:] != dotted[:-1]):
        return None  # two dots in one number
    # Each digit times 10 ** (digits after it in its number), summed per number.
    place = _POW10[digits_at_end[number] - digits_so_far]
    mantissa = np.add.reduceat(digit * is_digit * place, np.concatenate(([0], commas + 1)))
    decimals = np.zeros(count, dtype=np.intp)
    decimals[dotted] = digits_at_end[dotted] - digits_so_far[dots]
    return (mantissa / _POW10[decimals]).astype(np.float32)


def _first_non_number(parts: list[str]) -> tuple[int, str]:
    for position, text in enumerate(parts):
        try:
            float(text)
        except ValueError:
            return position, text
    return -1, ""


def row_pair(row) -> tuple[Any, Any]:
    """(ID, Image) of a BigQuery row or a decoded message: the lab's {"ID", "Image"}."""
    if not hasattr(row, "get"):
        raise BadRecord(f"expected an object with ID and Image, got {type(row).__name__}")
    return row.get("ID"), row.get("Image")


def message_pair(message) -> tuple[Any, Any]:
    """(ID, Image) of a Pub/Sub message: UTF-8 JSON of one row."""
    return row_pair(parse_json_message(message.data))


def parse_csv_line(line: str) -> dict:
    """One record of the lab's mnist.csv (header `ID,Image`) as a row: a line, or several
    when the quoted Image holds line breaks (pipelines/io/lines.py, CSV records)."""
    if line.count('"') % 2:
        raise BadRecord(
            f"unclosed quote: no quote closes it within {MAX_RECORD_BYTES >> 20} MiB or by the "
            f"end of the file, so its line stands alone and reading resumed at the next line"
        )
    try:
        fields = next(csv.reader([line]), [])
    except csv.Error as error:
        raise BadRecord(f"not a CSV line: {error}") from None
    if len(fields) > len(CSV_HEADER):
        raise BadRecord(
            f"expected 2 CSV fields (ID, Image), got {len(fields)}: is the Image field unquoted?"
        )
    return dict(zip(CSV_HEADER, fields))


_BOM = "\ufeff".encode("utf-8")  # what spreadsheets put before the first line
_HEADER_BYTES = ",".join(CSV_HEADER).encode("ascii")


def is_csv_header(line: bytes) -> bool:
    """The header line, as spreadsheets write it too (a UTF-8 byte-order mark, quotes, CR)."""
    return line.removeprefix(_BOM).strip().replace(b'"', b"") == _HEADER_BYTES


def parse_csv_bytes(line: bytes) -> dict:
    """One line of a CSV file as read, bytes, decoded here so that a line that is not UTF-8
    is one bad row rather than a failed job."""
    return parse_csv_line(decode_utf8(line.removeprefix(_BOM), "line"))


def decode_utf8(data: bytes, what: str) -> str:
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadRecord(f"{what} is not UTF-8: {error.reason} at byte {error.start}") from None


def split_csv_line(line: bytes) -> tuple[Any, Any]:
    """(ID, Image) of one CSV record as read. The lab's own form, `7,"0.0,...,0.0"` in ASCII,
    is split with a few C-speed scans (memchr, not a count of quotes: a record is 5 KB); anything
    else goes through the csv module (parse_csv_bytes, the reference), so both give the same
    outcome for every line."""
    body = line.removesuffix(b"\r")
    comma = body.find(b",")
    last = len(body) - 1
    if (
        comma >= 0
        and last >= comma + 2
        and body[comma + 1] == body[last] == _QUOTE
        # Exactly those two quotes: none in the ID, none between them.
        and body.find(b'"', 0, comma) < 0
        and body.find(b'"', comma + 2, last) < 0
        and body.isascii()
        and b"\n" not in body
        and b"\r" not in body
    ):
        return body[:comma].decode("ascii"), body[comma + 2 : last].decode("ascii")
    row = parse_csv_bytes(line)
    return row.get("ID"), row.get("Image")


_QUOTE = ord('"')


def parse_image_batch(images: Sequence[Any]) -> tuple[np.ndarray, dict[int, BadRecord]]:
    """float32 [len(images), NUM_PIXELS] and {index: BadRecord} for the images that fail;
    each row's outcome is parse_image's (the reference), in a few vectorised calls.

    Arrow splits and parses the whole batch in C++ (as float64 and then cast, which is what
    numpy and the reference do, so the bits are the same). Arrow reads a subset of what
    Python's float() reads and the range check refuses NaN, so a row it does not take
    cleanly is parsed again by the reference, for its value or its reason: per-row cost
    only for the rows that need it.
    """
    import pyarrow as pa  # here, not at import: the launcher builds graphs and parses nothing

    pixels = np.zeros((len(images), NUM_PIXELS), dtype=np.float32)
    fast = [i for i, v in enumerate(images) if isinstance(v, str) and v.isascii()]
    slow = sorted(set(range(len(images))) - set(fast))
    if fast:
        try:
            texts = pa.array([images[i] for i in fast], type=pa.string())
            slow += _parse_arrow(texts, np.array(fast), pixels)
        except Exception:  # noqa: BLE001 - never expected; then the reference takes every row
            slow = range(len(images))
    failures = {}
    for i in map(int, slow):
        try:
            pixels[i] = parse_image(images[i])
        except BadRecord as error:
            failures[i] = error
        except Exception as error:  # noqa: BLE001 - one odd row must not fail its batch
            failures[i] = BadRecord(f"unexpected {type(error).__name__}: {error}")
    return pixels, failures


def _parse_arrow(texts, rows: np.ndarray, out: np.ndarray) -> list[int]:
    """Parses `texts` into out[rows]; returns the rows it could not take cleanly."""
    import pyarrow as pa
    import pyarrow.compute as pc

    parts = pc.split_pattern(texts, ",")
    complete = pc.equal(pc.list_value_length(parts), NUM_PIXELS).to_numpy(zero_copy_only=False)
    left_over = list(rows[~complete])
    if left_over:
        parts, rows = parts.filter(complete), rows[complete]
    if not len(rows):
        return left_over
    try:
        values = pc.cast(pc.list_flatten(parts), pa.float64()).to_numpy()
    except pa.ArrowInvalid:  # some value is not a number: halve until it is found
        if len(rows) == 1:
            return left_over + list(rows)
        half = len(rows) // 2
        texts = pc.binary_join(parts, ",")
        return (
            left_over
            + _parse_arrow(texts[:half], rows[:half], out)
            + _parse_arrow(texts[half:], rows[half:], out)
        )
    values = values.astype(np.float32).reshape(len(rows), NUM_PIXELS)
    in_range = np.all((values >= 0.0) & (values <= 1.0), axis=1)
    out[rows[in_range]] = values[in_range]
    return left_over + list(rows[~in_range])


def parse_json_message(data: bytes) -> dict:
    """A Pub/Sub message of the stream job: UTF-8 JSON of one CSV row."""
    text = decode_utf8(data, "message")
    try:
        row = read_json(text)
    except json.JSONDecodeError as error:
        raise BadRecord(f"message is not JSON: {error.msg} at position {error.pos}") from None
    except NestedTooDeep:
        raise BadRecord("message is not JSON this job reads: nested too deep") from None
    if not isinstance(row, dict):
        raise BadRecord(
            f"message must be a JSON object with ID and Image, got {type(row).__name__}"
        )
    return row


def prediction_row(image_id: int, probabilities) -> dict:
    """The output row; BadRecord if the model gave anything but NUM_CLASSES finite numbers
    (JSON cannot carry NaN, and a BigQuery load would fail on the whole file)."""
    values = [float(p) for p in probabilities]
    if len(values) != NUM_CLASSES or not all(math.isfinite(p) for p in values):
        raise BadRecord(
            f"the model returned {_short(values, 200)}, not {NUM_CLASSES} finite probabilities"
        )
    return {"ID": int(image_id), **dict(zip(PROBABILITY_FIELDS, values))}


def image_row(image_id, pixels) -> dict:
    """The lab's row back from a parsed image, for a dead letter after parsing."""
    return {"ID": int(image_id), "Image": ",".join(f"{v:g}" for v in pixels)}


# One prediction as a JSON line: what to_json_line(prediction_row(...)) writes, with the
# floats in repr form as json.dumps gives them. The reference for prediction_lines, which
# uses it for the values Arrow does not write as repr does.
_PREDICTION_LINE = '{"ID":%d,' + ",".join(f'"{name}":%r' for name in PROBABILITY_FIELDS) + "}"

# Arrow's cast of a float64 to a string writes the shortest digits that read back as the same
# float, the closest such, as Python's repr does: the digits are the same, only the form
# differs. repr writes 1e-4 <= |x| < 1e16 as a decimal (with ".0" if whole) and the rest in
# scientific form with at least two exponent digits; Arrow writes 1e-6 <= |x| < 1e10 as a
# decimal (no ".0") and the rest with one exponent digit or more. So for x in [1e-4, 1) and
# (0, 1e-9) the strings are the same, for x in [1e-9, 1e-6) they differ by the exponent's
# leading zero ("e-7" against "e-07"), and the rest of the model's outputs (1e-6 to 1e-4, 0,
# 1, anything odd) is written by repr. A property test holds this against repr.
_ARROW_AS_REPR = ((1e-4, 1.0), (np.nextafter(0.0, 1.0), 1e-9))
_ARROW_ONE_DIGIT_EXPONENT = (1e-9, 1e-6)
# Arrow's way costs about 95 us a call whatever the batch, then 2.1 us a row; repr's 5.1 us a
# row: from this many rows on, Arrow's is the faster (a stream's small batches keep repr's).
ARROW_FORMAT_MIN_ROWS = 32


def _in(values: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    return (values >= bounds[0]) & (values < bounds[1])


def prediction_lines(ids: np.ndarray, probabilities: np.ndarray) -> str:
    """JSON lines of a batch of predictions (all finite), joined by newlines: byte for byte
    the lines of _PREDICTION_LINE, formatted by Arrow a whole batch at a time when it is
    large enough (Python's repr of ten floats was most of a row's formatting)."""
    scores = np.asarray(probabilities, dtype=np.float64)
    rows = len(scores)
    if rows < ARROW_FORMAT_MIN_ROWS:
        return "\n".join(
            _PREDICTION_LINE % (image_id, *p) for image_id, p in zip(ids.tolist(), scores.tolist())
        )
    import pyarrow as pa  # here, not at import: the launcher builds graphs and formats nothing
    import pyarrow.compute as pc

    # Column by column: each P<digit> is then one contiguous slice of the strings.
    values = np.ascontiguousarray(scores.T).ravel()
    texts = pa.array(values).cast(pa.string())
    as_repr = _in(values, _ARROW_AS_REPR[0]) | _in(values, _ARROW_AS_REPR[1])
    one_digit = _in(values, _ARROW_ONE_DIGIT_EXPONENT)
    if one_digit.any():
        mask = pa.array(one_digit)
        padded = pc.replace_substring(texts.filter(mask), "e-", "e-0")
        texts = pc.replace_with_mask(texts, mask, padded)
    others = ~(as_repr | one_digit)
    if others.any():
        reprs = pa.array([repr(value) for value in values[others].tolist()], type=pa.string())
        texts = pc.replace_with_mask(texts, pa.array(others), reprs)
    parts = ['{"ID":', pa.array(np.asarray(ids, dtype=np.int64)).cast(pa.string())]
    for column, name in enumerate(PROBABILITY_FIELDS):
        parts += [f',"{name}":', texts.slice(column * rows, rows)]
    lines = pc.binary_join_element_wise(*parts, "}", "")  # the last: no separator
    whole = pa.ListArray.from_arrays(pa.array([0, rows], type=pa.int32()), lines)
    return pc.binary_join(whole, "\n")[0].as_py()


def prediction_rows(ids: np.ndarray, probabilities: np.ndarray) -> list[dict]:
    return [
        {"ID": image_id, **dict(zip(PROBABILITY_FIELDS, p))}
        for image_id, p in zip(ids.tolist(), probabilities.tolist())
    ]
