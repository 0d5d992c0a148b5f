"""The MNIST composites of both MNIST jobs: elements are batched once, then parsed,
classified and formatted a batch at a time, as one element, a `Failsafe` batch
(pipelines/core/failsafe.py): the records' IDs (and, for a stream, the messages themselves)
and their current value, pixels and then scores.

    elements ──ParseImages──┬─ Failsafe(rows, pixels) ──PredictDigits──┬─ outputs
     (Batch, Validate)      └─ dead letters                           └─ dead letters
                                              (RunInference, ToPredictions, FailedBatches)

Beam's cost per element (a DoFn call, a pickle between stages, a counter) is then paid per
batch, the pixels of a whole batch are parsed in one vectorised call, and the model sees the
batch as one array: the job's CPU per row comes close to plain TensorFlow's doing the same
work (bench/mnist_batch_bench.py).

The jobs differ only at the two ends. In: how an element becomes its (ID, Image)
(`pair_of`, from records.py) and whether each outcome answers its input (`answering`, the
stream: the messages ride with the batch, whole). Out: a batch that carries its messages
answers each with a prediction message or a dead-letter message (with the message's original
data and attributes, pipelines/core/deadletters.py); the batch job's rows become one element
per batch already formatted for the destination (`format_rows`: JSON lines for files, rows
for a table) and dead-letter rows {"Error", "Row"}.

Every input element leaves through exactly one output: rows_read = predictions + dead_letters
(counters in the `mnist` namespace, visible in the Dataflow console).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.utils.windowed_value import WindowedValue

from pipelines.core.deadletters import (
    DEAD_LETTERS,
    answering,
    dead_letter,
    dead_letter_row,
    publish_problem,
)
from pipelines.core.failsafe import Failsafe, Rows
from pipelines.mnist.contract import NUM_CLASSES
from pipelines.mnist.records import (
    PROBABILITY_FIELDS,
    BadRecord,
    image_row,
    message_pair,
    parse_id,
    parse_image_batch,
    prediction_lines,
    prediction_row,
    row_pair,
)

METRICS_NAMESPACE = "mnist"
VALID = "valid"
# Rows per batch of the batch job: the size the model runs fastest at. Below ~128, Beam's and
# TensorFlow's fixed costs per call dominate; above ~256 the CNN's activations stop fitting in
# cache. Model-only speed, 8k rows, 2 cores: 13.6k rows/s in batches of 64, 24.9k at 128,
# 23.9k at 256, 13.6k at 512, 12.5k at 1,024 (which BatchElements had grown most batches to).
BATCH_ROWS = 256
# Messages per batch of the stream job, at most: a batch is what one bundle brings (the local
# runner's bundles are its pulls, local_runtime/subscriber.py), and never waits for more
# (BatchElements flushes at the end of each bundle).
MAX_BATCH_MESSAGES = 1000
# The attribute of a prediction message naming the model folder that made it.
MODEL_ATTRIBUTE = "model"


def reason_of(error: Exception) -> str:
    if isinstance(error, BadRecord):
        return str(error)
    return f"unexpected {type(error).__name__}: {error}"


def describe_failure(error) -> str:
    # Beam hands over (exception class, repr, formatted traceback lines); the last line of
    # the traceback is the familiar "Type: message".
    if isinstance(error, tuple) and len(error) == 3 and error[2]:
        return str(error[2][-1]).strip()
    return f"{type(error).__name__}: {error}"


def checked_probabilities(
    ids: np.ndarray, inference
) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """(mask of the rows that have a prediction, their probabilities [K, NUM_CLASSES], the
    reason of every other row) for a batch's model output. The lab's models give one float
    row per image (checked in bulk); anything else is checked row by row with prediction_row,
    the reference, whose reasons the dead letters carry."""
    probabilities = np.asarray(inference)
    rows = len(ids)
    reasons = {}
    if probabilities.shape == (rows, NUM_CLASSES) and np.issubdtype(
        probabilities.dtype, np.floating
    ):
        finite = np.all(np.isfinite(probabilities), axis=1)
        for row in np.flatnonzero(~finite):
            reasons[int(row)] = _reason_for_row(ids, probabilities, row)
        return finite, probabilities[finite], reasons
    # Not one row of probabilities per image: each row's own outcome, the slow way.
    finite, kept = np.zeros(rows, dtype=bool), []
    for row in range(rows):
        try:
            values = prediction_row(ids[row], probabilities[row])
        except Exception as error:  # noqa: BLE001 - one odd output must not stop the job
            reasons[row] = reason_of(error)
        else:
            finite[row] = True
            kept.append([values[name] for name in PROBABILITY_FIELDS])
    return finite, np.array(kept, dtype=np.float64).reshape(-1, NUM_CLASSES), reasons


def _reason_for_row(ids, probabilities, row) -> str:
    try:
        prediction_row(ids[row], probabilities[row])
    except Exception as error:  # noqa: BLE001 - its reason is what we are after
        return reason_of(error)
    raise AssertionError(f"row {row} has finite probabilities")  # pragma: no cover


def original_of(rows: Rows, pixels, row: int):
    """What a dead letter after parsing keeps of record `row`: its message when the batch
    carries them, else the row back from its parsed values (which says the same)."""
    if rows.answered:
        return rows.originals[row]
    return image_row(rows.ids[row], pixels[row])


def dead_letter_of(answered: bool, original, reason: str, stage: str):
    """A message answering `original` (a stream's), else a dead-letter row {"Error", "Row"}."""
    if answered:
        return dead_letter(original, reason, stage=stage)
    return dead_letter_row(original, reason)


def prediction_attributes(image_id: int, model: str | None) -> dict:
    attributes = {"ID": str(image_id)}
    if model is not None:
        attributes[MODEL_ATTRIBUTE] = model
    return attributes


def prediction_messages(rows: Rows, probabilities: np.ndarray, model: str | None):
    """(True, the prediction message answering its message) for each record of `rows`, or
    (False, (message, reason)) for one whose prediction Pub/Sub would refuse."""
    lines = prediction_lines(rows.ids, probabilities).split("\n")
    for message, image_id, line in zip(rows.originals, rows.ids.tolist(), lines, strict=True):
        prediction = PubsubMessage(
            data=line.encode("utf-8"), attributes=prediction_attributes(image_id, model)
        )
        problem = publish_problem(prediction)
        if problem:  # never for the lab's IDs
            yield False, (message, f"the prediction cannot be published: {problem}")
        else:
            yield True, answering(message.message_id, prediction)


class _ParseBatchFn(beam.DoFn):
    """A batch of elements -> Failsafe(rows, float32 [N, 784]) of the valid ones, and a dead
    letter (stage parse) for each of the others. The ID is checked per element; the pixels
    of the whole batch are parsed in one vectorised call."""

    def __init__(self, pair_of: Callable[[Any], tuple[Any, Any]], answering: bool):
        self._pair_of = pair_of
        self._answering = answering
        self._rows_read = Metrics.counter(METRICS_NAMESPACE, "rows_read")
        self._dead_letters = Metrics.counter(METRICS_NAMESPACE, "dead_letters")

    def process(self, elements):
        self._rows_read.inc(len(elements))
        yield from self._outputs(*self._parse(elements))

    def _parse(self, elements):
        """(the valid rows' batch or None, [(element, reason)] of the others); pure."""
        kept, ids, images, dead = [], [], [], []
        for element in elements:
            try:
                raw_id, raw_image = self._pair_of(element)
                ids.append(parse_id(raw_id))  # the ID first: its reason wins, as row by row
            except Exception as error:  # noqa: BLE001 - one odd element must not fail the batch
                dead.append((element, reason_of(error)))
            else:
                kept.append(element)
                images.append(raw_image)
        pixels, failures = parse_image_batch(images) if images else (None, {})
        dead += [(kept[i], str(error)) for i, error in failures.items()]
        if len(failures) == len(kept):
            return None, dead
        batch = Failsafe(
            Rows(np.array(ids, dtype=np.int64), tuple(kept) if self._answering else None),
            pixels,
        )
        if failures:
            good = np.ones(len(kept), dtype=bool)
            good[list(failures)] = False
            batch = batch.select(good)
        return batch, dead

    def _outputs(self, batch, dead):
        if dead:
            self._dead_letters.inc(len(dead))
            for element, reason in dead:
                yield beam.pvalue.TaggedOutput(
                    DEAD_LETTERS, dead_letter_of(self._answering, element, reason, "parse")
                )
        if batch is not None:
            yield batch


class _OverlappedParseBatchFn(_ParseBatchFn):
    """_ParseBatchFn whose parse of a batch runs on a thread of its own while the batch before
    goes on through the model and the outputs: the floor keeps both cores busy (Arrow's
    reader, TensorFlow), and so does this. Numpy, Arrow and TensorFlow release the GIL while
    they work. Each batch leaves when the next one comes in, or at the end of the bundle, with
    its own timestamp and window; the counters count in the bundle's thread. Not for a stream:
    a batch would wait for the next."""

    def setup(self):
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ParseImages")
        self._pending = None

    def start_bundle(self):
        self._pending = None

    def process(self, elements, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam):
        self._rows_read.inc(len(elements))
        previous = self._pending
        self._pending = (self._pool.submit(self._parse, elements), timestamp, window)
        if previous is not None:
            yield from self._windowed_outputs(*previous)

    def finish_bundle(self):
        previous, self._pending = self._pending, None
        if previous is not None:
            yield from self._windowed_outputs(*previous)

    def teardown(self):
        self._pool.shutdown(wait=False)

    def _windowed_outputs(self, parsed, timestamp, window):
        for output in self._outputs(*parsed.result()):
            if isinstance(output, beam.pvalue.TaggedOutput):
                yield beam.pvalue.TaggedOutput(
                    output.tag, WindowedValue(output.value, timestamp, (window,))
                )
            else:
                yield WindowedValue(output, timestamp, (window,))


class ParseImages(beam.PTransform):
    """Raw elements -> `.valid` Failsafe(rows, pixels) batches and `.dead_letters`.

    `pair_of` gives an element's (ID, Image): records.split_csv_line for CSV records,
    records.row_pair for BigQuery rows, records.message_pair for messages. With `answering`
    (the stream), the messages ride with their batch so that every outcome answers its own,
    and a batch is what one bundle brings, up to MAX_BATCH_MESSAGES: a stream never waits for
    more. Otherwise a batch is BATCH_ROWS rows (the last of a bundle fewer); with `batched`,
    the elements are such lists already (CSV records read BATCH_ROWS at a time).
    """

    def __init__(
        self,
        pair_of: Callable[[Any], tuple[Any, Any]] = row_pair,
        *,
        answering: bool = False,
        batched: bool = False,
        label: str | None = None,
    ):
        super().__init__(label)
        self._pair_of = pair_of
        self._answering = answering
        self._batched = batched

    def expand(self, elements):
        if self._batched:
            # Already lists, read a block at a time (ReadRows with block_records); the step
            # keeps its name, part of the job's graph.
            batches = elements | "Batch" >> beam.Map(list)
        else:
            size = MAX_BATCH_MESSAGES if self._answering else BATCH_ROWS
            batches = elements | "Batch" >> beam.BatchElements(
                min_batch_size=size, max_batch_size=size
            )
        parse = _ParseBatchFn if self._answering else _OverlappedParseBatchFn
        return batches | "Validate" >> beam.ParDo(
            parse(self._pair_of, self._answering)
        ).with_outputs(DEAD_LETTERS, main=VALID)


# The output type declared, so Beam does not infer it from the bytecode at each launch
# (tests/unit/test_declared_outputs.py holds it to what Beam would infer).
@beam.typehints.with_output_types(Any)
class _ToOutputsFn(beam.DoFn):
    """A scored batch -> its outputs; a record the model gave no finite probabilities for is a
    dead letter (stage format) with prediction_row's reason."""

    def __init__(self, format_rows: Callable[[np.ndarray, np.ndarray], Any]):
        self._format_rows = format_rows
        self._predictions = Metrics.counter(METRICS_NAMESPACE, "predictions")
        self._dead_letters = Metrics.counter(METRICS_NAMESPACE, "dead_letters")

    def process(self, scored):
        rows, result = scored
        finite, probabilities, reasons = checked_probabilities(rows.ids, result.inference)
        for row, reason in reasons.items():
            self._dead_letters.inc()
            original = original_of(rows, result.example, row)
            yield beam.pvalue.TaggedOutput(
                DEAD_LETTERS, dead_letter_of(rows.answered, original, reason, "format")
            )
        if not finite.any():
            return
        rows = rows.select(finite)
        if not rows.answered:
            self._predictions.inc(len(probabilities))
            yield self._format_rows(rows.ids, probabilities)
            return
        for published, output in prediction_messages(rows, probabilities, result.model_id):
            if published:
                self._predictions.inc()
                yield output
            else:
                self._dead_letters.inc()
                yield beam.pvalue.TaggedOutput(DEAD_LETTERS, dead_letter(*output, stage="format"))


# The output type declared, so Beam does not infer it from the bytecode at each launch
# (tests/unit/test_declared_outputs.py holds it to what Beam would infer).
@beam.typehints.with_output_types(Any)
class _FailedBatchFn(beam.DoFn):
    """A batch the model could not score: each of its records becomes a dead letter."""

    def __init__(self):
        self._dead_letters = Metrics.counter(METRICS_NAMESPACE, "dead_letters")

    def process(self, failed):
        batches, error = failed
        reason = f"inference failed: {describe_failure(error)}"
        for rows, pixels in batches:
            self._dead_letters.inc(len(rows.ids))
            for row in range(len(rows.ids)):
                original = original_of(rows, pixels, row)
                yield dead_letter_of(rows.answered, original, reason, "inference")


class PredictDigits(beam.PTransform):
    """Failsafe(rows, pixels) batches -> (outputs, dead letters).

    Each batch is one model call (MnistModelHandler does not batch batches); RunInference
    still shares one loaded model per worker process and reports its metrics. A batch that
    fails inference goes to the dead letters instead of failing (in a stream, endlessly
    retrying) the job, and so does a record whose probabilities are not finite.

    The outputs: for a batch that carries its messages, one prediction message answering
    each; otherwise one element per batch, `format_rows(ids, probabilities)` (records.py:
    prediction_lines for JSON-lines files, prediction_rows for a table).
    """

    def __init__(
        self,
        model_handler,
        format_rows: Callable[[np.ndarray, np.ndarray], Any] = prediction_lines,
        label: str | None = None,
    ):
        super().__init__(label)
        self._model_handler = model_handler
        self._format_rows = format_rows

    def expand(self, batches):
        results, failed = (
            batches
            | "RunInference"
            >> RunInference(KeyedModelHandler(self._model_handler)).with_exception_handling()
        )
        outputs = results | "ToPredictions" >> beam.ParDo(
            _ToOutputsFn(self._format_rows)
        ).with_outputs(DEAD_LETTERS, main=VALID)
        failed_rows = failed.failed_inferences | "FailedBatches" >> beam.ParDo(_FailedBatchFn())
        dead_letters = (outputs[DEAD_LETTERS], failed_rows) | "MergeFailures" >> beam.Flatten()
        return outputs[VALID], dead_letters


class ClassifyMessages(beam.PTransform):
    """Pub/Sub messages -> (prediction messages, dead-letter messages): ParseImages and
    PredictDigits, each outcome answering its message."""

    def __init__(self, model_handler):
        super().__init__()
        self._model_handler = model_handler

    def expand(self, messages):
        parsed = messages | "ParseImages" >> ParseImages(message_pair, answering=True)
        predictions, failed = parsed.valid | "PredictDigits" >> PredictDigits(self._model_handler)
        dead_letters = (parsed[DEAD_LETTERS], failed) | "MergeDeadLetters" >> beam.Flatten()
        return predictions, dead_letters
