"""The pedestrian detector as a Beam RunInference `ModelHandler`, like MNIST's
(pipelines/mnist/handler.py).

One example is one decoded `Frame` (pipelines/pedestrian/detector.py: its pixels at the
scale the tiles need, and its full size); its inference is the frame's detections,
[([x1, y1, x2, y2], score)] in the frame's full-size pixels, best first. A batch of frames
is one model call over all their tiles.

The job runs one frame per model call (MAX_BATCH_FRAMES): a frame is already a batch of 8
tiles, and measured on the 2-core development machine (TensorFlow on one thread or all) the
graph takes no less CPU per tile in bigger batches (124-139 ms per 8 tiles at 8, 137-145 at
16 and 32), so batching frames would gain nothing, while a model failure would then
dead-letter every frame of its batch instead of its own.

TensorFlow is imported only when the model loads (RunInference's setup, once per worker
process), so building or launching a pipeline never pays for it.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from pipelines.core.models import keep_loaded
from pipelines.pedestrian.detector import Frame, PedestrianDetector, default_graph_path

MAX_BATCH_FRAMES = 1

_log = logging.getLogger(__name__)


class PedestrianModelHandler(ModelHandler[Frame, PredictionResult, PedestrianDetector]):
    """RunInference handler: Frame -> PredictionResult(frame, detections).

    `detector` is the detector's configuration, not loaded (it pickles small); each worker
    process loads its own copy once. A detector built with the default graph looks for it
    where the model loads, not where the pipeline was built: a job launched from a checkout
    runs on workers whose image has the graph at $PIPELINES_MODELS_DIR (/opt/models).
    """

    def __init__(
        self,
        detector: PedestrianDetector,
        *,
        max_batch_frames: int = MAX_BATCH_FRAMES,
        **kwargs,
    ):
        super().__init__(min_batch_size=1, max_batch_size=max_batch_frames, **kwargs)
        self._detector = detector
        self._default_graph = detector.graph_path == default_graph_path()

    def load_model(self) -> PedestrianDetector:
        # copy: __getstate__ leaves out any session, so this is always a fresh one.
        detector = copy.copy(self._detector)
        if self._default_graph:
            detector.graph_path = default_graph_path()
        started = time.monotonic()
        detector.load()
        # One line per load, with the process: how an operator sees that each worker
        # process loads the detector once, and from where.
        _log.info(
            "pedestrian detector loaded from %s in %.1f s (pid %d)",
            detector.graph_path,
            time.monotonic() - started,
            os.getpid(),
        )
        # Kept referenced between bundles, or RunInference's cache drops it and the
        # DirectRunner loads it again every bundle or two (pipelines/core/models.py).
        return keep_loaded(("pedestrian", str(detector.graph_path)), detector)

    def run_inference(
        self,
        batch: Sequence[Frame],
        model: PedestrianDetector,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        found = model.detect_batch(batch)
        return [PredictionResult(frame, detections) for frame, detections in zip(batch, found)]

    def get_num_bytes(self, batch: Sequence[Frame]) -> int:
        # The decoded pixels the model's tiles are cut from (RGB, one byte a channel).
        return sum(frame.image.width * frame.image.height * 3 for frame in batch)

    def get_metrics_namespace(self) -> str:
        return "BeamML_Pedestrian"

    def validate_inference_args(self, inference_args: dict[str, Any] | None):
        if inference_args:
            raise ValueError(f"PedestrianModelHandler takes no inference_args: {inference_args}")
