"""MNIST stream: classify images arriving on Pub/Sub and publish the predictions, until stopped.

    input        projects/P/topics/mnist_image (or a subscription), each message UTF-8 JSON
                 {"ID": 7, "Image": "0.0,0.0,..."}
    output       projects/P/topics/mnist_predict: {"ID": 7, "P0": ..., "P9": ...}, attributes
                 ID and model (the folder of the model that made it)
    model or model_pattern  the model folder (default: the baked one), or a file pattern
                 whose newest valid model is used and replaced, while the job runs, by a
                 newer valid one within model_check_seconds (pipelines/mnist/handler.py)
    dead_letter  optional topic: a bad message is published there as pipelines/io/pubsub.py
                 describes (the original, with `error` and `error_stage`: parse, inference or
                 format). Without it, bad messages are counted (mnist/dead_letters) and logged.
                 Either way they never stop the job or hold up the good ones.

    messages ──ParseImages──┬─ Failsafe(Rows(IDs, messages), pixels) ──PredictDigits──┬─ predictions
     (Batch, Validate)      └─ dead letters                    dead letters ─┘ (inference, format)

Messages are batched once (what a bundle brings, never waiting for more), then parsed,
scored and formatted a batch at a time by the MNIST composites, answering each message
(pipelines/mnist/transforms.py), so Beam's cost per element and the parser's are paid
per batch; the outputs are the same as parsing and formatting message by message. The
messages are carried, whole, through RunInference in the batch's `rows`, so that every
outcome (a prediction or a dead letter, at any stage) answers its own input message: a dead
letter keeps the message's original data and attributes, and the local runner acknowledges
the message once that outcome is published (local_runtime/).
"""

from __future__ import annotations

from pipelines.core.params import Template
from pipelines.io import pubsub
from pipelines.mnist import parameters
from pipelines.mnist.handler import MnistModelHandler
from pipelines.mnist.location import check_model_source, resolve_model
from pipelines.mnist.transforms import ClassifyMessages

TEMPLATE = Template(
    name="mnist_stream",
    description=(
        "Classifies the lab's handwritten digits as they arrive on Pub/Sub, with the "
        "TensorFlow model baked into the image, and publishes P0..P9 per ID."
    ),
    parameters=(
        *parameters.STREAM_INPUTS,
        parameters.STREAM_OUTPUT,
        parameters.MODEL,
        parameters.STREAM_DEAD_LETTER,
        parameters.MODEL_PATTERN_WATCHED,
        parameters.MODEL_CHECK_SECONDS,
    ),
    streaming=True,
)


def preflight(args, options, *, on_dataflow: bool) -> None:
    input_name = pubsub.check_stream_parameters(args)
    check_model_source(args, on_dataflow=on_dataflow)
    pubsub.look_up_stream_topics(args, input_name, on_dataflow=on_dataflow)


def build_pipeline(pipeline, args):
    handler = MnistModelHandler(
        None if args.model_pattern else resolve_model(args.model),
        model_pattern=args.model_pattern,
        model_check_seconds=args.model_check_seconds,
    )
    return pubsub.build_stream_pipeline(pipeline, args, "Classify", ClassifyMessages(handler))
