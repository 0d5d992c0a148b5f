"""The MNIST composites of both MNIST jobs: elements are batched once, then parsed, classified
and formatted a batch at a time.

    elements ──ParseImages──┬─ (key, pixels) ──PredictDigits──┬─ outputs
                            └─ dead letters                    └─ dead letters

Beam's cost per element (a DoFn call, a pickle between stages, a counter) is then paid per
batch, the pixels of a whole batch are parsed in one vectorised call, and the model sees the
batch as one array: the job's CPU per row comes close to plain TensorFlow's doing the same
work (bench/mnist_batch_bench.py).

What differs between the jobs is a `Form`: how a raw element becomes its (ID, Image), what
rides with the pixels through RunInference (the key), and how an outcome is written.
ROWS (mnist_batch; `Rows(split_csv_line)` for CSV lines) keeps only the IDs and writes
`PredictionBatch`es and dead-letter rows; MESSAGES (mnist_stream) keeps the messages, whole,
so that every outcome (a prediction or a dead letter, at any stage) answers its own input
message with its original data and attributes (pipelines/core/deadletters.py).

Every input element leaves through exactly one output: rows_read = predictions + dead_letters
(counters in the `mnist` namespace, visible in the Dataflow console).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from pipelines.core.deadletters import (
    DEAD_LETTERS,
    answering,
    dead_letter,
    dead_letter_row,
    publish_problem,
    to_json_line,
)
from pipelines.mnist.contract import NUM_CLASSES
from pipelines.mnist.records import (
    PROBABILITY_FIELDS,
    BadRecord,
    image_row,
    parse_id,
    parse_image_batch,
    parse_json_message,
    prediction_lines,
    prediction_row,
)

METRICS_NAMESPACE = "mnist"
VALID = "valid"
# Rows per batch of the batch job. Below ~64, Beam's and TensorFlow's fixed costs per call
# dominate; above a few thousand, a batch's arrays (3 kB of pixels a row) stop fitting in
# cache for no gain. Model-only speed on 10k rows, 2 cores: ~1.7k rows/s in batches of 1,
# ~18k at 32, ~23k at 256.
MIN_BATCH_ROWS = 64
MAX_BATCH_ROWS = 1024
# Messages per batch of the stream job, at most: a batch is what one bundle brings (the local
# runner's bundles are its pulls, local_runtime/subscriber.py), and never waits for more
# (BatchElements flushes at the end of each bundle).
MAX_BATCH_MESSAGES = 1000
# The attribute of a prediction message naming the model folder that made it.
MODEL_ATTRIBUTE = "model"


class ImageBatch(NamedTuple):
    """The batch job's parsed batch: its key through RunInference is the IDs."""

    ids: np.ndarray  # int64 [N]
    pixels: np.ndarray  # float32 [N, NUM_PIXELS]


class MessageBatch(NamedTuple):
    """The valid messages of one batch, in order, with their IDs: the key of their pixels
    through RunInference, so that every outcome answers its own input message."""

    messages: tuple
    ids: np.ndarray  # int64 [N]


class PredictionBatch(NamedTuple):
    ids: np.ndarray  # int64 [N]
    probabilities: np.ndarray  # float32 [N, NUM_CLASSES], all finite


def row_pair(row) -> tuple[Any, Any]:
    """(ID, Image) of a BigQuery row or a decoded message: the lab's {"ID", "Image"}."""
    if not hasattr(row, "get"):
        raise BadRecord(f"expected an object with ID and Image, got {type(row).__name__}")
    return row.get("ID"), row.get("Image")


def message_pair(message) -> tuple[Any, Any]:
    """(ID, Image) of a Pub/Sub message: UTF-8 JSON of one row."""
    return row_pair(parse_json_message(message.data))


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


class Form:
    """What differs between the MNIST jobs; see the module docstring."""

    # BatchElements' bounds: rows per batch.
    batch_bounds = (MIN_BATCH_ROWS, MAX_BATCH_ROWS)

    def to_pair(self, element) -> tuple[Any, Any]:
        """(raw ID, raw Image) of one input element; may raise (BadRecord says why)."""
        raise NotImplementedError

    def keyed(self, elements: list, ids: np.ndarray, pixels: np.ndarray):
        """What goes into RunInference for the valid `elements` of a batch: (key, pixels)."""
        raise NotImplementedError

    def ids(self, key) -> np.ndarray:
        raise NotImplementedError

    def original(self, key, pixels, row: int):
        """What a dead letter after parsing keeps of row `row` of the batch."""
        raise NotImplementedError

    def dead_letter(self, original, reason: str, stage: str):
        raise NotImplementedError

    def outputs(self, key, rows: np.ndarray, probabilities: np.ndarray, model: str | None):
        """Yields (predictions it stands for, output) or (None, (original, reason)) for the
        `rows` (a mask) of the batch that have `probabilities`."""
        raise NotImplementedError


class Rows(Form):
    """The batch job's rows (BigQuery rows, or CSV lines with `to_pair=split_csv_line`):
    PredictionBatch out, dead-letter rows {"Error", "Row"}."""

    def __init__(self, to_pair: Callable[[Any], tuple[Any, Any]] = row_pair):
        self.to_pair = to_pair

    def keyed(self, elements, ids, pixels):
        return ImageBatch(ids, pixels)

    def ids(self, key):
        return key

    def original(self, key, pixels, row):
        # The raw row is not carried through the model (it would cost a pickle per batch):
        # the row back from its parsed values says the same.
        return image_row(key[row], pixels[row])

    def dead_letter(self, original, reason, stage):
        return dead_letter_row(original, reason)

    def outputs(self, key, rows, probabilities, model):
        yield len(probabilities), PredictionBatch(key[rows], probabilities)


def prediction_attributes(image_id: int, model: str | None) -> dict:
    attributes = {"ID": str(image_id)}
    if model is not None:
        attributes[MODEL_ATTRIBUTE] = model
    return attributes


def prediction_message(row: dict, model: str | None = None) -> PubsubMessage:
    return PubsubMessage(
        data=to_json_line(row).encode("utf-8"), attributes=prediction_attributes(row["ID"], model)
    )


def answer_prediction(
    message: PubsubMessage, image_id: int, probabilities, model: str | None = None
) -> PubsubMessage:
    """The prediction message answering `message`; BadRecord if it cannot be published."""
    prediction = prediction_message(prediction_row(image_id, probabilities), model)
    problem = publish_problem(prediction)
    if problem:
        raise BadRecord(f"the prediction cannot be published: {problem}")
    return answering(message.message_id, prediction)


class Messages(Form):
    """The stream job's Pub/Sub messages: one prediction message per image (attributes ID and
    model), answering its message; dead letters are messages with their stage."""

    batch_bounds = (MAX_BATCH_MESSAGES, MAX_BATCH_MESSAGES)

    def to_pair(self, element):
        return message_pair(element)

    def keyed(self, elements, ids, pixels):
        return MessageBatch(tuple(elements), ids), pixels

    def ids(self, key):
        return key.ids

    def original(self, key, pixels, row):
        return key.messages[row]

    def dead_letter(self, original, reason, stage):
        return dead_letter(original, reason, stage=stage)

    def outputs(self, key, rows, probabilities, model):
        ids = key.ids[rows].tolist()
        lines = prediction_lines(key.ids[rows], probabilities).split("\n")
        messages = [m for m, ok in zip(key.messages, rows, strict=True) if ok]
        for message, image_id, line in zip(messages, ids, lines, strict=True):
            prediction = PubsubMessage(
                data=line.encode("utf-8"), attributes=prediction_attributes(image_id, model)
            )
            problem = publish_problem(prediction)
            if problem:  # never for the lab's IDs; the reason answer_prediction gives
                yield None, (message, f"the prediction cannot be published: {problem}")
            else:
                yield 1, answering(message.message_id, prediction)


ROWS = Rows()
MESSAGES = Messages()


class _ParseBatchFn(beam.DoFn):
    """A batch of elements -> (key, float32 [N, 784]) of the valid ones, and a dead letter
    (stage parse) for each of the others. The ID is checked per element; the pixels of the
    whole batch are parsed in one vectorised call."""

    def __init__(self, form: Form):
        self._form = form
        self._rows_read = Metrics.counter(METRICS_NAMESPACE, "rows_read")
        self._dead_letters = Metrics.counter(METRICS_NAMESPACE, "dead_letters")

    def process(self, elements):
        self._rows_read.inc(len(elements))
        kept, ids, images, dead = [], [], [], []
        for element in elements:
            try:
                raw_id, raw_image = self._form.to_pair(element)
                ids.append(parse_id(raw_id))  # the ID first: its reason wins, as in parse_row
            except Exception as error:  # noqa: BLE001 - one odd element must not fail the batch
                dead.append((element, reason_of(error)))
            else:
                kept.append(element)
                images.append(raw_image)
        pixels, failures = parse_image_batch(images) if images else (None, {})
        dead += [(kept[i], str(error)) for i, error in failures.items()]
        if dead:
            self._dead_letters.inc(len(dead))
            for element, reason in dead:
                yield beam.pvalue.TaggedOutput(
                    DEAD_LETTERS, self._form.dead_letter(element, reason, "parse")
                )
        if len(failures) < len(kept):
            good = np.ones(len(kept), dtype=bool)
            good[list(failures)] = False
            if failures:
                kept = [e for e, ok in zip(kept, good, strict=True) if ok]
            yield self._form.keyed(kept, np.array(ids, dtype=np.int64)[good], pixels[good])


class ParseImages(beam.PTransform):
    """Raw elements -> `.valid` (key, pixels) batches and `.dead_letters`.

    A batch is MIN_BATCH_ROWS to MAX_BATCH_ROWS rows, or for messages what one bundle brings,
    up to MAX_BATCH_MESSAGES: a stream never waits for more messages.
    """

    def __init__(self, form: Form = ROWS, label: str | None = None):
        super().__init__(label)
        self._form = form

    def expand(self, elements):
        smallest, largest = self._form.batch_bounds
        return (
            elements
            | "Batch" >> beam.BatchElements(min_batch_size=smallest, max_batch_size=largest)
            | "Validate"
            >> beam.ParDo(_ParseBatchFn(self._form)).with_outputs(DEAD_LETTERS, main=VALID)
        )


class _ToOutputsFn(beam.DoFn):
    """A scored batch -> the form's outputs; a row the model gave no finite probabilities for
    is a dead letter (stage format) with prediction_row's reason."""

    def __init__(self, form: Form):
        self._form = form
        self._predictions = Metrics.counter(METRICS_NAMESPACE, "predictions")
        self._dead_letters = Metrics.counter(METRICS_NAMESPACE, "dead_letters")

    def process(self, keyed_result):
        key, result = keyed_result
        rows, probabilities, reasons = checked_probabilities(self._form.ids(key), result.inference)
        for row, reason in reasons.items():
            self._dead_letters.inc()
            original = self._form.original(key, result.example, row)
            yield beam.pvalue.TaggedOutput(
                DEAD_LETTERS, self._form.dead_letter(original, reason, "format")
            )
        if not rows.any():
            return
        for count, output in self._form.outputs(key, rows, probabilities, result.model_id):
            if count is None:
                self._dead_letters.inc()
                yield beam.pvalue.TaggedOutput(
                    DEAD_LETTERS, self._form.dead_letter(*output, "format")
                )
            else:
                self._predictions.inc(count)
                yield output


class _FailedBatchFn(beam.DoFn):
    """A batch the model could not score: each of its rows becomes a dead letter."""

    def __init__(self, form: Form):
        self._form = form
        self._dead_letters = Metrics.counter(METRICS_NAMESPACE, "dead_letters")

    def process(self, failed):
        batches, error = failed
        reason = f"inference failed: {describe_failure(error)}"
        for key, pixels in batches:
            rows = len(self._form.ids(key))
            self._dead_letters.inc(rows)
            for row in range(rows):
                yield self._form.dead_letter(
                    self._form.original(key, pixels, row), reason, "inference"
                )


class PredictDigits(beam.PTransform):
    """(key, pixels) batches -> (outputs, dead letters).

    Each batch is one model call (MnistModelHandler does not batch batches); RunInference
    still shares one loaded model per worker process and reports its metrics. A batch that
    fails inference goes to the dead letters instead of failing (in a stream, endlessly
    retrying) the job, and so does a row whose probabilities are not finite.
    """

    def __init__(self, model_handler, form: Form = ROWS, label: str | None = None):
        super().__init__(label)
        self._model_handler = model_handler
        self._form = form

    def expand(self, keyed_images):
        results, failed = (
            keyed_images
            | "RunInference"
            >> RunInference(KeyedModelHandler(self._model_handler)).with_exception_handling()
        )
        outputs = results | "ToPredictions" >> beam.ParDo(_ToOutputsFn(self._form)).with_outputs(
            DEAD_LETTERS, main=VALID
        )
        failed_rows = failed.failed_inferences | "FailedBatches" >> beam.ParDo(
            _FailedBatchFn(self._form)
        )
        dead_letters = (outputs[DEAD_LETTERS], failed_rows) | "MergeFailures" >> beam.Flatten()
        return outputs[VALID], dead_letters


class ClassifyMessages(beam.PTransform):
    """Pub/Sub messages -> (prediction messages, dead-letter messages): ParseImages and
    PredictDigits in the MESSAGES form."""

    def __init__(self, model_handler):
        super().__init__()
        self._model_handler = model_handler

    def expand(self, messages):
        parsed = messages | "ParseImages" >> ParseImages(MESSAGES)
        predictions, failed = parsed.valid | "PredictDigits" >> PredictDigits(
            self._model_handler, MESSAGES
        )
        dead_letters = (parsed[DEAD_LETTERS], failed) | "MergeDeadLetters" >> beam.Flatten()
        return predictions, dead_letters
