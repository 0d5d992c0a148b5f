"""The MNIST stream job: its composite under TestStream, and the template end to end on the
Cloud SDK's Pub/Sub emulator with the producer tool."""

from __future__ import annotations

import csv
import json
import os
import shutil
from types import SimpleNamespace

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.io.gcp.pubsub import PubsubMessage, WriteToPubSub
from apache_beam.ml.inference.base import ModelHandler, PredictionResult
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to

from local_runtime.overrides import LOCAL_OVERRIDES, pipeline_answers_every_message
from pipelines.core.deadletters import original_message
from pipelines.io import pubsub
from pipelines.mnist.handler import MnistModelHandler
from pipelines.mnist.location import resolve_model
from pipelines.mnist.transforms import ClassifyMessages
from tests.support import pubsub_emulator as emulator
from tests.support import replay_marks
from tests.support.processes import REPO, RunningTemplate, template_env
from tools import mnist_producer

SAMPLE = REPO / "data" / "mnist_sample.csv"


def labels() -> dict[int, int]:
    with open(REPO / "data" / "mnist_sample_labels.csv") as handle:
        return {int(r["ID"]): int(r["Label"]) for r in csv.DictReader(handle)}


def sample_messages(limit: int) -> list[bytes]:
    return [mnist_producer.encode(row) for row in mnist_producer.read_rows(SAMPLE, limit)]


MALFORMED = {
    b"\xff\xfe not utf-8": "message is not UTF-8",
    b"ID=7;Image=0.0": "message is not JSON",
    b'[7, "0.0"]': "JSON object",
    json.dumps({"ID": 9001, "Image": "0.5,0.5"}).encode(): "784 values, got 2",
    json.dumps({"ID": "x", "Image": ",".join(["0"] * 784)}).encode(): "ID must be an integer",
    json.dumps({"ID": 9002, "Image": ",".join(["2"] * 784)}).encode(): "outside [0, 1]",
}


def argmax(message_data: bytes) -> tuple[int, int]:
    row = json.loads(message_data)
    return row["ID"], max(range(10), key=lambda d: row[f"P{d}"])


def test_classify_messages_under_test_stream():
    good = sample_messages(6)
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    stream = (
        TestStream()
        .add_elements([PubsubMessage(m, {"source": "a"}) for m in good[:3]])
        .add_elements([PubsubMessage(m, {"source": "bad"}) for m in MALFORMED])
        .advance_watermark_to(10)
        .add_elements([PubsubMessage(m, {}) for m in good[3:]])
        .advance_watermark_to_infinity()
    )
    truth = labels()
    with TestPipeline(options=options) as p:
        outcomes = p | stream | ClassifyMessages(MnistModelHandler(resolve_model(None)))
        # What is published of each outcome: its message.
        predictions, dead = (
            o | f"Messages{i}" >> beam.Map(pubsub.message_of) for i, o in enumerate(outcomes)
        )
        assert_that(
            predictions | beam.Map(lambda m: (m.attributes["ID"], argmax(m.data))),
            equal_to([(str(i), (i, truth[i])) for i in range(6)]),
            label="Predictions",
        )
        assert_that(
            dead
            | beam.Map(lambda m: (m.data, m.attributes["source"], m.attributes["error_stage"])),
            equal_to([(m, "bad", "parse") for m in MALFORMED]),
            label="DeadLetters",
        )
        assert_that(
            dead | beam.Map(lambda m: MALFORMED[m.data] in m.attributes["error"]),
            equal_to([True] * len(MALFORMED)),
            label="Reasons",
        )


@pytest.mark.slow
def test_template_on_the_pubsub_emulator(pubsub_emulator):
    images = emulator.create_topic("mnist_image")
    predict, predict_sub = emulator.create_topic_with_subscription("mnist_predict")
    dead, dead_sub = emulator.create_topic_with_subscription("mnist_dead_letter")
    job = RunningTemplate(
        "mnist_stream",
        [f"--input={images}", f"--output={predict}", f"--dead_letter={dead}"],
        env=template_env({"PUBSUB_EMULATOR_HOST": pubsub_emulator}),
    )
    try:
        # The job reads the topic through its own subscription: publish once it exists.
        emulator.wait_for_subscriber(images, timeout=180)
        count = 40
        good = sample_messages(count)
        published = mnist_producer.publish(images, good + list(MALFORMED), rate=0)
        assert published == count + len(MALFORMED)
        outputs = emulator.pull(predict_sub, count, timeout=180)
        dead_letters = emulator.pull(dead_sub, len(MALFORMED), timeout=60)
        job.assert_running()  # bad messages did not crash it
    finally:
        log = job.stop()
    assert job.process.returncode == 0, log[-3000:]  # SIGTERM is a clean stop
    from pipelines.io.pubsub_clients import publisher_client

    assert list(publisher_client().list_topic_subscriptions(topic=images)) == [], (
        "the job's own subscription to its input topic outlived it"
    )
    truth = labels()
    ids = [int(m.attributes["ID"]) for m in outputs]
    assert sorted(ids) == list(range(count)), log[-3000:]  # each valid ID exactly once
    results = dict(argmax(m.data) for m in outputs)
    assert sum(results[i] == truth[i] for i in range(count)) >= count - 1
    assert all(set(json.loads(m.data)) == {"ID", *(f"P{d}" for d in range(10))} for m in outputs)
    assert {m.attributes["model"] for m in outputs} == {resolve_model(None)}  # the baked one
    assert {m.data for m in dead_letters} == set(MALFORMED)  # published unchanged
    for message in dead_letters:
        assert MALFORMED[message.data] in message.attributes["error"]
        assert message.attributes["error_stage"] == "parse"


class _FailingModel(ModelHandler):
    """A model whose every batch fails, or (nan=True) returns NaN probabilities."""

    def __init__(self, nan: bool = False):
        super().__init__()
        self._nan = nan

    def load_model(self):
        return None

    def run_inference(self, batch, model, inference_args=None):
        if not self._nan:
            raise RuntimeError("the model is broken")
        # One row of probabilities per image, as MnistModelHandler gives for an example
        # that is one image [784] or a batch of them [N, 784].
        return [
            PredictionResult(x, np.full(np.shape(x)[:-1] + (10,), np.nan, np.float32))
            for x in batch
        ]


@pytest.mark.parametrize(
    "nan, stage, reason",
    [
        (False, "inference", "RuntimeError: the model is broken"),
        (True, "format", "not 10 finite probabilities"),
    ],
)
def test_later_dead_letters_keep_the_original_message(nan, stage, reason):
    good = sample_messages(3)
    inputs = [
        PubsubMessage(m, {"source": "cam", "error": "sender's own"}, message_id=str(i))
        for i, m in enumerate(good)
    ]
    with TestPipeline() as p:
        predictions, dead = p | beam.Create(inputs) | ClassifyMessages(_FailingModel(nan))
        assert_that(predictions, equal_to([]), label="NoPredictions")
        assert_that(
            dead
            | beam.Map(
                lambda outcome: (
                    outcome.source_id,
                    original_message(outcome.message)[:2],
                    outcome.message.attributes["error_stage"],
                    reason in outcome.message.attributes["error"],
                )
            ),
            equal_to(
                [
                    (str(i), (good[i], {"source": "cam", "error": "sender's own"}), stage, True)
                    for i in range(3)
                ]
            ),
            label="DeadLetters",
        )


def test_every_outcome_of_the_job_acknowledges_its_input():
    from pipelines.jobs import mnist_stream as stream

    args = SimpleNamespace(
        input="projects/lab-project/subscriptions/s",
        model=None,
        model_pattern=None,
        model_check_seconds=60,
        output="projects/lab-project/topics/out",
        dead_letter=None,
    )
    pipeline = beam.Pipeline(options=PipelineOptions(streaming=True))
    stream.build_pipeline(pipeline, args)
    assert not pipeline_answers_every_message(pipeline)  # Beam's WriteToPubSub, as on Dataflow
    pipeline.replace_all(list(LOCAL_OVERRIDES))
    assert pipeline_answers_every_message(pipeline)
    pipeline = beam.Pipeline(options=PipelineOptions(streaming=True))
    (
        pipeline
        | beam.Create([PubsubMessage(b"x", {})])
        | WriteToPubSub("projects/lab-project/topics/t", with_attributes=True)
    )
    assert not pipeline_answers_every_message(pipeline)


# --- the batched path gives what parsing and formatting message by message gave ---------


def _reference_outcomes(messages, model) -> dict:
    """message_id -> the message the per-message path (before batching) answered it with: the
    prediction (answer_prediction of the model's scores for that one image, naming the
    model's folder) or the dead
    letter (stage parse) with parse_row's reason."""
    from pipelines.core.deadletters import dead_letter
    from pipelines.mnist.records import parse_json_message
    from pipelines.mnist.transforms import reason_of
    from tests.support.mnist_reference import parse_row

    outcomes = {}
    for message in messages:
        try:
            image_id, pixels = parse_row(parse_json_message(message.data))
        except Exception as error:  # noqa: BLE001 - what the old step caught
            outcome = dead_letter(message, reason_of(error), stage="parse")
        else:
            scores = model.predict(pixels[None, :])[0]
            outcome = answer_prediction(message, image_id, scores, model.folder)
        assert outcome.source_id == message.message_id
        outcomes[message.message_id] = outcome.message
    return outcomes


def answer_prediction(message, image_id: int, probabilities, model: str | None):
    """The prediction message answering `message`, formatted one row at a time."""
    from pipelines.core.deadletters import answering, publish_problem, to_json_line
    from pipelines.mnist.records import BadRecord, prediction_row
    from pipelines.mnist.transforms import prediction_attributes

    row = prediction_row(image_id, probabilities)
    prediction = PubsubMessage(
        data=to_json_line(row).encode("utf-8"), attributes=prediction_attributes(row["ID"], model)
    )
    problem = publish_problem(prediction)
    if problem:
        raise BadRecord(f"the prediction cannot be published: {problem}")
    return answering(message.message_id, prediction)


def _random_messages(count: int, seed: int = 13) -> list[bytes]:
    """Valid and invalid messages in the shapes the parsers treat differently."""
    rng = np.random.default_rng(seed)
    good = [row["Image"] for row in mnist_producer.read_rows(SAMPLE, 50)]
    out = []
    for i in range(count):
        kind = i % 12
        pixels = rng.random(784)
        image = ",".join(f"{p:.6f}" for p in pixels)
        image_id = 10_000 + i
        if kind == 1:
            image = ",".join(f"{p:.3e}" for p in pixels)  # exponents: not plain decimals
        elif kind == 2:
            image = " " + image.replace(",", ", ")  # spaces
        elif kind == 3:
            image = image.replace("0.", "nan", 1) if "0." in image else "nan" + image[1:]
        elif kind == 4:
            image = image + ",0.5"  # 785 values
        elif kind == 5:
            image = "-0.25," + image.split(",", 1)[1]  # outside [0, 1]
        elif kind == 6:
            image = image.replace(",", ",x", 1)  # not a number
        elif kind == 7:
            image_id = str(image_id)  # an ID as text
        elif kind == 8:
            image_id = [True, 2**70, 1.5, None, ""][i % 5]  # bad IDs
        elif kind == 9:
            image = good[i % len(good)]  # the lab's own rows
        elif kind == 10:
            image = 7  # not a string
        elif kind == 11:
            image = "é," + image.split(",", 1)[1]  # not ASCII
        out.append(json.dumps({"ID": image_id, "Image": image}).encode())
    return out


def test_batched_stream_gives_the_per_message_outcomes():
    """Predictions (same ID and answered message, probabilities within float32 rounding)
    and dead letters (the same message with the same reason and stage) equal what parsing,
    scoring and formatting one message at a time gives, on the bundled sample, the
    malformed messages and random ones."""
    from pipelines.mnist.transforms import MAX_BATCH_MESSAGES

    datas = sample_messages(200) + list(MALFORMED) + _random_messages(240)
    messages = [PubsubMessage(d, {"n": str(i)}, message_id=f"m{i}") for i, d in enumerate(datas)]
    handler = MnistModelHandler(resolve_model(None), min_batch_size=1, max_batch_size=1)
    expected = _reference_outcomes(messages, handler.load_model())
    assert 150 < sum("error" not in m.attributes for m in expected.values()) < len(datas) - 100
    assert len(messages) < MAX_BATCH_MESSAGES * 2  # batches of various sizes below

    def check(outputs):
        outputs = list(outputs)
        got = {outcome.source_id: outcome.message for outcome in outputs}
        assert len(got) == len(outputs) == len(expected)  # one outcome per message
        for message_id, want in expected.items():
            have = got[message_id]
            if "error" in want.attributes:
                assert (have.data, have.attributes) == (want.data, want.attributes), message_id
                continue
            assert have.attributes == want.attributes, message_id
            have_row, want_row = json.loads(have.data), json.loads(want.data)
            assert list(have_row) == list(want_row) and have_row["ID"] == want_row["ID"]
            np.testing.assert_allclose(
                [have_row[f"P{d}"] for d in range(10)],
                [want_row[f"P{d}"] for d in range(10)],
                rtol=1e-5,
                atol=2e-7,
            )

    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    stream = TestStream()
    for start, size in ((0, 1), (1, 7), (8, 150), (158, 300)):  # bundles of various sizes
        stream = stream.add_elements(messages[start : start + size])
    stream = stream.add_elements(messages[458:]).advance_watermark_to_infinity()
    with TestPipeline(options=options) as p:
        predictions, dead = p | stream | ClassifyMessages(handler)
        assert_that((predictions, dead) | beam.Flatten(), check)


# --- model watch: a newer model replaces the running one, an invalid one is ignored ---------


def _model_copy(models, name: str, updated: float, without: tuple[str, ...] = ()):
    """A copy of the baked model in models/NAME (but its files or folders `without`), its
    saved_model.pb (the matched file) updated at `updated`. Copied aside and renamed into
    place, as an upload that puts the matched file last looks to the pattern."""
    staging = models.parent / f"staging-{name}"
    shutil.copytree(REPO / "models" / "mnist", staging, ignore=lambda _, names: without)
    os.utime(staging / "saved_model.pb", (updated, updated))
    os.rename(staging, models / name)
    return str(models / name)


@pytest.mark.slow
def test_model_watch_switches_models_without_losing_a_message(pubsub_emulator, tmp_path):
    import time

    models = tmp_path / "models"
    models.mkdir()
    now = time.time()
    first = _model_copy(models, "v1", now - 100)
    images = emulator.create_topic("mnist_image_watch")
    predict, predict_sub = emulator.create_topic_with_subscription("mnist_predict_watch")
    check_seconds = 2
    job = RunningTemplate(
        "mnist_stream",
        [
            f"--input={images}",
            f"--output={predict}",
            f"--model_pattern={models}/*/saved_model.pb",
            f"--model_check_seconds={check_seconds}",
        ],
        env=template_env({"PUBSUB_EMULATOR_HOST": pubsub_emulator}),
    )
    rows = list(mnist_producer.read_rows(SAMPLE, 200))
    next_id = 0
    outputs = []

    def publish(count: int) -> None:
        nonlocal next_id
        batch = [
            mnist_producer.encode(dict(rows[i % 200], ID=i))
            for i in range(next_id, next_id + count)
        ]
        assert mnist_producer.publish(images, batch, rate=0) == count
        next_id += count

    def receive(count: int, timeout: float = 120) -> list:
        got = emulator.pull(predict_sub, count, timeout=timeout)
        outputs.extend(got)
        return got

    try:
        emulator.wait_for_subscriber(images, timeout=180)
        publish(30)
        assert {m.attributes["model"] for m in receive(30)} == {first}

        # A newer folder that is not a model: logged with its reason, ignored.
        bad = models / "v3-broken"
        bad.mkdir()
        (bad / "saved_model.pb").write_bytes(b"not a protobuf at all")
        os.utime(bad / "saved_model.pb", (now + 50, now + 50))
        time.sleep(3 * check_seconds)
        publish(30)
        assert {m.attributes["model"] for m in receive(30)} == {first}
        assert f"MNIST model {bad} ignored" in job.output(), job.output()[-3000:]

        # A newer model uploaded saved_model.pb first: refused while its variables/ are
        # missing, looked at again once they are there (the watch used to remember the
        # refusal for good).
        second = _model_copy(models, "v2", now + 10, without=("variables",))
        waited = time.monotonic()
        while f"MNIST model {second} ignored" not in job.output():
            assert time.monotonic() - waited < 60, job.output()[-3000:]
            time.sleep(0.5)
        assert "the SavedModel has no variables/variables.index" in job.output()
        assert "looked at again when any of its files changes" in job.output()
        # Its variables/ land: the outputs switch to it within the check interval plus its
        # load, and no message is lost or doubled on the way.
        shutil.copytree(REPO / "models" / "mnist" / "variables", models / "v2" / "variables")
        placed = time.monotonic()
        switched_after = None
        while switched_after is None and time.monotonic() - placed < 90:
            publish(5)
            if any(m.attributes["model"] == second for m in receive(5, timeout=30)):
                switched_after = time.monotonic() - placed
        assert switched_after is not None, job.output()[-3000:]
        publish(30)
        assert {m.attributes["model"] for m in receive(30)} == {second}
        receive(next_id - len(outputs), timeout=60)  # anything still on its way
        job.assert_running()
    finally:
        log = job.stop()
    assert job.process.returncode == 0, log[-3000:]
    ids = sorted(int(m.attributes["ID"]) for m in outputs)
    assert ids == list(range(next_id)), log[-3000:]  # every message exactly once
    assert {m.attributes["model"] for m in outputs} == {first, second}
    assert f"MNIST model switched from {first} to {second}" in log
    # Within the check interval plus the load (and a pull's round trip on a shared machine).
    assert switched_after < check_seconds + 30, switched_after
    print(f"outputs named the new model {switched_after:.1f} s after it was placed")


# --- a replayed message that fails again keeps its `replayed` mark ------------------------


@pytest.mark.parametrize("nan, stage", [(False, "inference"), (True, "format")])
def test_a_replayed_message_that_fails_again_carries_its_mark_into_the_dead_letter(nan, stage):
    marked = replay_marks.marked({"ID": "0"})
    crowded = replay_marks.crowded()
    inputs = {
        "parse": PubsubMessage(b"ID=7;Image=0.0", marked, message_id="parse"),
        stage: PubsubMessage(sample_messages(1)[0], marked, message_id=stage),
        "envelope": PubsubMessage(sample_messages(1)[0], crowded, message_id="envelope"),
    }
    with TestPipeline() as p:
        _, dead = p | beam.Create(list(inputs.values())) | ClassifyMessages(_FailingModel(nan))
        assert_that(
            dead | beam.Map(replay_marks.replay_view(inputs)),
            equal_to(
                [
                    ("parse", "parse", replay_marks.FAILED_AGAIN, True),
                    (stage, stage, replay_marks.FAILED_AGAIN, True),
                    ("envelope", stage, replay_marks.FAILED_AGAIN, True),
                ]
            ),
        )
