"""The composites both MNIST jobs share: validate rows, then classify them.

    rows ──ParseImages──┬─ valid (ID, pixels) ──PredictDigits──┬─ prediction rows
                        └─ dead letters                        └─ dead letters (inference failed)

Every input element leaves through exactly one output, and the counters in the `mnist`
namespace (rows_read, predictions, dead_letters) let anyone check that rows_read equals
predictions + dead_letters in the Dataflow console.
"""

from __future__ import annotations

from typing import Any, Callable

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from pipelines.mnist.records import BadRecord, dead_letter_row, parse_row, prediction_row

METRICS_NAMESPACE = "mnist"
VALID = "valid"
DEAD_LETTERS = "dead_letters"


def _identity(element):
    return element


class _ParseImagesFn(beam.DoFn):
    def __init__(self, to_row: Callable[[Any], dict], to_dead_letter: Callable[[Any, str], Any]):
        self._to_row = to_row
        self._to_dead_letter = to_dead_letter
        self._rows_read = Metrics.counter(METRICS_NAMESPACE, "rows_read")
        self._dead_letters = Metrics.counter(METRICS_NAMESPACE, "dead_letters")

    def process(self, element):
        self._rows_read.inc()
        try:
            parsed = parse_row(self._to_row(element))
        except BadRecord as error:
            reason = str(error)
        except Exception as error:  # noqa: BLE001 - one odd record must not stop a stream
            reason = f"unexpected {type(error).__name__}: {error}"
        else:
            yield parsed
            return
        self._dead_letters.inc()
        yield beam.pvalue.TaggedOutput(DEAD_LETTERS, self._to_dead_letter(element, reason))


class ParseImages(beam.PTransform):
    """Raw elements -> `.valid` (ID, float32[784]) and `.dead_letters` (Error, Row).

    `to_row` turns one raw element (a BigQuery row, a CSV line, a Pub/Sub message) into the
    lab's {"ID", "Image"} row; it may raise BadRecord. `to_dead_letter(element, reason)`
    makes the dead letter from the raw element, so nothing of the original is lost.
    """

    def __init__(self, to_row: Callable[[Any], dict] | None = None,
                 to_dead_letter: Callable[[Any, str], Any] = dead_letter_row,
                 label: str | None = None):
        super().__init__(label)
        self._to_row = to_row or _identity
        self._to_dead_letter = to_dead_letter

    def expand(self, elements):
        return elements | "Validate" >> beam.ParDo(
            _ParseImagesFn(self._to_row, self._to_dead_letter)).with_outputs(
                DEAD_LETTERS, main=VALID)


class _ToPredictionRowFn(beam.DoFn):
    def __init__(self):
        self._predictions = Metrics.counter(METRICS_NAMESPACE, "predictions")
        self._dead_letters = Metrics.counter(METRICS_NAMESPACE, "dead_letters")

    def process(self, keyed_result):
        image_id, result = keyed_result
        try:
            row = prediction_row(image_id, result.inference)
        except BadRecord as error:
            self._dead_letters.inc()
            yield beam.pvalue.TaggedOutput(
                DEAD_LETTERS, dead_letter_row(image_row(image_id, result.example), str(error)))
            return
        self._predictions.inc()
        yield row


class _FailedBatchFn(beam.DoFn):
    """A batch the model could not score: each of its rows becomes a dead letter."""

    def __init__(self):
        self._dead_letters = Metrics.counter(METRICS_NAMESPACE, "dead_letters")

    def process(self, failed):
        batch, error = failed
        reason = f"inference failed: {_describe(error)}"
        for image_id, pixels in batch:
            self._dead_letters.inc()
            yield dead_letter_row(image_row(image_id, pixels), reason)


def image_row(image_id, pixels) -> dict:
    """The lab's row back from a parsed image, for a dead letter after parsing."""
    return {"ID": int(image_id), "Image": ",".join(f"{v:g}" for v in pixels)}


def _describe(error) -> str:
    # Beam hands over (exception class, repr, formatted traceback lines); the last line of
    # the traceback is the familiar "Type: message".
    if isinstance(error, tuple) and len(error) == 3 and error[2]:
        return str(error[2][-1]).strip()
    return f"{type(error).__name__}: {error}"


class PredictDigits(beam.PTransform):
    """(ID, float32[784]) -> (prediction rows {"ID", "P0".."P9"}, dead-letter rows).

    RunInference batches the rows and shares one loaded model per worker process; a batch
    that fails inference goes to the dead letters instead of failing (or, in a stream,
    endlessly retrying) the job.
    """

    def __init__(self, model_handler, label: str | None = None):
        super().__init__(label)
        self._model_handler = model_handler

    def expand(self, keyed_images):
        results, failed = (
            keyed_images
            | "RunInference" >> RunInference(
                KeyedModelHandler(self._model_handler)).with_exception_handling())
        rows = results | "ToPredictionRow" >> beam.ParDo(_ToPredictionRowFn()).with_outputs(
            DEAD_LETTERS, main=VALID)
        failed_batches = failed.failed_inferences | "FailedBatches" >> beam.ParDo(
            _FailedBatchFn())
        dead_letters = ((rows[DEAD_LETTERS], failed_batches)
                        | "MergeFailures" >> beam.Flatten())
        return rows[VALID], dead_letters
