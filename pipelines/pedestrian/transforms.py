"""The pedestrian_depth job's composite: frame messages in, result messages and dead letters out.

    messages ──Decode──┬─ (FrameKey, Frame) ──RunInference──┬─ ──Measure──┬─ ──ToMessage── results
                       │                                    │             └─ dead letters (detect)
                       │                                    └─ failed ──FailedInferences── (detect)
                       └─ dead letters (decode)

Every message ends in exactly one result or dead letter (the input message and why, see
pipelines/core/deadletters.py), each answering it. Decode does everything that can fail on
the message itself (parsing it, the size limits, decoding); RunInference runs the detector
(pipelines/pedestrian/handler.py) on the decoded frame, and a frame it fails on becomes a
dead letter instead of failing (in a stream: endlessly retrying) the job; Measure turns the
boxes into distances and the result's JSON, so ToMessage only wraps bytes that are valid.

The detector is loaded by RunInference once per worker process, from the graph the image
installed at build time; building the graph on the launcher imports no TensorFlow.
Counters in the `pedestrian` namespace: frames_read = frames_processed + dead_letters, and
pedestrians_found.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from pipelines.core.deadletters import DEAD_LETTERS, answering, dead_letter
from pipelines.pedestrian import geometry
from pipelines.pedestrian.detector import DEFAULT_MAX_PIXELS, PedestrianDetector
from pipelines.pedestrian.frames import (
    encoded_message,
    failure_reason,
    frame_from_message,
    frame_result,
    reported_failure_reason,
    result_data,
)
from pipelines.pedestrian.geometry import CameraModel
from pipelines.pedestrian.handler import PedestrianModelHandler

METRICS_NAMESPACE = "pedestrian"
RESULTS = "results"
FRAMES = "frames"


class FrameKey(NamedTuple):
    """What a decoded frame carries through RunInference: the message it answers, and the
    frame's name."""

    message: PubsubMessage
    name: str


def _counter(name: str):
    return Metrics.counter(METRICS_NAMESPACE, name)


class _DecodeFn(beam.DoFn):
    """PubsubMessage -> (FrameKey, Frame), or a dead letter (stage decode) on DEAD_LETTERS.

    Every exception is caught per message: in a stream, an exception would retry the same
    bundle for ever and hold up every frame behind it.
    """

    def __init__(self, detector: PedestrianDetector, max_frame_pixels: int):
        self._config = detector  # not loaded: pickles small
        self._max_frame_pixels = max_frame_pixels
        self._decoder = None
        self._frames_read = _counter("frames_read")
        self._dead_letters = _counter("dead_letters")

    def setup(self):
        # Decodes as the detector's tiles need (half size for 1080p JPEG, PNG by
        # TensorFlow's decoder); the graph itself is RunInference's to load.
        self._decoder = copy.copy(self._config).load_decoder()

    def process(self, message: PubsubMessage):
        self._frames_read.inc()
        try:
            name, image = frame_from_message(
                message.data, message.attributes, getattr(message, "message_id", None)
            )
            # The size limit is checked from the header, before any decoding.
            frame = self._decoder.decode(image, max_pixels=self._max_frame_pixels)
        except Exception as error:  # noqa: BLE001 - one odd frame must not stop a stream
            self._dead_letters.inc()
            yield beam.pvalue.TaggedOutput(
                DEAD_LETTERS, dead_letter(message, failure_reason(error), stage="decode")
            )
            return
        yield FrameKey(message, name), frame


# The output type declared, so Beam does not infer it from the bytecode at each launch
# (tests/unit/test_declared_outputs.py holds it to what Beam would infer).
@beam.typehints.with_output_types(tuple[Any, Any, Any])
class _MeasureFn(beam.DoFn):
    """(FrameKey, PredictionResult(frame, detections)) -> (input id, name, result JSON), or
    a dead letter (stage detect) when the detections make no publishable result."""

    def __init__(self, camera: CameraModel):
        self._camera = camera
        self._frames_processed = _counter("frames_processed")
        self._pedestrians_found = _counter("pedestrians_found")
        self._dead_letters = _counter("dead_letters")

    def process(self, keyed_result):
        key, result = keyed_result
        frame, detections = result.example, result.inference
        try:
            record = frame_result(key.name, frame.width, frame.height, detections, self._camera)
            data = result_data(record)
        except Exception as error:  # noqa: BLE001 - one odd output must not stop a stream
            self._dead_letters.inc()
            yield beam.pvalue.TaggedOutput(
                DEAD_LETTERS, dead_letter(key.message, failure_reason(error), stage="detect")
            )
            return
        self._frames_processed.inc()
        self._pedestrians_found.inc(len(record["pedestrians"]))
        yield key.message.message_id, key.name, data


# The output type declared, so Beam does not infer it from the bytecode at each launch
# (tests/unit/test_declared_outputs.py holds it to what Beam would infer).
@beam.typehints.with_output_types(Any)
class _FailedInferenceFn(beam.DoFn):
    """A batch of frames the detector failed on: a dead letter (stage detect) for each of
    their messages, with the reason a failure of that frame alone would give."""

    def __init__(self):
        self._dead_letters = _counter("dead_letters")

    def process(self, failed):
        batch, error = failed
        reason = reported_failure_reason(error)
        self._dead_letters.inc(len(batch))
        for key, _frame in batch:
            yield dead_letter(key.message, reason, stage="detect")


class DetectPedestrians(beam.PTransform):
    """Pub/Sub frame messages -> (result messages, dead-letter messages).

    The decoded frame (1.5 MB at 1920x1080, decoded at half size) passes from Decode to the
    detector inside one fused stage: no step in between regroups or moves it.
    """

    def __init__(
        self,
        detector: PedestrianDetector,
        camera: CameraModel = geometry.DEFAULT_CAMERA,
        max_frame_pixels: int = DEFAULT_MAX_PIXELS,
        label: str | None = None,
        *,
        max_batch_frames: int | None = None,
    ):
        super().__init__(label)
        self._detector = detector
        self._camera = camera
        self._max_frame_pixels = max_frame_pixels
        self._batch = {} if max_batch_frames is None else {"max_batch_frames": max_batch_frames}

    def expand(self, messages):
        decoded = messages | "Decode" >> beam.ParDo(
            _DecodeFn(self._detector, self._max_frame_pixels)
        ).with_outputs(DEAD_LETTERS, main=FRAMES)
        handler = KeyedModelHandler(PedestrianModelHandler(self._detector, **self._batch))
        detected, failed = (
            decoded[FRAMES] | "RunInference" >> RunInference(handler).with_exception_handling()
        )
        measured = detected | "Measure" >> beam.ParDo(_MeasureFn(self._camera)).with_outputs(
            DEAD_LETTERS, main=RESULTS
        )
        results = measured[RESULTS] | "ToMessage" >> beam.MapTuple(
            lambda source_id, name, data: answering(source_id, encoded_message(name, data))
        )
        not_detected = failed.failed_inferences | "FailedInferences" >> beam.ParDo(
            _FailedInferenceFn()
        )
        dead_letters = (
            decoded[DEAD_LETTERS],
            measured[DEAD_LETTERS],
            not_detected,
        ) | "MergeDeadLetters" >> beam.Flatten()
        return results, dead_letters
