"""Pedestrian depth: find pedestrians in camera frames arriving on Pub/Sub, estimate how far
away each one is, and publish the boxes and distances, until stopped (the lab's design job).

    input        projects/P/topics/camera_frames (or a subscription). One frame per message,
                 either the PNG or JPEG bytes with the frame's name in the attribute `name`,
                 or UTF-8 JSON {"name": "A_001.png", "image": "<base64 of the PNG or JPEG>"}.
    output       projects/P/topics/pedestrian_depth: one UTF-8 JSON message per frame, with
                 the frame's name also as the attribute `name`:
                 {"name": "A_001.png", "model": "...", "width": 1920, "height": 1080,
                  "pedestrians": [{"box": [x1, y1, x2, y2], "score": 0.93,
                                   "distance_m": 4.12, "distance_method": "head_top"}]}
                 Boxes are pixels of the frame (x2, y2 exclusive), best score first; the list
                 is empty when the frame shows no pedestrian. distance_method says which cue
                 the distance came from ("height": the whole box; "head_top": the head-top
                 row, for a pedestrian cut off by the frame bottom); both are null when the
                 box carries no distance (cut off, with the head above the horizon).
    dead_letter  optional topic: a message that is not a frame (undecodable, not PNG/JPEG,
                 bad JSON or base64, more pixels than max_frame_pixels) is published there
                 with the attributes `error` (why) and `error_stage` (decode or detect), the
                 original kept as pipelines/io/pubsub.py describes. Without it, such messages
                 are counted (pedestrian/dead_letters) and logged. Either way they never
                 stop the job.

The message formats are in pipelines/pedestrian/frames.py (pure), the detector's model
handler in handler.py, the composite in transforms.py, the arguments' objects in options.py;
this module holds the parameters, their checks and the pipeline.
"""

from __future__ import annotations

from pipelines.core.grammar import number_kind, plain
from pipelines.core.params import Parameter, ParameterError, Template
from pipelines.io import pubsub
from pipelines.pedestrian import geometry
from pipelines.pedestrian.detector import DEFAULT_MAX_PIXELS, DEFAULT_SCORE_THRESHOLD
from pipelines.pedestrian.options import (
    camera_from_args,
    check_detector_installed,
    detector_from_args,
)
from pipelines.pedestrian.transforms import DetectPedestrians

# ---- parameters ---------------------------------------------------------------------------

INPUTS = pubsub.input_source_parameters(
    "frames",
    "camera_frames",
    "Each message is one frame: the PNG or JPEG bytes with the frame's name in the "
    'attribute name, or UTF-8 JSON {"name": "A_001.png", "image": "<base64 PNG or '
    'JPEG>"}.',
)
OUTPUT = pubsub.output_topic_parameter(
    "Output topic",
    "Where the detections go, e.g. projects/PROJECT/topics/pedestrian_depth: one UTF-8 JSON "
    'message per frame, {"name", "model", "width", "height", "pedestrians": [{"box": '
    '[x1, y1, x2, y2] in pixels, "score", "distance_m", "distance_method"}]} (an empty '
    "list when there is no pedestrian), with the frame's name also as the attribute name.",
    lab="projects/{project}/topics/pedestrian_depth",
)


def _number(
    name: str,
    label: str,
    help_text: str,
    default,
    low,
    high,
    type=float,
    *,
    group: str | None = None,
) -> Parameter:
    kind = number_kind(low, high, integer=type is int)
    # repr() of a float is the shortest text that reads back as the same float, so the
    # console's default and the parser's default agree exactly.
    return Parameter(
        name=name,
        label=label,
        help_text=f"{help_text} From {plain(low)} to {plain(high)}.",
        param_type="NUMBER",
        optional=True,
        default=repr(default),
        kind=kind,
        # the grammar first (the range included), so float() and int() cannot fail
        type=kind.argparse_type(type),
        group=group,
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

SCORE_THRESHOLD = _number(
    "score_threshold",
    "Detection score threshold",
    "Report a pedestrian only when the detector's score (0 to 1) is at least this. Lower "
    "finds more occluded pedestrians and more false ones.",
    DEFAULT_SCORE_THRESHOLD,
    0,
    1,
)
FOCAL_PX = _number(
    "focal_px",
    "Camera focal length (pixels)",
    f"The camera's focal length in pixels, {_GRID}: a pedestrian of height H at depth Z "
    f"along the optical axis is focal_px * H / Z pixels tall. {_FITTED}",
    geometry.FOCAL_PX,
    1,
    100_000,
    group=CAMERA,
)
HORIZON_ROW = _number(
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
CAMERA_HEIGHT_M = _number(
    "camera_height_m",
    "Camera height (m)",
    f"The camera's height above the (flat) ground, in metres; the head-top cue needs it "
    f"above pedestrian_height_m. {_FITTED}",
    geometry.CAMERA_HEIGHT_M,
    0.1,
    100,
    group=CAMERA,
)
FORWARD_OFFSET_M = _number(
    "forward_offset_m",
    "Camera forward offset (m)",
    f"How far the camera is ahead of the point distances are measured from (the car's "
    f"reference point), in metres; negative means behind. {_FITTED}",
    geometry.FORWARD_OFFSET_M,
    -10,
    10,
    group=CAMERA,
)
PEDESTRIAN_HEIGHT_M = _number(
    "pedestrian_height_m",
    "Pedestrian height (m)",
    "The height assumed for every pedestrian, in metres; distances scale with it. The "
    "default is the lab's pedestrian, a child model 1.30 m tall.",
    geometry.PEDESTRIAN_HEIGHT_M,
    0.5,
    2.5,
    group=CAMERA,
)
MAX_FRAME_PIXELS = _number(
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

DEAD_LETTER_TOPIC = pubsub.dead_letter_topic_parameter("pedestrian_dead_letter")

TEMPLATE = Template(
    name="pedestrian_depth",
    description=(
        "Detects pedestrians in camera frames arriving on Pub/Sub (SSDLite-MobileNetV2 "
        "baked into the image, run over overlapping tiles), estimates each one's "
        "distance from the camera, and publishes the boxes and distances per frame."
    ),
    parameters=(
        *INPUTS,
        OUTPUT,
        DEAD_LETTER_TOPIC,
        SCORE_THRESHOLD,
        *CAMERA_PARAMETERS,
        MAX_FRAME_PIXELS,
    ),
    streaming=True,
)


# Parameter name -> (lowest, highest) value accepted, both inclusive: each number's kind
# holds its range (written into its console regex and its help text too).
RANGES = {p.name: p.kind.bounds for p in TEMPLATE.parameters if p.kind and p.kind.bounds}


def check_numbers(args) -> None:
    """Every number within its range, and the camera above the pedestrian's head. The parser
    has already refused what is not a finite number."""
    for name, (low, high) in RANGES.items():
        value = getattr(args, name)
        if not low <= value <= high:  # also refuses NaN, should one come by another way
            raise ParameterError(name, f"expected {plain(low)} to {plain(high)}, got {value!r}")
    if not args.camera_height_m > args.pedestrian_height_m:
        raise ParameterError(
            "camera_height_m",
            f"expected above pedestrian_height_m "
            f"({args.pedestrian_height_m!r} m): the distance of a pedestrian "
            f"cut off by the frame bottom comes from how far below the camera "
            f"the head is, got {args.camera_height_m!r}",
        )
    camera_from_args(args, CAMERA_PARAMETERS)


def preflight(args, options, *, on_dataflow: bool) -> None:
    input_name = pubsub.check_stream_parameters(args)
    check_numbers(args)
    check_detector_installed()
    pubsub.look_up_stream_topics(args, input_name, on_dataflow=on_dataflow)


def build_pipeline(pipeline, args):
    detect = DetectPedestrians(
        detector_from_args(args), camera_from_args(args, CAMERA_PARAMETERS), args.max_frame_pixels
    )
    return pubsub.build_stream_pipeline(pipeline, args, "Detect", detect)
