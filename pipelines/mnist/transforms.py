"""The MNIST batch job's composites: rows are batched once, then parsed, classified and
formatted a batch at a time.

    rows ──ParseImages──┬─ ImageBatch(ids, pixels) ──PredictDigits──┬─ PredictionBatch(ids, P)
                        └─ dead letters (Error, Row)                 └─ dead letters

Beam's cost per element (a DoFn call, a pickle between stages, a counter) is then paid per
batch, the pixels of a whole batch are parsed in one vectorised call, and the model sees the
batch as one array: the job's CPU per row comes close to plain TensorFlow's doing the same
work (bench/mnist_batch_bench.py).

Every input element leaves through exactly one output: rows_read = predictions + dead_letters
(counters in the `mnist` namespace, visible in the Dataflow console).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from pipelines.core.deadletters import DEAD_LETTERS, dead_letter_row
from pipelines.mnist.records import (
    BadRecord,
    image_row,
    parse_id,
    parse_image_batch,
    prediction_row,
)

METRICS_NAMESPACE = "mnist"
VALID = "valid"
# Rows per batch. Below ~64, Beam's and TensorFlow's fixed costs per call dominate; above a
# few thousand, a batch's arrays (3 kB of pixels a row) stop fitting in cache for no gain.
MIN_BATCH_ROWS = 64
MAX_BATCH_ROWS = 1024


class ImageBatch(NamedTuple):
    ids: np.ndarray  # int64 [N]
    pixels: np.ndarray  # float32 [N, NUM_PIXELS]


class PredictionBatch(NamedTuple):
    ids: np.ndarray  # int64 [N]
    probabilities: np.ndarray  # float32 [N, NUM_CLASSES], all finite


def row_pair(row) -> tuple[Any, Any]:
    """(ID, Image) of a BigQuery row or a decoded message: the lab's {"ID", "Image"}."""
    if not hasattr(row, "get"):
        raise BadRecord(f"expected an object with ID and Image, got {type(row).__name__}")
    return row.get("ID"), row.get("Image")


def _unexpected(error: Exception) -> str:
    return f"unexpected {type(error).__name__}: {error}"


class _ParseBatchFn(beam.DoFn):
    def __init__(
        self, to_pair: Callable[[Any], tuple[Any, Any]], to_dead_letter: Callable[[Any, str], Any]
    ):
        self._to_pair = to_pair
        self._to_dead_letter = to_dead_letter
        self._rows_read = Metrics.counter(METRICS_NAMESPACE, "rows_read")
        self._dead_letters = Metrics.counter(METRICS_NAMESPACE, "dead_letters")

    def process(self, elements):
        self._rows_read.inc(len(elements))
        kept, ids, images, dead = [], [], [], []
        for element in elements:
            try:
                raw_id, raw_image = self._to_pair(element)
                ids.append(parse_id(raw_id))  # the ID first: its reason wins, as in parse_row
            except BadRecord as error:
                dead.append((element, str(error)))
            except Exception as error:  # noqa: BLE001 - one odd row must not fail the batch
                dead.append((element, _unexpected(error)))
            else:
                kept.append(element)
                images.append(raw_image)
        pixels, failures = parse_image_batch(images)
        dead += [(kept[i], str(error)) for i, error in failures.items()]
        if dead:
            self._dead_letters.inc(len(dead))
            for element, reason in dead:
                yield beam.pvalue.TaggedOutput(DEAD_LETTERS, self._to_dead_letter(element, reason))
        good = np.ones(len(kept), dtype=bool)
        good[list(failures)] = False
        if good.any():
            yield ImageBatch(np.array(ids, dtype=np.int64)[good], pixels[good])


class ParseImages(beam.PTransform):
    """Raw elements -> `.valid` ImageBatch and `.dead_letters` (Error, Row).

    `to_pair` turns one raw element (a BigQuery row, a CSV line) into its (ID, Image) values;
    it may raise BadRecord. `to_dead_letter(element, reason)` makes the dead letter from the
    raw element, so nothing of the original is lost.
    """

    def __init__(
        self,
        to_pair: Callable[[Any], tuple[Any, Any]] = row_pair,
        to_dead_letter: Callable[[Any, str], Any] = dead_letter_row,
        label: str | None = None,
    ):
        super().__init__(label)
        self._to_pair = to_pair
        self._to_dead_letter = to_dead_letter

    def expand(self, elements):
        return (
            elements
            | "Batch"
            >> beam.BatchElements(min_batch_size=MIN_BATCH_ROWS, max_batch_size=MAX_BATCH_ROWS)
            | "Validate"
            >> beam.ParDo(_ParseBatchFn(self._to_pair, self._to_dead_letter)).with_outputs(
                DEAD_LETTERS, main=VALID
            )
        )


class _ToPredictionsFn(beam.DoFn):
    def __init__(self):
        self._predictions = Metrics.counter(METRICS_NAMESPACE, "predictions")
        self._dead_letters = Metrics.counter(METRICS_NAMESPACE, "dead_letters")

    def process(self, keyed_result):
        ids, result = keyed_result
        probabilities = np.asarray(result.inference)
        finite = np.all(np.isfinite(probabilities), axis=1)
        for row in np.flatnonzero(~finite):
            try:
                prediction_row(ids[row], probabilities[row])  # for its reason
            except BadRecord as error:
                self._dead_letters.inc()
                yield beam.pvalue.TaggedOutput(
                    DEAD_LETTERS,
                    dead_letter_row(image_row(ids[row], result.example[row]), str(error)),
                )
        if finite.any():
            self._predictions.inc(int(finite.sum()))
            yield PredictionBatch(ids[finite], probabilities[finite])


class _FailedBatchFn(beam.DoFn):
    """A batch the model could not score: each of its rows becomes a dead letter."""

    def __init__(self):
        self._dead_letters = Metrics.counter(METRICS_NAMESPACE, "dead_letters")

    def process(self, failed):
        batches, error = failed
        reason = f"inference failed: {describe_failure(error)}"
        for ids, pixels in batches:
            self._dead_letters.inc(len(ids))
            for image_id, image in zip(ids, pixels):
                yield dead_letter_row(image_row(image_id, image), reason)


def describe_failure(error) -> str:
    # Beam hands over (exception class, repr, formatted traceback lines); the last line of
    # the traceback is the familiar "Type: message".
    if isinstance(error, tuple) and len(error) == 3 and error[2]:
        return str(error[2][-1]).strip()
    return f"{type(error).__name__}: {error}"


class PredictDigits(beam.PTransform):
    """ImageBatch -> (PredictionBatch, dead-letter rows).

    Each ImageBatch is one model call (the handler is told not to batch batches); RunInference
    still shares one loaded model per worker process and reports its metrics. A batch that
    fails inference goes to the dead letters instead of failing the job, and so does a row
    whose probabilities are not finite.
    """

    def __init__(self, model_handler, label: str | None = None):
        super().__init__(label)
        self._model_handler = model_handler

    def expand(self, image_batches):
        results, failed = (
            image_batches
            | "RunInference"
            >> RunInference(KeyedModelHandler(self._model_handler)).with_exception_handling()
        )
        predictions = results | "ToPredictions" >> beam.ParDo(_ToPredictionsFn()).with_outputs(
            DEAD_LETTERS, main=VALID
        )
        failed_rows = failed.failed_inferences | "FailedBatches" >> beam.ParDo(_FailedBatchFn())
        dead_letters = (predictions[DEAD_LETTERS], failed_rows) | "MergeFailures" >> beam.Flatten()
        return predictions[VALID], dead_letters
