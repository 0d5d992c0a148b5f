"""The MNIST stream job against hostile input and failures, end to end on the Pub/Sub
emulator (issue 11 items 1, 4, 8, 12): poison never stops it, a dead-letter topic that
would loop is refused at launch, a topic that refuses publishing stops it in one line with
its input still on the subscription, and SIGTERM mid-backlog loses nothing."""

from __future__ import annotations

import json
import signal
import time
import uuid

import pytest

from pipelines.core.deadletters import original_message
from tests.support import pubsub_emulator as emulator
from tests.support.processes import REPO, RunningTemplate, run_template, template_env
from tools import mnist_producer

SAMPLE = REPO / "data" / "mnist_sample.csv"


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def good_messages(count: int, first_id: int = 0) -> list[bytes]:
    rows = list(mnist_producer.read_rows(SAMPLE, min(count, 200)))
    return [
        mnist_producer.encode({"ID": first_id + i, "Image": rows[i % len(rows)]["Image"]})
        for i in range(count)
    ]


def publish(topic: str, messages) -> None:
    assert mnist_producer.publish(topic, messages, rate=0) == len(messages)


def input_with_subscription(name: str) -> tuple[str, str]:
    return emulator.create_topic_with_subscription(unique(name))


def drain(subscription: str, quiet_seconds: float = 4) -> list:
    """Everything still on `subscription` (pulled and acknowledged)."""
    from pipelines.io.pubsub_clients import subscriber_client

    subscriber = subscriber_client()
    received = []
    last = time.monotonic()
    while time.monotonic() - last < quiet_seconds:
        response = subscriber.pull(
            subscription=subscription, max_messages=500, timeout=5, return_immediately=True
        )
        if response.received_messages:
            subscriber.acknowledge(
                subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages]
            )
            received += [m.message for m in response.received_messages]
            last = time.monotonic()
        else:
            time.sleep(0.2)
    return received


def start(pubsub_emulator, source: str, output: str, dead: str | None = None):
    args = [f"--input={source}", f"--output={output}"]
    if dead:
        args.append(f"--dead_letter={dead}")
    return RunningTemplate(
        "mnist_stream", args, env=template_env({"PUBSUB_EMULATOR_HOST": pubsub_emulator})
    )


def wait_exit(job: RunningTemplate, timeout: float) -> int:
    try:
        return job.process.wait(timeout=timeout)
    except Exception:
        job.stop()
        raise


@pytest.mark.slow
def test_poison_with_99_attributes_then_good_messages(pubsub_emulator):
    images, images_sub = input_with_subscription("images")
    predict, predict_sub = emulator.create_topic_with_subscription(unique("predict"))
    dead, dead_sub = emulator.create_topic_with_subscription(unique("dead"))
    poison = [
        (b"not json", {f"a{i}": "v" * 1000 for i in range(99)}),  # 99 attributes
        (b"\xff also not json", {"error": "the sender's own", "x": "y"}),  # our name
        (json.dumps({"ID": 5, "Image": "0.5"}).encode(), {"k": "é" * 512}),  # 1024-byte value
    ]
    publish(images, poison + [(m, {}) for m in good_messages(30)])
    job = start(pubsub_emulator, images_sub, predict, dead)
    try:
        outputs = emulator.pull(predict_sub, 30, timeout=80)
        dead_letters = emulator.pull(dead_sub, len(poison), timeout=20)
        job.assert_running()  # the poison did not stop it
    finally:
        log = job.stop()
    assert sorted(int(m.attributes["ID"]) for m in outputs) == list(range(30)), log[-3000:]
    recovered = {}
    for message in dead_letters:
        data, attributes, cut_from = original_message(message)
        assert cut_from is None and message.attributes["error_stage"] == "parse"
        recovered[data] = (attributes, message.attributes["error"])
    assert {data: attributes for data, (attributes, _) in recovered.items()} == dict(poison)
    assert "784 values" in recovered[poison[2][0]][1]
    assert emulator.pull(images_sub, 1, timeout=3) == []  # every input acknowledged


@pytest.mark.slow
@pytest.mark.parametrize("via_subscription", [False, True])
def test_dead_letter_equal_to_the_input_topic_is_refused(pubsub_emulator, via_subscription):
    images, images_sub = input_with_subscription("images")
    predict = emulator.create_topic(unique("predict"))
    started = time.monotonic()
    done = run_template(
        "mnist_stream",
        [
            f"--input={images_sub if via_subscription else images}",
            f"--output={predict}",
            f"--dead_letter={images}",
        ],
        check=False,
        timeout=120,
        env=template_env({"PUBSUB_EMULATOR_HOST": pubsub_emulator}),
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(
            f"mnist_stream: error: --dead_letter: must differ from the input's topic {images}"
        )
    )
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("template", ["mnist_stream", "pedestrian_depth"])
def test_dead_letter_equal_to_the_output_is_refused(template):
    """Results and dead letters on one topic would be mixed: refused before any lookup."""
    topic = "projects/lab-project/topics/out"
    done = run_template(
        template,
        [
            f"--input={topic.replace('out', 'frames')}",
            f"--output={topic}",
            f"--dead_letter={topic}",
        ],
        check=False,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.strip().splitlines() == [
        f"{template}: error: --dead_letter: must differ from --output: both name {topic}, "
        f"and results and dead letters would be mixed on it"
    ]


@pytest.mark.slow
def test_a_missing_output_topic_is_refused_at_launch(pubsub_emulator):
    _, images_sub = input_with_subscription("images")
    done = run_template(
        "mnist_stream",
        [f"--input={images_sub}", f"--output={emulator.topic(unique('never-made'))}"],
        check=False,
        timeout=120,
        env=template_env({"PUBSUB_EMULATOR_HOST": pubsub_emulator}),
    )
    assert done.returncode == 2
    assert "--output: topic" in done.stderr and "does not exist" in done.stderr


@pytest.mark.slow
def test_output_topic_deleted_while_running_stops_the_job_and_keeps_its_input(pubsub_emulator):
    from pipelines.io.pubsub_clients import publisher_client

    images, images_sub = input_with_subscription("images")
    predict, predict_sub = emulator.create_topic_with_subscription(unique("predict"))
    job = start(pubsub_emulator, images_sub, predict)
    try:
        publish(images, good_messages(20))
        before = emulator.pull(predict_sub, 20, timeout=80)
        assert len(before) == 20, job.output()[-3000:]
        publisher_client().delete_topic(topic=predict)
        publish(images, good_messages(50, first_id=1000))
        status = wait_exit(job, timeout=60)
    finally:
        log = job.stop()
    assert status == 1, log[-3000:]
    last = log.strip().splitlines()[-1]
    assert last.startswith(f"mnist_stream: error: cannot publish to {predict}: NotFound"), last
    assert "Traceback" not in log
    left = drain(images_sub)
    assert {json.loads(m.data)["ID"] for m in left} == set(range(1000, 1050))


@pytest.mark.slow
def test_sigterm_mid_backlog_loses_nothing(pubsub_emulator):
    images, images_sub = input_with_subscription("images")
    predict, predict_sub = emulator.create_topic_with_subscription(unique("predict"))
    published = 2000
    publish(images, good_messages(published))
    job = start(pubsub_emulator, images_sub, predict)
    try:
        first = emulator.pull(predict_sub, 1, timeout=80)
        assert first, job.output()[-3000:]
        job.process.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        status = wait_exit(job, timeout=40)
        stop_seconds = time.monotonic() - stopped
    finally:
        log = job.stop()
    assert status == 0, log[-3000:]
    predicted = first + drain(predict_sub)
    left = drain(images_sub)
    ids = {int(m.attributes["ID"]) for m in predicted} | {json.loads(m.data)["ID"] for m in left}
    print(
        f"SIGTERM: {len(predicted)} predicted, {len(left)} left on the subscription, "
        f"stopped in {stop_seconds:.1f} s"
    )
    assert ids == set(range(published))  # duplicates allowed, loss not
    assert stop_seconds < 30
