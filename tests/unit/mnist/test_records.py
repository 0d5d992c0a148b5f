"""Parsing, validation and formats of the lab's MNIST rows (pure functions)."""

import json
import math

import numpy as np
import pytest

from pipelines.core.deadletters import dead_letter_row
from pipelines.mnist import records
from pipelines.mnist.records import BadRecord
from tests.support.mnist_reference import parse_row

GOOD_IMAGE = ",".join(["0.0"] * 700 + ["0.5", "1.0", "0.25", "1", "0"] + ["0.0"] * 79)


def test_parse_row_accepts_bigquery_and_csv_shapes():
    image_id, pixels = parse_row({"ID": 7, "Image": GOOD_IMAGE})
    assert image_id == 7 and pixels.dtype == np.float32 and pixels.shape == (784,)
    assert pixels[700:705].tolist() == [0.5, 1.0, 0.25, 1.0, 0.0]
    assert parse_row({"ID": "42", "Image": GOOD_IMAGE})[0] == 42
    assert parse_row({"ID": " -3 ", "Image": GOOD_IMAGE})[0] == -3
    assert parse_row({"ID": 9.0, "Image": GOOD_IMAGE})[0] == 9


def image_with(position, text):
    values = ["0.0"] * 784
    values[position] = text
    return ",".join(values)


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"Image": GOOD_IMAGE}, "missing ID"),
        ({"ID": None, "Image": GOOD_IMAGE}, "missing ID"),
        ({"ID": "", "Image": GOOD_IMAGE}, "missing ID"),
        ({"ID": "7.5", "Image": GOOD_IMAGE}, "ID must be an integer, got '7.5'"),
        ({"ID": "seven", "Image": GOOD_IMAGE}, "ID must be an integer"),
        ({"ID": 7.5, "Image": GOOD_IMAGE}, "ID must be an integer"),
        ({"ID": True, "Image": GOOD_IMAGE}, "ID must be an integer"),
        ({"ID": 1}, "missing Image"),
        ({"ID": 1, "Image": "  "}, "missing Image"),
        ({"ID": 1, "Image": [0.0] * 784}, "Image must be a string"),
        ({"ID": 1, "Image": "0.0,0.5"}, "Image must have 784 values, got 2"),
        ({"ID": 1, "Image": GOOD_IMAGE + ",0.0"}, "Image must have 784 values, got 785"),
        ({"ID": 1, "Image": image_with(12, "abc")}, "Image value 12 is not a number: 'abc'"),
        ({"ID": 1, "Image": image_with(3, "")}, "Image value 3 is not a number: ''"),
        ({"ID": 1, "Image": image_with(5, "nan")}, "Image value 5 is 'nan', not a finite number"),
        ({"ID": 1, "Image": image_with(6, "inf")}, "Image value 6 is 'inf', not a finite number"),
        ({"ID": 1, "Image": image_with(7, "-inf")}, "not a finite number"),
        ({"ID": 1, "Image": image_with(8, "1.5")}, "Image value 8 is 1.5, outside [0, 1]"),
        ({"ID": 1, "Image": image_with(9, "-0.1")}, "Image value 9 is -0.1, outside [0, 1]"),
        ({"ID": 1, "Image": image_with(0, "255")}, "outside [0, 1]"),
        ("not a row", "expected an object with ID and Image"),
    ],
)
def test_bad_rows_say_why(row, reason):
    with pytest.raises(BadRecord, match=None) as error:
        parse_row(row)
    assert reason in str(error.value)


def test_csv_lines():
    assert records.parse_csv_line(f'3,"{GOOD_IMAGE}"') == {"ID": "3", "Image": GOOD_IMAGE}
    assert records.parse_csv_line("3") == {"ID": "3"}
    with pytest.raises(BadRecord, match="expected 2 CSV fields.*unquoted"):
        records.parse_csv_line(f"3,{GOOD_IMAGE}")


def test_json_messages():
    assert records.parse_json_message(b'{"ID": 7, "Image": "0.0"}') == {"ID": 7, "Image": "0.0"}
    with pytest.raises(BadRecord, match="not UTF-8"):
        records.parse_json_message(b"\xff\xfe{}")
    with pytest.raises(BadRecord, match="not JSON"):
        records.parse_json_message(b"ID=7")
    with pytest.raises(BadRecord, match="JSON object"):
        records.parse_json_message(b"[1, 2]")


def test_prediction_row_has_the_labs_columns():
    row = records.prediction_row(np.int64(7), np.arange(10, dtype=np.float32) / 45)
    assert list(row) == ["ID"] + [f"P{d}" for d in range(10)]
    assert type(row["ID"]) is int and all(type(row[f"P{d}"]) is float for d in range(10))
    assert math.isclose(sum(row[f"P{d}"] for d in range(10)), 1.0, rel_tol=1e-6)
    assert [f["name"] for f in records.PREDICTION_SCHEMA["fields"]] == list(row)


def test_dead_letters_keep_the_original_row_verbatim():
    line = '3,"0.0,abc"'
    assert dead_letter_row(line, "why") == {"Error": "why", "Row": line}
    assert dead_letter_row(b"\xffbytes", "why")["Row"] == "\\xffbytes"
    row = {"ID": 3, "Image": None}
    assert json.loads(dead_letter_row(row, "why")["Row"]) == row
