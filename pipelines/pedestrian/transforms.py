"""The pedestrian_depth job's composite: frame messages in, result messages and dead letters out.

    messages ──DetectAndMeasure──┬─ (input id, name, JSON) ──ToMessage── result messages
                                 └─ dead letters (the input message and why, see pubsub)

Everything that can fail on a frame, down to encoding its result as JSON, happens inside
DetectAndMeasure's per-message `try`; ToMessage only wraps bytes that are already valid.

The detector (`PedestrianDetector`: a frozen SSDLite graph over overlapping tiles) is loaded
in `DoFn.setup`, once per worker process (`apache_beam.utils.shared.Shared`), from the graph
the image installed at build time; building the graph on the launcher imports no TensorFlow.
Counters in the `pedestrian` namespace: frames_read = frames_processed + dead_letters, and
pedestrians_found.
"""

from __future__ import annotations

import copy
import logging
import time

import apache_beam as beam
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.metrics import Metrics
from apache_beam.utils.shared import Shared

from pipelines.core.deadletters import DEAD_LETTERS, answering, dead_letter
from pipelines.pedestrian import geometry
from pipelines.pedestrian.detector import (
    DEFAULT_MAX_PIXELS,
    PedestrianDetector,
    default_graph_path,
)
from pipelines.pedestrian.frames import (
    encoded_message,
    failure_reason,
    frame_from_message,
    frame_result,
    result_data,
)
from pipelines.pedestrian.geometry import CameraModel

_log = logging.getLogger(__name__)

METRICS_NAMESPACE = "pedestrian"
RESULTS = "results"


class _DetectFn(beam.DoFn):
    """PubsubMessage -> (frame name, result JSON bytes), or a dead-letter PubsubMessage on
    DEAD_LETTERS.

    Every exception is caught per message: in a stream, an exception would retry the same
    bundle for ever and hold up every frame behind it.
    """

    def __init__(
        self,
        detector: PedestrianDetector,
        camera: CameraModel,
        max_frame_pixels: int = DEFAULT_MAX_PIXELS,
    ):
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
            name, image = frame_from_message(
                message.data, message.attributes, getattr(message, "message_id", None)
            )
            # Decoded at the scale the detector's tiles need (half size for 1080p JPEG):
            # the size limit is still checked from the header before any decoding.
            frame = self._detector.decode(image, max_pixels=self._max_frame_pixels)
            stage = "detect"
            detections = self._detector.detect(frame)
            result = frame_result(name, frame.width, frame.height, detections, self._camera)
            data = result_data(result)
        except Exception as error:  # noqa: BLE001 - one odd frame must not stop a stream
            self._dead_letters.inc()
            yield beam.pvalue.TaggedOutput(
                DEAD_LETTERS, dead_letter(message, failure_reason(error), stage=stage)
            )
            return
        self._frames_processed.inc()
        self._pedestrians_found.inc(len(detections))
        yield message.message_id, name, data

    def teardown(self):
        # Shared, so not closed here (other instances may still use it); the session closes
        # when the last reference goes.
        self._detector = None


def _loaded(detector: PedestrianDetector) -> PedestrianDetector:
    started = time.monotonic()
    detector.load()
    _log.info(
        "pedestrian detector loaded from %s in %.1f s",
        detector.graph_path,
        time.monotonic() - started,
    )
    return detector


class DetectPedestrians(beam.PTransform):
    """Pub/Sub frame messages -> (result messages, dead-letter messages).

    Decoding, detection and distance happen in one step, so the decoded frame (1.5 MB at
    1920x1080, decoded at half size) never leaves the worker thread that decoded it.
    """

    def __init__(
        self,
        detector: PedestrianDetector,
        camera: CameraModel = geometry.DEFAULT_CAMERA,
        max_frame_pixels: int = DEFAULT_MAX_PIXELS,
        label: str | None = None,
    ):
        super().__init__(label)
        self._detector = detector
        self._camera = camera
        self._max_frame_pixels = max_frame_pixels

    def expand(self, messages):
        outputs = messages | "DetectAndMeasure" >> beam.ParDo(
            _DetectFn(self._detector, self._camera, self._max_frame_pixels)
        ).with_outputs(DEAD_LETTERS, main=RESULTS)
        results = outputs[RESULTS] | "ToMessage" >> beam.MapTuple(
            lambda source_id, name, data: answering(source_id, encoded_message(name, data))
        )
        return results, outputs[DEAD_LETTERS]
