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
handler in handler.py, the composite in transforms.py, the parameters in parameters.py, the
arguments' objects and checks in options.py; this module holds the template and the pipeline.
"""

from __future__ import annotations

from pipelines.core.params import Template
from pipelines.io import pubsub
from pipelines.pedestrian import parameters
from pipelines.pedestrian.options import (
    camera_from_args,
    check_detector_installed,
    check_numbers,
    detector_from_args,
)
from pipelines.pedestrian.transforms import DetectPedestrians

TEMPLATE = Template(
    name="pedestrian_depth",
    description=(
        "Detects pedestrians in camera frames arriving on Pub/Sub (SSDLite-MobileNetV2 "
        "baked into the image, run over overlapping tiles), estimates each one's "
        "distance from the camera, and publishes the boxes and distances per frame."
    ),
    parameters=(
        *parameters.INPUTS,
        parameters.OUTPUT,
        parameters.DEAD_LETTER_TOPIC,
        parameters.SCORE_THRESHOLD,
        *parameters.CAMERA_PARAMETERS,
        parameters.MAX_FRAME_PIXELS,
    ),
    streaming=True,
)


def preflight(args, options, *, on_dataflow: bool) -> None:
    input_name = pubsub.check_stream_parameters(args)
    check_numbers(args, TEMPLATE.parameters)
    check_detector_installed()
    pubsub.look_up_stream_topics(args, input_name, on_dataflow=on_dataflow)


def build_pipeline(pipeline, args):
    detect = DetectPedestrians(
        detector_from_args(args),
        camera_from_args(args, parameters.CAMERA_PARAMETERS),
        args.max_frame_pixels,
    )
    return pubsub.build_stream_pipeline(pipeline, args, "Detect", detect)
