"""The pedestrian_depth job's messages: frames in, results out. Pure; no IO, no TensorFlow.

An input message is one frame: the PNG or JPEG bytes with the frame's name in the attribute
`name`, or UTF-8 JSON {"name": "A_001.png", "image": "<base64 of the PNG or JPEG>"}.
`frame_from_message` returns (name, image bytes) or raises `BadFrame` saying why.

An output message is one UTF-8 JSON record per frame, with the name also as attribute:
{"name", "model", "width", "height", "pedestrians": [{"box": [x1, y1, x2, y2], "score",
"distance_m", "distance_method"}]}.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import operator
from collections.abc import Mapping

from apache_beam.io.gcp.pubsub import PubsubMessage

from pipelines.core.json_text import NestedTooDeep, read_json
from pipelines.pedestrian import geometry
from pipelines.pedestrian.detector import MODEL_NAME
from pipelines.pedestrian.geometry import CameraModel

# The frame's name travels in this attribute, on the input (raw image messages) and on the
# output; JSON input messages may carry it in their "name" field instead.
NAME_ATTRIBUTE = "name"
UNNAMED = "unnamed"
# Pub/Sub refuses attribute values over 1024 bytes, and the name is published as one.
MAX_NAME_BYTES = 1024
# PNG's largest width or height (JPEG's is 65535): no decoded frame is larger.
MAX_SIDE_PIXELS = 2**31 - 1


class BadFrame(ValueError):
    """A message that is not a frame; the message says why."""


def _check_name(name) -> str:
    if not isinstance(name, str):
        raise BadFrame(f'"name" must be a string, got {type(name).__name__}')
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate, which JSON's \\ud800 escapes can carry
        raise BadFrame("frame name is not valid Unicode text") from None
    if size > MAX_NAME_BYTES:
        raise BadFrame(f"frame name is longer than {MAX_NAME_BYTES} bytes")
    return name


def frame_from_message(
    data: bytes, attributes: Mapping[str, str] | None = None, message_id: str | None = None
) -> tuple[str, bytes]:
    """(frame name, image bytes) of one input message; BadFrame saying why otherwise.

    Data that starts with `{` is the JSON form {"name": ..., "image": <base64>}; anything
    else is taken as the image itself (PNG and JPEG both start otherwise). The name is the
    JSON "name", else the `name` attribute, else the Pub/Sub message ID, else "unnamed":
    a frame is never dropped for want of a name.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BadFrame(f"message data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    name = (attributes or {}).get(NAME_ATTRIBUTE) or message_id or UNNAMED
    if data[:64].lstrip().startswith(b"{"):
        try:
            document = read_json(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise BadFrame("JSON message is not UTF-8") from None
        except NestedTooDeep:
            raise BadFrame("JSON message is nested too deep") from None
        except ValueError as error:
            raise BadFrame(f"message is not valid JSON: {error}") from None
        image = document.get("image")
        if not isinstance(image, str) or not image:
            raise BadFrame('JSON message has no "image" (base64 of a PNG or JPEG) string')
        try:
            data = base64.b64decode(image, validate=True)
        except (binascii.Error, ValueError) as error:
            raise BadFrame(f'"image" is not valid base64: {error}') from None
        if document.get("name") not in (None, ""):
            name = document["name"]
    return _check_name(name), data


def _pixels(value, name: str) -> int:
    try:
        pixels = operator.index(value)  # ints, numpy's included; not floats
    except TypeError:
        pixels = 0
    if not 0 < pixels <= MAX_SIDE_PIXELS:
        raise BadFrame(f"frame {name} must be 1 to {MAX_SIDE_PIXELS} pixels, got {value!r}")
    return pixels


def _box(box, width: int, height: int) -> list[int]:
    # The detector clips its boxes to the frame; anything else is a detector fault, and
    # would make no sense to a consumer drawing the box.
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError, OverflowError):
        raise BadFrame(f"detector returned a box that is not 4 numbers: {box!r}") from None
    if not (0 <= x1 <= width and 0 <= x2 <= width and 0 <= y1 <= height and 0 <= y2 <= height):
        raise BadFrame(f"detector returned a box outside the {width}x{height} frame: {box!r}")
    return [int(x1), int(y1), int(x2), int(y2)]


def _score(score) -> float:
    try:
        value = float(score)
    except (TypeError, ValueError, OverflowError):
        value = math.nan
    if not 0.0 <= value <= 1.0:  # NaN included
        raise BadFrame(f"detector returned a score that is not in [0, 1]: {score!r}")
    return round(value, 4)


def _distance(camera: CameraModel, box: list[int], height: int) -> tuple[float | None, str | None]:
    estimate = camera.distance(box, image_height=height)
    # Extreme constants can overflow the geometry; JSON has no infinity, and a consumer
    # reads null as "no distance from this box", which is the truth.
    if estimate is None or not math.isfinite(estimate.distance_m):
        return None, None
    return round(estimate.distance_m, 3), estimate.kind


def frame_result(
    name: str,
    width: int,
    height: int,
    detections,
    camera: CameraModel = geometry.DEFAULT_CAMERA,
    model: str = MODEL_NAME,
) -> dict:
    """The output record of one frame from the detector's [([x1, y1, x2, y2], score)].

    Every value in it can be published as JSON; BadFrame says why otherwise.
    """
    name = _check_name(name)
    width, height = _pixels(width, "width"), _pixels(height, "height")
    pedestrians = []
    for box, score in detections:
        box = _box(box, width, height)
        distance_m, method = _distance(camera, box, height)
        pedestrians.append(
            {
                "box": box,
                "score": _score(score),
                "distance_m": distance_m,
                "distance_method": method,
            }
        )
    return {
        "name": name,
        "model": model,
        "width": width,
        "height": height,
        "pedestrians": pedestrians,
    }


def result_data(result: dict) -> bytes:
    """The output message's data: compact UTF-8 JSON. ValueError if the record holds what
    JSON cannot carry (NaN, infinity), which frame_result never produces."""
    return json.dumps(result, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


def encoded_message(name: str, data: bytes) -> PubsubMessage:
    return PubsubMessage(data=data, attributes={NAME_ATTRIBUTE: name})


def result_message(result: dict) -> PubsubMessage:
    return encoded_message(result["name"], result_data(result))


def failure_reason(error: Exception) -> str:
    """What a dead letter's `error` attribute says about why its frame failed."""
    return _reason(type(error), str(error))


def _reason(kind: type, text: str) -> str:
    if issubclass(kind, ValueError):  # BadFrame and decode_image's reasons read as they are
        return text
    return f"unexpected {kind.__name__}: {text}"


def reported_failure_reason(error) -> str:
    """`failure_reason` of an exception as Beam's exception handling hands it over (a
    failed inference): (exception type, its repr, the formatted traceback's lines)."""
    if isinstance(error, BaseException):
        return failure_reason(error)
    kind, _, lines = error
    # The traceback's last line is "<type>: <text>", the type qualified by its module
    # unless it is a builtin.
    name = kind.__qualname__
    if kind.__module__ not in ("builtins", "__main__"):
        name = f"{kind.__module__}.{name}"
    last = str(lines[-1]).removesuffix("\n") if lines else ""
    if last.startswith(f"{name}: "):
        text = last[len(name) + 2 :]
    else:
        text = "" if last == name else last
    return _reason(kind, text)
