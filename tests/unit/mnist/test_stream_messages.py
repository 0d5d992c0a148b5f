"""mnist_stream's input messages over hostile forms (hypothesis), nesting past the
recursion limit included: each is a row or one dead-letter reason. docs/boundaries.md."""

from __future__ import annotations

import numpy as np
from hypothesis import given

from pipelines.mnist.records import ID_RANGE, NUM_PIXELS, BadRecord, parse_json_message
from tests.support.hostile import hostile_bytes, one_line
from tests.support.mnist_reference import parse_row


@given(hostile_bytes(("ID", "Image")))
def test_any_message_is_a_row_or_one_line_saying_why(data):
    try:
        image_id, pixels = parse_row(parse_json_message(data))
    except BadRecord as error:
        one_line(str(error))
        return
    assert ID_RANGE[0] <= image_id <= ID_RANGE[1]
    assert pixels.shape == (NUM_PIXELS,) and np.all((pixels >= 0) & (pixels <= 1))


def test_json_nested_too_deep_is_a_reason_not_a_recursion_error():
    try:
        parse_json_message(b'{"ID": ' + b"[" * 100_000)
    except BadRecord as error:
        assert "nested too deep" in str(error)
    else:
        raise AssertionError("a row from nothing but brackets")
