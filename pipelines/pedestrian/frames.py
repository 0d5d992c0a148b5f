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
from collections.abc import Mapping

from apache_beam.io.gcp.pubsub import PubsubMessage

from pipelines.pedestrian import geometry
from pipelines.pedestrian.detector import MODEL_NAME
from pipelines.pedestrian.geometry import CameraModel

# The frame's name travels in this attribute, on the input (raw image messages) and on the
# output; JSON input messages may carry it in their "name" field instead.
NAME_ATTRIBUTE = "name"
UNNAMED = "unnamed"
# Pub/Sub refuses attribute values over 1024 bytes, and the name is published as one.
MAX_NAME_BYTES = 1024


class BadFrame(ValueError):
    """A message that is not a frame; the message says why."""


def _check_name(name) -> str:
    if not isinstance(name, str):
        raise BadFrame(f"\"name\" must be a string, got {type(name).__name__}")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise BadFrame(f"frame name is longer than {MAX_NAME_BYTES} bytes")
    return name


def frame_from_message(data: bytes, attributes: Mapping[str, str] | None = None,
                       message_id: str | None = None) -> tuple[str, bytes]:
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
            document = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise BadFrame("JSON message is not UTF-8") from None
        except ValueError as error:
            raise BadFrame(f"message is not valid JSON: {error}") from None
        image = document.get("image")
        if not isinstance(image, str) or not image:
            raise BadFrame("JSON message has no \"image\" (base64 of a PNG or JPEG) string")
        try:
            data = base64.b64decode(image, validate=True)
        except (binascii.Error, ValueError) as error:
            raise BadFrame(f"\"image\" is not valid base64: {error}") from None
        if document.get("name") not in (None, ""):
            name = document["name"]
    return _check_name(name), data


def _rounded(value: float, digits: int) -> float:
    return round(float(value), digits)


def frame_result(name: str, width: int, height: int, detections,
                 camera: CameraModel = geometry.DEFAULT_CAMERA, model: str = MODEL_NAME) -> dict:
    """The output record of one frame from the detector's [([x1, y1, x2, y2], score)]."""
    pedestrians = []
    for box, score in detections:
        box = [int(v) for v in box]
        estimate = camera.distance(box, image_height=height)
        pedestrians.append({
            "box": box,
            "score": _rounded(score, 4),
            "distance_m": None if estimate is None else _rounded(estimate.distance_m, 3),
            "distance_method": None if estimate is None else estimate.kind,
        })
    return {"name": name, "model": model, "width": int(width), "height": int(height),
            "pedestrians": pedestrians}


def result_message(result: dict) -> PubsubMessage:
    data = json.dumps(result, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return PubsubMessage(data=data.encode("utf-8"), attributes={NAME_ATTRIBUTE: result["name"]})


def failure_reason(error: Exception) -> str:
    """What a dead letter's `error` attribute says about why its frame failed."""
    if isinstance(error, ValueError):  # BadFrame and decode_image's reasons read as they are
        return str(error)
    return f"unexpected {type(error).__name__}: {error}"
