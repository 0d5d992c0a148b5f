"""A local stream run where Dataflow would not fail, and failing as Dataflow would not hide:
end to end on the Pub/Sub emulator (issue 19). Messages bigger than gRPC's default 4 MiB
receive limit are processed or dead-lettered; Pub/Sub lost mid-run (emulator killed,
subscription deleted) stops the job within a minute with one true line and exit 1."""

from __future__ import annotations

import os
import time

import pytest

from pipelines.core.deadletters import original_message
from pipelines.io.pubsub_clients import subscriber_client
from tests.integration.stream.test_stream_failures import (
    good_messages,
    input_with_subscription,
    publish,
    start,
    unique,
    wait_exit,
)
from tests.support import pubsub_emulator as emulator
from tests.support.markers import missing
from tests.support.processes import RunningTemplate, template_env

pytestmark = pytest.mark.slow


def assert_dead_letters(dead_letters, expected: dict[bytes, int]) -> None:
    seen = {}
    for message in dead_letters:
        data, _, cut_from = original_message(message)
        assert cut_from is None and message.attributes["error_stage"] == "parse"
        seen[data] = seen.get(data, 0) + 1
    assert seen == expected


@pytest.mark.parametrize(
    "frames",
    [
        pytest.param([b"\x89PNG" + os.urandom(6_000_000)], id="one-6MB-message"),
        pytest.param([os.urandom(1_000_000) for _ in range(5)], id="five-1MB-frames-in-a-pull"),
    ],
)
def test_messages_over_grpcs_default_limit_are_dead_lettered_and_the_job_goes_on(
    pubsub_emulator, frames
):
    images, images_sub = input_with_subscription("images")
    predict, predict_sub = emulator.create_topic_with_subscription(unique("predict"))
    dead, dead_sub = emulator.create_topic_with_subscription(unique("dead"))
    # Published before the job starts, so that one pull brings them all (over 4 MiB).
    publish(images, frames + good_messages(20))
    job = start(pubsub_emulator, images_sub, predict, dead)
    try:
        outputs = emulator.pull(predict_sub, 20, timeout=90)
        # through a client that takes messages over 4 MiB
        dead_letters = emulator.pull(
            dead_sub, len(frames), timeout=30, subscriber=subscriber_client()
        )
        job.assert_running()
        publish(images, good_messages(5, first_id=100))  # still working
        outputs += emulator.pull(predict_sub, 5, timeout=30)
        job.assert_running()
    finally:
        log = job.stop()
    assert sorted(int(m.attributes["ID"]) for m in outputs) == [*range(20), *range(100, 105)], log[
        -3000:
    ]
    assert_dead_letters(dead_letters, dict.fromkeys(frames, 1))
    assert "ResourceExhausted" not in log
    assert emulator.pull(images_sub, 1, timeout=3) == []  # every input acknowledged


def assert_one_true_last_line(log: str, cause: str) -> str:
    last = log.strip().splitlines()[-1]
    assert last.startswith(f"mnist_stream: error: {cause}"), log[-3000:]
    assert "cleanly" not in log and "Traceback" not in log, log[-3000:]
    errors = [line for line in log.splitlines() if line.startswith("mnist_stream: error:")]
    assert errors == [last]
    return last


def test_subscription_deleted_mid_run_stops_the_job_in_one_line(pubsub_emulator):
    images, images_sub = input_with_subscription("images")
    predict, predict_sub = emulator.create_topic_with_subscription(unique("predict"))
    job = start(pubsub_emulator, images_sub, predict)
    try:
        publish(images, good_messages(10))
        assert len(emulator.pull(predict_sub, 10, timeout=90)) == 10, job.output()[-3000:]
        subscriber_client().delete_subscription(subscription=images_sub)
        deleted = time.monotonic()
        publish(images, good_messages(10, first_id=100))
        status = wait_exit(job, timeout=60)
        seconds = time.monotonic() - deleted
    finally:
        log = job.stop()
    assert status == 1, log[-3000:]
    last = assert_one_true_last_line(log, f"cannot pull from {images_sub}: NotFound")
    assert "0 unfinished input messages handed back" in last or "could not be handed back" in last
    assert seconds < 60


def test_emulator_killed_mid_run_stops_the_job_in_one_line(tmp_path):
    """On an emulator of its own, so that the other tests keep theirs."""
    previous = os.environ.get("PUBSUB_EMULATOR_HOST")
    try:
        with emulator.running_pubsub_emulator(tmp_path / "emulator.log") as host:
            images, images_sub = input_with_subscription("images")
            predict, predict_sub = emulator.create_topic_with_subscription(unique("predict"))
            publish(images, good_messages(10))
            job = RunningTemplate(
                "mnist_stream",
                [f"--input={images_sub}", f"--output={predict}"],
                env=template_env({"PUBSUB_EMULATOR_HOST": host}),
            )
            try:
                got = emulator.pull(predict_sub, 10, timeout=90)
                assert len(got) == 10, job.output()[-3000:]
            except BaseException:
                job.stop()
                raise
        killed = time.monotonic()  # leaving the block killed the emulator
        try:
            status = wait_exit(job, timeout=70)
            seconds = time.monotonic() - killed
        finally:
            log = job.stop()
    except FileNotFoundError as absent:
        missing(str(absent))
    finally:
        if previous is not None:
            os.environ["PUBSUB_EMULATOR_HOST"] = previous
    assert status == 1, log[-3000:]
    last = assert_one_true_last_line(log, f"lost Pub/Sub: cannot pull from {images_sub}")
    assert "ServiceUnavailable" in last
    assert seconds < 60, seconds
    print(f"emulator killed: the job stopped in {seconds:.1f} s: {last}")
