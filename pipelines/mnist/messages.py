"""MNIST on Pub/Sub messages: parse a batch of messages, predict it, answer each message with
its prediction or its dead letter (pipelines/core/deadletters.py). Used by mnist_stream."""

from __future__ import annotations

from typing import NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from pipelines.core.deadletters import (
    DEAD_LETTERS,
    answering,
    dead_letter,
    publish_problem,
    to_json_line,
)
from pipelines.mnist.contract import NUM_CLASSES
from pipelines.mnist.records import (
    BadRecord,
    parse_id,
    parse_image_batch,
    parse_json_message,
    prediction_lines,
    prediction_row,
)
from pipelines.mnist.transforms import METRICS_NAMESPACE, describe_failure, row_pair

# Messages per batch, at most: a batch is what one bundle brings (the local runner's bundles
# are its pulls, pipelines/local/subscriber.py), and never waits for more.
MAX_BATCH_MESSAGES = 1000


def prediction_message(row: dict) -> PubsubMessage:
    return PubsubMessage(data=to_json_line(row).encode("utf-8"), attributes={"ID": str(row["ID"])})


def answer_prediction(message: PubsubMessage, image_id: int, probabilities) -> PubsubMessage:
    """The prediction message answering `message`; BadRecord if it cannot be published."""
    prediction = prediction_message(prediction_row(image_id, probabilities))
    problem = publish_problem(prediction)
    if problem:
        raise BadRecord(f"the prediction cannot be published: {problem}")
    return answering(message.message_id, prediction)


def _reason(error: Exception) -> str:
    if isinstance(error, BadRecord):
        return str(error)
    return f"unexpected {type(error).__name__}: {error}"


class MessageBatch(NamedTuple):
    """The valid messages of one batch, in order, with their IDs: the key of their pixels
    through RunInference, so that every outcome answers its own input message."""

    messages: tuple
    ids: np.ndarray  # int64 [N]


class _ParseMessagesFn(beam.DoFn):
    """A batch of messages -> (MessageBatch, float32 [N, 784]) of the valid ones, and a dead
    letter (stage parse) for each of the others. The JSON is decoded and the ID checked per
    message; the pixels of the whole batch are parsed in one vectorised call."""

    def __init__(self):
        self._rows_read = Metrics.counter(METRICS_NAMESPACE, "rows_read")
        self._dead_letters = Metrics.counter(METRICS_NAMESPACE, "dead_letters")

    def process(self, messages):
        self._rows_read.inc(len(messages))
        kept, ids, images, dead = [], [], [], []
        for message in messages:
            try:
                raw_id, raw_image = row_pair(parse_json_message(message.data))
                ids.append(parse_id(raw_id))  # the ID first: its reason wins, as in parse_row
            except Exception as error:  # noqa: BLE001 - one odd message must not stop a stream
                dead.append((message, error))
            else:
                kept.append(message)
                images.append(raw_image)
        pixels, failures = parse_image_batch(images) if images else (None, {})
        dead += [(kept[i], error) for i, error in failures.items()]
        if dead:
            self._dead_letters.inc(len(dead))
            for message, error in dead:
                yield beam.pvalue.TaggedOutput(
                    DEAD_LETTERS, dead_letter(message, _reason(error), stage="parse")
                )
        if len(failures) < len(kept):
            good = np.ones(len(kept), dtype=bool)
            good[list(failures)] = False
            yield (
                MessageBatch(
                    tuple(m for m, ok in zip(kept, good, strict=True) if ok),
                    np.array(ids, dtype=np.int64)[good],
                ),
                pixels[good],
            )


class _ToPredictionMessagesFn(beam.DoFn):
    """A scored batch -> one prediction message per image (formatted in bulk), each
    answering its message; a row the model gave no finite probabilities for is a dead
    letter (stage format) with prediction_row's reason."""

    def __init__(self):
        self._predictions = Metrics.counter(METRICS_NAMESPACE, "predictions")
        self._dead_letters = Metrics.counter(METRICS_NAMESPACE, "dead_letters")

    def process(self, keyed_result):
        batch, result = keyed_result
        probabilities = np.asarray(result.inference)
        rows = len(batch.messages)
        if probabilities.shape == (rows, NUM_CLASSES) and np.issubdtype(
            probabilities.dtype, np.floating
        ):
            finite = np.all(np.isfinite(probabilities), axis=1)
        else:  # not one row of probabilities per image: each row's reason, the slow way
            finite = np.zeros(rows, dtype=bool)
        for row in np.flatnonzero(~finite):
            message = batch.messages[row]
            try:
                prediction = answer_prediction(message, batch.ids[row], probabilities[row])
            except Exception as error:  # noqa: BLE001 - one odd output must not stop a stream
                self._dead_letters.inc()
                yield beam.pvalue.TaggedOutput(
                    DEAD_LETTERS, dead_letter(message, _reason(error), stage="format")
                )
            else:
                self._predictions.inc()
                yield prediction
        if not finite.any():
            return
        ids = batch.ids[finite]
        lines = prediction_lines(ids, probabilities[finite]).split("\n")
        messages = [m for m, ok in zip(batch.messages, finite, strict=True) if ok]
        for message, image_id, line in zip(messages, ids.tolist(), lines, strict=True):
            prediction = PubsubMessage(data=line.encode("utf-8"), attributes={"ID": str(image_id)})
            problem = publish_problem(prediction)
            if problem:  # never for the lab's IDs; the reason answer_prediction gives
                self._dead_letters.inc()
                yield beam.pvalue.TaggedOutput(
                    DEAD_LETTERS,
                    dead_letter(
                        message, f"the prediction cannot be published: {problem}", stage="format"
                    ),
                )
                continue
            self._predictions.inc()
            yield answering(message.message_id, prediction)


class _FailedInferenceFn(beam.DoFn):
    """A batch the model could not score: each of its messages becomes a dead letter."""

    def __init__(self):
        self._dead_letters = Metrics.counter(METRICS_NAMESPACE, "dead_letters")

    def process(self, failed):
        batches, error = failed
        reason = f"inference failed: {describe_failure(error)}"
        for batch, _pixels in batches:
            self._dead_letters.inc(len(batch.messages))
            for message in batch.messages:
                yield dead_letter(message, reason, stage="inference")


class _ParseMessages(beam.PTransform):
    """Messages -> batches of (MessageBatch, pixels) and dead letters. A batch is what one
    bundle brings, up to MAX_BATCH_MESSAGES: it never waits for more messages
    (BatchElements flushes at the end of each bundle; the local runner's bundles are its
    pulls)."""

    def expand(self, messages):
        return (
            messages
            | "Batch"
            >> beam.BatchElements(
                min_batch_size=MAX_BATCH_MESSAGES, max_batch_size=MAX_BATCH_MESSAGES
            )
            | "Parse" >> beam.ParDo(_ParseMessagesFn()).with_outputs(DEAD_LETTERS, main="valid")
        )


class _PredictMessages(beam.PTransform):
    """(MessageBatch, pixels) -> (prediction messages, dead letters), both answering their
    message. A batch that fails inference goes to the dead letters instead of failing (in a
    stream, endlessly retrying) the job."""

    def __init__(self, model_handler):
        super().__init__()
        self._model_handler = model_handler

    def expand(self, keyed_images):
        results, failed = (
            keyed_images
            | "RunInference"
            >> RunInference(KeyedModelHandler(self._model_handler)).with_exception_handling()
        )
        formatted = results | "ToMessage" >> beam.ParDo(_ToPredictionMessagesFn()).with_outputs(
            DEAD_LETTERS, main="predictions"
        )
        inference_failed = failed.failed_inferences | "FailedInferences" >> beam.ParDo(
            _FailedInferenceFn()
        )
        dead_letters = (
            formatted[DEAD_LETTERS],
            inference_failed,
        ) | "MergeDeadLetters" >> beam.Flatten()
        return formatted.predictions, dead_letters


class ClassifyMessages(beam.PTransform):
    """Pub/Sub messages -> (prediction messages, dead-letter messages).

    Messages are batched once, then parsed, scored and formatted a batch at a time, so that
    Beam's and the parser's cost per message is paid per batch. Give it a model handler that
    does not batch again (min and max batch size 1): each batch is then one model call."""

    def __init__(self, model_handler):
        super().__init__()
        self._model_handler = model_handler

    def expand(self, messages):
        parsed = messages | "ParseImages" >> _ParseMessages()
        predictions, failed = parsed.valid | "PredictDigits" >> _PredictMessages(
            self._model_handler
        )
        dead_letters = (parsed[DEAD_LETTERS], failed) | "MergeDeadLetters" >> beam.Flatten()
        return predictions, dead_letters
