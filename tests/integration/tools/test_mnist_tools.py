"""The MNIST producer and consumer tools: pacing and progress on their own, and the CLIs the
way a person runs them (subprocesses) against the Cloud SDK's Pub/Sub emulator."""

from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

from tests.support import pubsub_emulator as emulator
from tests.support.processes import REPO
from tools import mnist_consumer, mnist_producer, pubsub_cli

SAMPLE = REPO / "data" / "mnist_sample.csv"
PROJECT = emulator.PROJECT


def labels() -> dict[int, int]:
    with open(REPO / "data" / "mnist_sample_labels.csv") as handle:
        return {int(r["ID"]): int(r["Label"]) for r in csv.DictReader(handle)}


def sample_rows(limit: int | None = None) -> list[dict]:
    return list(mnist_producer.read_rows(SAMPLE, limit))


class FakeClock:
    """time.monotonic and time.sleep for pubsub_cli; a sleep may wake up late."""

    def __init__(self, late: float = 0.0):
        self.now = 1000.0
        self.late = late

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds + self.late


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(pubsub_cli, "time", fake)
    return fake


# --- Pacer ---------------------------------------------------------------------------------


def test_pacer_keeps_a_fixed_schedule_despite_slow_publishes_and_late_wakeups(clock):
    clock.late = 0.004
    pacer = pubsub_cli.Pacer(rate=10)
    start, sent = clock.now, []
    for _ in range(100):
        pacer.wait()
        sent.append(clock.now - start)
        clock.now += 0.03  # the publish call itself
    # Event n goes out at n/rate (give or take one late wake-up), not at n times
    # (interval + publish + lateness) as with a sleep after each publish: no drift.
    for n, at in enumerate(sent):
        assert n * 0.1 - 1e-9 <= at <= n * 0.1 + 0.004 + 1e-9, (n, at)


def test_pacer_makes_up_for_late_wakeups_longer_than_the_interval(clock):
    pacer = pubsub_cli.Pacer(rate=400)  # 2.5 ms apart
    start = clock.now
    for n in range(1000):
        clock.late = 0.006 if n % 10 == 0 else 0.0  # a busy machine: every 10th is 6 ms late
        pacer.wait()
        clock.now += 0.0001
    assert clock.now - start == pytest.approx(999 / 400, abs=0.01)


def test_pacer_does_not_burst_after_a_long_stall(clock):
    pacer = pubsub_cli.Pacer(rate=10)
    pacer.wait()
    clock.now += 5.0  # one publish hung for 5 s: 50 events behind
    sent = []
    for _ in range(20):
        pacer.wait()
        sent.append(clock.now)
        clock.now += 0.001
    # No burst of the 50 missed events: at most MAX_LAG's worth (here one interval) is made
    # up, and then they are 1/rate apart again.
    assert sum(1 for at in sent if at - sent[0] < 0.05) <= 3
    gaps = [b - a for a, b in zip(sent, sent[1:])]
    assert gaps[3:] == pytest.approx([0.1] * (len(gaps) - 3), abs=0.002)


def test_pacer_without_a_rate_never_sleeps(clock):
    pacer = pubsub_cli.Pacer(rate=0)
    for _ in range(100):
        pacer.wait()
    assert clock.now == 1000.0


# --- Progress ------------------------------------------------------------------------------


def screen(written: str) -> str:
    """What a terminal shows after `written`: each \\r returns to the line's start."""
    shown = ""
    for part in written.split("\r"):
        shown = part + shown[len(part) :]
    return shown


def test_progress_draws_a_bar_with_count_and_rate(clock, capsys):
    progress = pubsub_cli.Progress(10, "publishing", enabled=True)
    clock.now += 0.5
    progress.update(5)
    written = capsys.readouterr().err
    assert written == "\rpublishing [" + "#" * 15 + "." * 15 + "] 5/10 10.0/s"
    clock.now += 1.5
    progress.close(10)
    written = capsys.readouterr().err
    assert written.endswith("\n")
    assert screen(written).rstrip() == "publishing [" + "#" * 30 + "] 10/10 5.0/s"


def test_progress_leaves_no_trace_of_a_longer_line(clock, capsys):
    progress = pubsub_cli.Progress(None, "publishing", enabled=True)
    clock.now += 1.0
    progress.update(10)  # "... 10 10.0/s"
    clock.now += 1.0
    progress.update(11)  # "... 11 5.5/s": one character shorter
    assert screen(capsys.readouterr().err).rstrip() == "publishing 11 5.5/s"


def test_progress_is_throttled_and_silent_when_disabled(clock, capsys):
    progress = pubsub_cli.Progress(100, "publishing", enabled=True)
    clock.now += 1.0
    progress.update(1)
    clock.now += 0.05
    progress.update(2)  # within 0.2 s of the last: skipped
    assert capsys.readouterr().err.count("\r") == 1
    quiet = pubsub_cli.Progress(100, "publishing", enabled=False)
    clock.now += 1.0
    quiet.update(50)
    quiet.close(100)
    assert capsys.readouterr().err == ""


# --- the consumer's pieces -----------------------------------------------------------------


def prediction(image_id: int, digit: int, confidence: float) -> dict:
    rest = (1.0 - confidence) / 9
    return {"ID": image_id, **{f"P{d}": confidence if d == digit else rest for d in range(10)}}


def test_summarize_takes_the_most_probable_digit():
    assert mnist_consumer.summarize(prediction(7, 3, 0.8)) == (7, 3, pytest.approx(0.8))


# --- the CLIs on the emulator --------------------------------------------------------------


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def run_tool(module: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_producer_publishes_rows_as_json_at_the_rate(pubsub_emulator):
    topic, subscription = emulator.create_topic_with_subscription(unique("images"))
    count = 15
    done = run_tool(
        "tools.mnist_producer",
        "--project",
        PROJECT,
        "--topic",
        topic.rsplit("/")[-1],
        "--csv",
        str(SAMPLE),
        "--rate",
        "20",
        "--limit",
        str(count),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"published {count} messages to {topic}"
    messages = emulator.pull(subscription, count, timeout=30)
    assert sorted(json.loads(m.data)["ID"] for m in messages) == list(range(count))
    rows = {row["ID"]: row for row in sample_rows(count)}
    for message in messages:
        row = json.loads(message.data)
        assert row == rows[row["ID"]]  # {"ID": int, "Image": "..."} exactly as in the CSV
    # The service's publish times, 50 ms apart at 20/s. The first few may reach the service
    # together while the client connects (up to 0.25 s on a busy machine), so the check is
    # on the last ten: 9 intervals, 0.45 s.
    times = sorted(m.publish_time.timestamp() for m in messages)
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    assert 0.035 <= gaps[len(gaps) // 2] <= 0.1, gaps
    assert 0.4 <= times[-1] - times[-10] <= 2.0, times


def start_producer(topic: str, rate: float) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tools.mnist_producer",
            "--project",
            PROJECT,
            "--topic",
            topic,
            "--csv",
            str(SAMPLE),
            "--rate",
            str(rate),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_producer_stops_cleanly_and_every_counted_message_arrived(pubsub_emulator, stop):
    topic, subscription = emulator.create_topic_with_subscription(unique("images"))
    producer = start_producer(topic, rate=5)
    try:
        # Interrupt it mid-stream: once its first message is in, plus ~1.5 s (the start-up
        # alone, importing the client library, can take longer than that on a busy machine).
        arrived = emulator.pull(subscription, 1, timeout=60)
        assert arrived, "the producer published nothing"
        time.sleep(1.5)
        producer.send_signal(stop)
        out, err = producer.communicate(timeout=60)
    finally:
        if producer.poll() is None:
            producer.kill()
            producer.wait()
    assert producer.returncode == 0, err
    match = re.fullmatch(rf"published (\d+) messages to {re.escape(topic)}\n", out)
    assert match, out
    published = int(match.group(1))
    assert f"stopping: {published} messages handed to the client, flushing them" in err
    assert 2 <= published < 200  # it did stop early
    arrived += emulator.pull(subscription, 200, timeout=5)
    ids = sorted(json.loads(m.data)["ID"] for m in arrived)
    assert len(ids) == len(set(ids))
    # Every message it counted is there, whole; at most one more, if the signal came while
    # the client took a message and before the producer could count it.
    assert ids[:published] == list(range(published)), ids
    assert len(ids) - published in (0, 1), ids
    rows = {row["ID"]: row for row in sample_rows(len(ids))}
    assert all(json.loads(m.data) == rows[json.loads(m.data)["ID"]] for m in arrived)


@pytest.mark.slow
def test_consumer_prints_predictions_and_draws_a_readable_grid(pubsub_emulator, tmp_path):
    from PIL import Image

    topic, subscription = emulator.create_topic_with_subscription(unique("predict"))
    truth = labels()
    confidences = [0.999, 0.98, 0.62, 0.95, 0.45, 0.999, 0.91, 0.97, 0.88, 1.0, 0.93, 0.99]
    expected = {i: (truth[i], c) for i, c in enumerate(confidences)}
    messages = [
        (json.dumps(prediction(i, d, c)).encode(), {"ID": str(i)}) for i, (d, c) in expected.items()
    ]
    assert mnist_producer.publish(topic, messages, rate=0) == len(messages)

    grid = tmp_path / "out.png"
    done = run_tool(
        "tools.mnist_consumer",
        "--project",
        PROJECT,
        "--subscription",
        subscription.rsplit("/")[-1],
        "--limit",
        str(len(messages)),
        "--timeout",
        "60",
        "--csv",
        str(SAMPLE),
        "--grid",
        str(grid),
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["ID", "digit", "confidence"]
    printed = {}
    for line in lines[1:]:
        image_id, digit, confidence = line.split()
        printed[int(image_id)] = (int(digit), float(confidence))
    assert len(lines) - 1 == len(printed) == len(messages)
    assert printed == {i: (d, pytest.approx(c, abs=0.0005)) for i, (d, c) in expected.items()}
    assert f"received {len(messages)} predictions" in done.stderr
    assert f"wrote {grid}" in done.stderr

    with Image.open(grid) as picture:
        assert picture.format == "PNG"
        assert picture.size == mnist_consumer.grid_size(len(messages))
        assert picture.size[0] >= 8 * 28 * 3  # eight digits across, three times enlarged
        rgb = np.asarray(picture.convert("RGB")).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    dark = ((r < 80) & (g < 80) & (b < 80)).mean()
    red = ((r > 180) & (g < 80) & (b < 80)).sum()
    # Digits in ink on white (not a blank or black sheet), and the three predictions under
    # 90% confidence marked in red.
    assert 0.03 < dark < 0.5
    assert red > 100


def test_stream_template_help_lists_its_parameters():
    done = subprocess.run(
        [sys.executable, str(REPO / "templates" / "mnist_stream.py"), "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for name in ("--input", "--output", "--model", "--dead_letter"):
        assert name in done.stdout
    assert "99.2% on the MNIST test set" in done.stdout
