"""The pedestrian_depth template's parameters: where frames come from and results go, the
detection threshold, the camera's constants and the largest frame. Reading them back into
the domain's objects, and the checks across them, is pipelines/pedestrian/options.py."""

from __future__ import annotations

from pipelines.core.params import number_parameter
from pipelines.io.parameters import (
    dead_letter_topic_parameter,
    input_source_parameters,
    output_topic_parameter,
)
from pipelines.pedestrian import geometry
from pipelines.pedestrian.detector import DEFAULT_MAX_PIXELS, DEFAULT_SCORE_THRESHOLD

INPUTS = input_source_parameters(
    "frames",
    "camera_frames",
    "Each message is one frame: the PNG or JPEG bytes with the frame's name in the "
    'attribute name, or UTF-8 JSON {"name": "A_001.png", "image": "<base64 PNG or '
    'JPEG>"}.',
)
OUTPUT = output_topic_parameter(
    "Output topic",
    "Where the detections go, e.g. projects/PROJECT/topics/pedestrian_depth: one UTF-8 JSON "
    'message per frame, {"name", "model", "width", "height", "pedestrians": [{"box": '
    '[x1, y1, x2, y2] in pixels, "score", "distance_m", "distance_method"}]} (an empty '
    "list when there is no pedestrian), with the frame's name also as the attribute name.",
    lab="projects/{project}/topics/pedestrian_depth",
)


_FITTED = (
    "Default: fitted on the lab's Labels.csv by python -m tools.fit_camera (refit there "
    "for another camera)."
)
_GRID = (
    f"in the {geometry.IMAGE_WIDTH}x{geometry.IMAGE_HEIGHT} frame the constants were "
    f"fitted in (frames of another size are scaled by their height)"
)
CAMERA = "Camera"

SCORE_THRESHOLD = number_parameter(
    "score_threshold",
    "Detection score threshold",
    "Report a pedestrian only when the detector's score (0 to 1) is at least this. Lower "
    "finds more occluded pedestrians and more false ones.",
    DEFAULT_SCORE_THRESHOLD,
    0,
    1,
)
FOCAL_PX = number_parameter(
    "focal_px",
    "Camera focal length (pixels)",
    f"The camera's focal length in pixels, {_GRID}: a pedestrian of height H at depth Z "
    f"along the optical axis is focal_px * H / Z pixels tall. {_FITTED}",
    geometry.FOCAL_PX,
    1,
    100_000,
    group=CAMERA,
)
HORIZON_ROW = number_parameter(
    "horizon_row",
    "Horizon row (pixels)",
    f"The image row of the horizon, counted from the top, {_GRID}: where the camera, looking "
    f"level, sees the ground plane vanish. The distance of a pedestrian cut off at the frame "
    f"bottom comes from how far below it the head top is. {_FITTED}",
    geometry.HORIZON_ROW,
    0,
    geometry.IMAGE_HEIGHT,
    group=CAMERA,
)
CAMERA_HEIGHT_M = number_parameter(
    "camera_height_m",
    "Camera height (m)",
    f"The camera's height above the (flat) ground, in metres; the head-top cue needs it "
    f"above pedestrian_height_m. {_FITTED}",
    geometry.CAMERA_HEIGHT_M,
    0.1,
    100,
    group=CAMERA,
)
FORWARD_OFFSET_M = number_parameter(
    "forward_offset_m",
    "Camera forward offset (m)",
    f"How far the camera is ahead of the point distances are measured from (the car's "
    f"reference point), in metres; negative means behind. {_FITTED}",
    geometry.FORWARD_OFFSET_M,
    -10,
    10,
    group=CAMERA,
)
PEDESTRIAN_HEIGHT_M = number_parameter(
    "pedestrian_height_m",
    "Pedestrian height (m)",
    "The height assumed for every pedestrian, in metres; distances scale with it. The "
    "default is the lab's pedestrian, a child model 1.30 m tall.",
    geometry.PEDESTRIAN_HEIGHT_M,
    0.5,
    2.5,
    group=CAMERA,
)
MAX_FRAME_PIXELS = number_parameter(
    "max_frame_pixels",
    "Largest frame (pixels)",
    "Frames with more pixels than this (width x height, read from the image header before "
    "decoding) go to the dead letters instead of being decoded. Default: 3840x2160 (4K); "
    "the lab's frames are 1920x1080; decoded, 100 million pixels take 300 MB.",
    DEFAULT_MAX_PIXELS,
    1,
    100_000_000,
    type=int,
)

CAMERA_PARAMETERS = (FOCAL_PX, HORIZON_ROW, CAMERA_HEIGHT_M, FORWARD_OFFSET_M, PEDESTRIAN_HEIGHT_M)

DEAD_LETTER_TOPIC = dead_letter_topic_parameter("pedestrian_dead_letter")
