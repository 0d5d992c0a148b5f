"""pedestrian_depth's input messages over hostile forms (hypothesis): any data, any JSON, any
attributes give (name, image bytes) or one BadFrame line; any image bytes decode to a frame
or one ValueError line. docs/boundaries.md lists these readers."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from pipelines.pedestrian.detector import decode_frame, decode_image
from pipelines.pedestrian.frames import MAX_NAME_BYTES, NAME_ATTRIBUTE, BadFrame, frame_from_message
from tests.support.hostile import JSON, hostile_bytes, one_line


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 90, np.uint8)).save(out, format="PNG")
    return out.getvalue()


PNG = png(8, 6)
frame_json = st.fixed_dictionaries(
    {},
    optional={
        "name": JSON,
        "image": JSON | st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()),
    },
).map(lambda document: json.dumps(document).encode("utf-8"))
attributes = st.none() | st.dictionaries(
    st.sampled_from([NAME_ATTRIBUTE, "replayed", "x"]) | st.text(max_size=5), st.text(max_size=30)
)


@given(
    data=hostile_bytes(("name", "image")) | frame_json | st.just(PNG),
    attributes=attributes,
    message_id=st.none() | st.text(max_size=10),
)
def test_any_message_is_a_named_frame_or_one_line_saying_why(data, attributes, message_id):
    try:
        name, image = frame_from_message(data, attributes, message_id)
    except BadFrame as error:
        one_line(str(error))
        return
    assert isinstance(name, str) and name and len(name.encode("utf-8")) <= MAX_NAME_BYTES
    assert isinstance(image, bytes)


def test_json_nested_too_deep_is_a_bad_frame_not_a_recursion_error():
    data = b'{"a":' + b"[" * 100_000
    try:
        frame_from_message(data, {})
    except BadFrame as error:
        assert "nested too deep" in str(error)
    else:
        raise AssertionError("a frame from nothing but brackets")


def mutations(original: bytes):
    """`original` with a few bytes changed, cut short or grown: images that almost are."""
    return st.builds(
        lambda cut, changes: _mutate(original[:cut], changes),
        st.integers(0, len(original)),
        st.lists(st.tuples(st.integers(0, len(original)), st.integers(0, 255)), max_size=4),
    )


def _mutate(data: bytes, changes) -> bytes:
    out = bytearray(data)
    for place, value in changes:
        if place < len(out):
            out[place] = value
    return bytes(out)


@given(st.binary(max_size=200) | mutations(PNG) | st.just(PNG))
def test_any_image_bytes_decode_to_pixels_or_one_line_saying_why(data):
    try:
        rgb = decode_image(data)
    except ValueError as error:
        one_line(str(error))
    else:
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    try:
        frame = decode_frame(data, reduce_for_tile=4, size=2)
    except ValueError as error:
        one_line(str(error))
    else:
        assert frame.image.mode == "RGB" and frame.width > 0 and frame.height > 0
