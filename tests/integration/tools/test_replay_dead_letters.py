"""tools.replay_dead_letters against the Cloud SDK's Pub/Sub emulator, run the way a person
runs it (a subprocess): dead letters of both forms, made by the jobs' own dead_letter_message,
go back to the input topic exactly and once; what cannot be replayed stays, with its reason.
And mnist_batch's dead-letter files back into a CSV the job reads."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import threading
import uuid

import pytest

from pipelines.core.deadletters import dead_letter_message
from pipelines.io.pubsub_clients import publisher_client, subscriber_client
from tests.support import pubsub_emulator as emulator
from tests.support.processes import (
    REPO,
    RunningTemplate,
    read_shards,
    run_template,
    template_env,
)
from tools.replay_dead_letters import Replay, ReplayFailed


def clients():
    """The factory's clients (a 10 MB dead letter is over gRPC's default 4 MiB): the
    generated publisher (one request per call) and the subscriber."""
    return publisher_client().api, subscriber_client()


def publish(publisher, topic: str, messages) -> list[str]:
    from google.pubsub_v1.types import PubsubMessage

    ids = []
    for message in messages:  # one request each: a 10 MB dead letter fills a request alone
        ids += publisher.publish(
            topic=topic,
            messages=[PubsubMessage(data=message.data, attributes=message.attributes)],
        ).message_ids
    return ids


def drain(subscriber, subscription: str, *, seconds: float = 3.0) -> list:
    """Every message the subscription delivers until it has been quiet for `seconds`; acked."""
    from google.api_core import exceptions

    received, quiet = [], 0.0
    while quiet < seconds:
        try:
            response = subscriber.pull(
                request={"subscription": subscription, "max_messages": 100}, timeout=1.0
            )
            page = list(response.received_messages)
        except exceptions.DeadlineExceeded:
            page = []
        if not page:
            quiet += 1.0
            continue
        quiet = 0.0
        subscriber.acknowledge(
            request={"subscription": subscription, "ack_ids": [m.ack_id for m in page]}
        )
        received += [m.message for m in page]
    return received


def topic_and_subscription(subscriber, name: str) -> tuple[str, str]:
    name = f"{name}-{uuid.uuid4().hex[:8]}"
    topic, subscription = emulator.create_topic_with_subscription(name)
    return topic, subscription


def replay(*args: str) -> subprocess.CompletedProcess:
    """The tool on a subscription: it stops after 2 quiet seconds."""
    return run_tool("--wait", "2", *args)


def run_tool(*args: str, timeout: float = 300, cwd=REPO) -> subprocess.CompletedProcess:
    # Nothing lifts gRPC's 4 MiB default for the tool: its own clients (the factory's) take
    # a 10 MB dead letter.
    env = template_env()
    return subprocess.run(
        [sys.executable, "-m", "tools.replay_dead_letters", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def as_pair(message) -> tuple[bytes, dict]:
    return bytes(message.data), dict(message.attributes)


def unmarked(pairs) -> tuple[list[tuple[bytes, dict]], set[str]]:
    """(the originals as they were, the `replayed` marks they arrived with)."""
    originals, marks = [], set()
    for data, attributes in pairs:
        marks.add(attributes.pop("replayed", None))
        originals.append((data, attributes))
    return sorted(originals), marks


# Originals a stream job may have refused, each with the form its dead letter takes.
BESIDE_OURS = (b'{"ID": 1, "Image": "0.0,\xff"}', {"ID": "1", "source": "producer-7"})
NOT_UTF8 = (bytes(range(256)), {})
NINETY_NINE = (b"ninety-nine attributes", {f"key{i:02d}": f"value {i}" for i in range(99)})
OWN_ERROR = (b"", {"error": "the sender's own", "error_stage": "theirs", "x": "y"})
TRUNCATED = (b"\xfe" * 10_000_001, {"ID": "big"})


def test_originals_of_both_forms_are_replayed_exactly_once_and_truncated_ones_stay(
    pubsub_emulator,
):
    publisher, subscriber = clients()
    dead_topic, dead_subscription = topic_and_subscription(subscriber, "dead")
    input_topic, input_subscription = topic_and_subscription(subscriber, "input")
    replayable = [BESIDE_OURS, NOT_UTF8, NINETY_NINE, OWN_ERROR]
    dead_letters = [
        dead_letter_message(data, attributes, f"reason {i}", stage="parse")
        for i, (data, attributes) in enumerate([*replayable, TRUNCATED])
    ]
    assert dead_letters[2].attributes["error_envelope"] == "json"  # both forms are covered
    assert dead_letters[3].attributes["error_envelope"] == "json"
    assert "error_envelope" not in dead_letters[0].attributes
    assert dead_letters[4].attributes["truncated_from_bytes"] == "10000001"
    # A message on the dead-letter topic that the jobs never made: refused, never a crash.
    broken = type(dead_letters[0])(b"not json", {"error": "x", "error_envelope": "json"})
    ids = publish(publisher, dead_topic, [*dead_letters, broken])

    done = replay("--subscription", dead_subscription, "--topic", input_topic)

    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last == (
        f"replayed 4 dead letters to {input_topic}; 2 not replayed, left on the "
        f"subscription (1 cannot be rebuilt, 1 truncated)"
    )
    assert f"not replayed: message {ids[4]}: truncated: the dead letter keeps " in done.stderr
    assert "of the original's 10000001 bytes (truncated_from_bytes)" in done.stderr
    assert f"not replayed: message {ids[5]}: cannot be rebuilt: JSONDecodeError" in done.stderr
    arrived, marks = unmarked(as_pair(m) for m in drain(subscriber, input_subscription))
    assert arrived == sorted(replayable)  # exactly, and each once
    assert len(marks) == 1 and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ [0-9a-f]{8}", *marks)
    # What was not replayed is handed back at once (not after its ack deadline), unchanged.
    left = drain(subscriber, dead_subscription)
    assert sorted(m.message_id for m in left) == sorted([ids[4], ids[5]])
    truncated = next(m for m in left if m.message_id == ids[4])
    assert as_pair(truncated) == (dead_letters[4].data, dead_letters[4].attributes)


def test_limit_takes_that_many_and_leaves_the_rest(pubsub_emulator):
    publisher, subscriber = clients()
    dead_topic, dead_subscription = topic_and_subscription(subscriber, "dead")
    input_topic, input_subscription = topic_and_subscription(subscriber, "input")
    originals = [(f"message {i}".encode(), {"ID": str(i)}) for i in range(5)]
    publish(
        publisher,
        dead_topic,
        [dead_letter_message(d, a, "bad", stage="parse") for d, a in originals],
    )

    done = replay("--subscription", dead_subscription, "--topic", input_topic, "--limit", "2")

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"replayed 2 dead letters to {input_topic}"
    arrived = drain(subscriber, input_subscription)
    left = drain(subscriber, dead_subscription)
    assert len(arrived) == 2 and len(left) == 3
    # Every original is in exactly one place: replayed, or still a dead letter.
    assert sorted([as_pair(m)[1]["ID"] for m in arrived] + [m.attributes["ID"] for m in left]) == [
        str(i) for i in range(5)
    ]


def test_dry_run_publishes_nothing_and_hands_every_dead_letter_back(pubsub_emulator):
    publisher, subscriber = clients()
    dead_topic, dead_subscription = topic_and_subscription(subscriber, "dead")
    input_topic, input_subscription = topic_and_subscription(subscriber, "input")
    ids = publish(
        publisher,
        dead_topic,
        [dead_letter_message(b"x%d" % i, {"ID": str(i)}, "bad", stage="parse") for i in range(3)],
    )

    done = replay("--subscription", dead_subscription, "--topic", input_topic, "--dry-run")

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"would replay 3 dead letters to {input_topic}"
    # The original's one attribute, and `replayed`.
    assert f"would publish message {ids[0]} as 2 bytes with 2 attributes" in done.stderr
    assert drain(subscriber, input_subscription, seconds=2) == []
    assert sorted(m.message_id for m in drain(subscriber, dead_subscription)) == sorted(ids)


def test_a_publish_failure_acknowledges_nothing_and_stops_the_run(pubsub_emulator):
    # The topic is there when the run looks it up, and gone by its first publish.
    publisher, subscriber = clients()
    dead_topic, dead_subscription = topic_and_subscription(subscriber, "dead")
    input_topic = emulator.create_topic(f"gone-{uuid.uuid4().hex[:8]}")
    publisher.delete_topic(topic=input_topic)
    ids = publish(
        publisher,
        dead_topic,
        [dead_letter_message(b"x%d" % i, {"ID": str(i)}, "bad", stage="parse") for i in range(3)],
    )
    run = Replay(dead_subscription, input_topic, wait=2, out=io.StringIO())

    with pytest.raises(ReplayFailed) as failed:
        run.run(subscriber, publisher)

    assert str(failed.value).startswith(f"publishing to {input_topic} failed: NotFound: ")
    assert run.replayed == 0
    assert sorted(m.message_id for m in drain(subscriber, dead_subscription)) == sorted(ids)


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]], ids=["replay", "dry run"])
def test_a_topic_that_does_not_exist_is_one_line_and_exit_2_before_any_pull(
    pubsub_emulator, dry_run
):
    publisher, subscriber = clients()
    dead_topic, dead_subscription = topic_and_subscription(subscriber, "dead")
    missing = emulator.topic(f"missing-{uuid.uuid4().hex[:8]}")
    ids = publish(
        publisher, dead_topic, [dead_letter_message(b"x", {"ID": "1"}, "bad", stage="parse")]
    )

    done = replay("--subscription", dead_subscription, "--topic", missing, *dry_run)

    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"replay_dead_letters: error: --topic: {missing} does not exist"
    ]
    assert done.stdout == ""
    # Not pulled: it is delivered at once (not held back until a deadline passes).
    assert [m.message_id for m in drain(subscriber, dead_subscription, seconds=2)] == ids


class JobThatFailsAgain:
    """A stand-in for a running stream job whose cause is not fixed: every message on its
    input becomes a dead letter again, by the jobs' own rule (original attributes kept)."""

    def __init__(self, input_subscription: str, dead_topic: str):
        self.input_subscription, self.dead_topic = input_subscription, dead_topic
        self.received = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        from google.api_core import exceptions

        publisher, subscriber = clients()
        while not self._stop.is_set():
            try:
                response = subscriber.pull(
                    request={"subscription": self.input_subscription, "max_messages": 100},
                    timeout=1.0,
                )
            except exceptions.DeadlineExceeded:
                continue
            for item in response.received_messages:
                data, attributes = as_pair(item.message)
                self.received.append((data, dict(attributes)))
                publish(
                    publisher,
                    self.dead_topic,
                    [dead_letter_message(data, attributes, "still broken", stage="parse")],
                )
                subscriber.acknowledge(
                    request={"subscription": self.input_subscription, "ack_ids": [item.ack_id]}
                )

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=30)


def test_replaying_while_the_job_still_refuses_them_ends_and_publishes_each_once(
    pubsub_emulator,
):
    publisher, subscriber = clients()
    dead_topic, dead_subscription = topic_and_subscription(subscriber, "dead")
    input_topic, input_subscription = topic_and_subscription(subscriber, "input")
    originals = [(f"image {i}".encode(), {"ID": str(i)}) for i in range(5)]
    publish(
        publisher,
        dead_topic,
        [dead_letter_message(d, a, "broken", stage="parse") for d, a in originals],
    )
    job = JobThatFailsAgain(input_subscription, dead_topic)
    try:
        # Today's main republished them for as long as it ran: a generous bound, not a timing.
        done = run_tool(
            "--wait",
            "5",
            "--subscription",
            dead_subscription,
            "--topic",
            input_topic,
            timeout=120,
        )
    finally:
        job.stop()

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == (
        f"replayed 5 dead letters to {input_topic}; 5 not replayed, left on the subscription "
        f"(5 failed again after replay)"
    )
    received, marks = unmarked(job.received)
    assert received == originals  # each original once
    assert len(marks) == 1
    assert "no new dead letter for 5 s: done" in done.stderr
    # The second generation stays, each carrying the mark of the run that replayed it.
    left = drain(subscriber, dead_subscription)
    assert len(left) == 5
    for message in left:
        assert message.attributes["error"] == "still broken"
        assert message.attributes["replayed"] == next(iter(marks))
    assert sorted((bytes(m.data), m.attributes["ID"]) for m in left) == [
        (d, a["ID"]) for d, a in originals
    ]


@pytest.mark.parametrize(
    "args, named",
    [
        (["--topic", "projects/lab-project/topics/top"], "--subscription: is required"),
        (["--subscription", "projects/lab-project/subscriptions/sub"], "--topic: is required"),
        (["--subscription", "s", "--topic", "t"], "--subscription: the short name 's' needs"),
        (
            [
                "--subscription",
                "projects/lab-project/subscriptions/sub",
                "--topic",
                "projects/lab-project/t",
            ],
            "--topic:",
        ),
        (
            [
                "--subscription",
                "projects/lab-project/subscriptions/sub",
                "--topic",
                "t",
                "--limit",
                "0",
            ],
            "--limit",
        ),
        (
            [
                "--subscription",
                "projects/lab-project/subscriptions/sub",
                "--topic",
                "t",
                "--wait",
                "nan",
            ],
            "--wait",
        ),
        (["--from-file", "x.json"], "--to-csv: is required"),
        (["--from-file", "x.json", "--to-csv", "y.csv", "--dry-run"], "--dry-run"),
        (
            ["--from-file", "x", "--to-csv", "y", "--topic", "projects/lab-project/topics/top"],
            "--from-file",
        ),
        (
            [
                "--subscription",
                "projects/lab-project/subscriptions/sub",
                "--topic",
                "projects/lab-project/topics/top",
                "--lim",
                "1",
            ],
            "--lim",
        ),
    ],
)
def test_every_bad_argument_is_one_line_and_exit_2(args, named):
    env = template_env()
    env.pop("GOOGLE_CLOUD_PROJECT", None)
    env.pop("PROJECT", None)
    done = subprocess.run(
        [sys.executable, "-m", "tools.replay_dead_letters", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert named in done.stderr


def test_replaying_into_the_dead_letters_own_topic_is_refused(pubsub_emulator):
    _, subscriber = clients()
    dead_topic, dead_subscription = topic_and_subscription(subscriber, "dead")
    done = replay("--subscription", dead_subscription, "--topic", dead_topic)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"replay_dead_letters: error: --topic: is the dead letters' own topic ({dead_topic}): "
        f"they would come back for ever"
    ]


# --- mnist_batch: dead-letter files back into its input ------------------------------------

SAMPLE = REPO / "data" / "mnist_sample.csv"
BAD_LINES = [
    b'900,"' + b",".join([b"0.0"] * 783 + [b"0.5\xe9"]) + b'"',  # Latin-1: not UTF-8
    b"id;image",  # a wrong header
    b'901,"0.0,0.5"',  # too few pixels
    b'seven,"' + b",".join([b"0.0"] * 784) + b'"',  # a bad ID
    b'902,"' + b",".join([b"0.0"] * 783 + [b"\\x41"]) + b'"',  # a backslash, UTF-8
    b"\xef\xbb\xbf903,\xc3\xa9\r\x00tail",  # a byte-order mark, a CR inside, a NUL
]


def test_batch_dead_letters_become_a_csv_whose_lines_are_the_originals(tmp_path):
    good = SAMPLE.read_bytes().splitlines()[1:6]
    source = tmp_path / "images.csv"
    source.write_bytes(b"\n".join([b"ID,Image", *good[:2], *BAD_LINES, *good[2:]]) + b"\n")
    output = tmp_path / "predict"
    run_template("mnist_batch", ["--input", str(source), "--output", str(output)])
    fixed = tmp_path / "fixed.csv"

    done = run_tool("--from-file", f"{output}_errors-*.json", "--to-csv", str(fixed))

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {len(BAD_LINES)} rows to {fixed}"
    header, *lines = fixed.read_bytes().split(b"\n")[:-1]
    assert header == b"ID,Image"
    assert sorted(lines) == sorted(BAD_LINES)  # byte for byte
    # The job takes the file as input: the same rows, refused for the same reasons.
    again = tmp_path / "again"
    run_template("mnist_batch", ["--input", str(fixed), "--output", str(again)])
    assert sorted(read_rows(f"{again}_errors")) == sorted(read_rows(f"{output}_errors"))


def read_rows(prefix: str) -> list[tuple[str, str]]:
    return [(r["Row"], r["Error"]) for r in map(json.loads, read_shards(prefix))]


def test_a_file_that_matches_nothing_is_one_line_and_exit_1(tmp_path):
    done = run_tool("--from-file", str(tmp_path / "none-*.json"), "--to-csv", str(tmp_path / "x"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"replay_dead_letters: error: --from-file: no file matches {tmp_path / 'none-*.json'}"
    ]


def test_without_credentials_it_is_one_line_and_exit_2(tmp_path):
    env = template_env({"HOME": str(tmp_path), "CLOUDSDK_CONFIG": str(tmp_path / "gcloud")})
    env.pop("PUBSUB_EMULATOR_HOST", None)
    for args, name in (
        (
            [
                "--subscription",
                "projects/lab-project/subscriptions/sub",
                "--topic",
                "projects/lab-project/topics/top",
            ],
            "subscription",
        ),
        (["--from-file", "gs://lab-bucket/errors-*.json", "--to-csv", "x.csv"], "from-file"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "tools.replay_dead_letters", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().splitlines() == [
            f"replay_dead_letters: error: --{name}: " + done.stderr.split(f"--{name}: ")[1].strip()
        ]
        assert "no Google credentials" in done.stderr


def test_a_subscription_that_does_not_exist_is_one_line_and_exit_2(pubsub_emulator):
    done = replay(
        "--subscription",
        emulator.subscription("nothing-here"),
        "--topic",
        "projects/lab-project/topics/top",
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"replay_dead_letters: error: --subscription: "
        f"{emulator.subscription('nothing-here')} does not exist"
    ]


def job_dead_letters(tmp_path):
    """mnist_batch's own dead-letter files, from BAD_LINES."""
    source = tmp_path / "images.csv"
    source.write_bytes(b"\n".join([b"ID,Image", *BAD_LINES]) + b"\n")
    output = tmp_path / "predict"
    run_template("mnist_batch", ["--input", str(source), "--output", str(output)])
    return sorted(tmp_path.glob("predict_errors-*.json"))


def test_a_csv_that_is_an_input_file_under_another_name_is_refused_and_kept(tmp_path):
    files = job_dead_letters(tmp_path)
    before = {f: f.read_bytes() for f in files}
    (tmp_path / "fixed.csv").symlink_to(files[-1])

    # Relative spellings, from the folder the files are in: what a person types.
    done = run_tool("--from-file", "predict_errors-*.json", "--to-csv", "./fixed.csv", cwd=tmp_path)

    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"replay_dead_letters: error: --to-csv: ./fixed.csv is {files[-1]}, a file "
        f"--from-file reads: writing it would erase its dead letters"
    ]
    assert {f: f.read_bytes() for f in files} == before


def test_a_deeply_nested_line_is_counted_with_its_reason(tmp_path):
    files = job_dead_letters(tmp_path)
    files[0].write_bytes(files[0].read_bytes() + b"[" * 200_000 + b"\n")
    fixed = tmp_path / "fixed.csv"

    done = run_tool("--from-file", str(tmp_path / "predict_errors-*.json"), "--to-csv", str(fixed))

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"wrote {len(BAD_LINES)} rows to {fixed}; 1 not written (1 not a dead letter)"
    )
    assert "not a dead letter: JSON nested too deeply to read" in done.stderr
    assert "Traceback" not in done.stderr


def wait_for_dead_letters(subscriber, subscription: str, count: int, timeout: float) -> None:
    """Until `count` messages wait on the subscription; each pulled one is handed back."""
    import time

    from google.api_core import exceptions

    seen, deadline = set(), time.monotonic() + timeout
    while len(seen) < count:
        assert time.monotonic() < deadline, f"{len(seen)} of {count} dead letters arrived"
        try:
            page = subscriber.pull(
                request={"subscription": subscription, "max_messages": 100}, timeout=2.0
            ).received_messages
        except exceptions.DeadlineExceeded:
            continue
        seen |= {m.message.message_id for m in page}
        if page:
            subscriber.modify_ack_deadline(
                request={
                    "subscription": subscription,
                    "ack_ids": [m.ack_id for m in page],
                    "ack_deadline_seconds": 0,
                }
            )


@pytest.mark.slow
def test_replaying_into_the_running_mnist_stream_job_that_still_refuses_them_ends(
    pubsub_emulator,
):
    from types import SimpleNamespace

    publisher, subscriber = clients()
    images = emulator.create_topic(f"mnist_image-{uuid.uuid4().hex[:8]}")
    predict = emulator.create_topic(f"mnist_predict-{uuid.uuid4().hex[:8]}")
    dead_topic, dead_subscription = topic_and_subscription(subscriber, "mnist_dead_letter")
    job = RunningTemplate(
        "mnist_stream",
        [f"--input={images}", f"--output={predict}", f"--dead_letter={dead_topic}"],
        env=template_env({"PUBSUB_EMULATOR_HOST": pubsub_emulator}),
    )
    # Messages the job refuses for as long as its producer is not fixed.
    bad = [(b"ID=7;Image=0.0", {"source": "cam1"}), (b'[7, "0.0"]', {"source": "cam2"})]
    try:
        emulator.wait_for_subscriber(images, timeout=180)
        publish(publisher, images, [SimpleNamespace(data=d, attributes=a) for d, a in bad])
        wait_for_dead_letters(subscriber, dead_subscription, len(bad), timeout=180)

        # A wide idle window: the job (warm by now) answers within it.
        done = run_tool(
            "--wait", "30", "--subscription", dead_subscription, "--topic", images, timeout=150
        )

        job.assert_running()
    finally:
        log = job.stop()
    assert done.returncode == 0, done.stderr + log[-3000:]
    assert done.stdout.strip().splitlines()[-1] == (
        f"replayed 2 dead letters to {images}; 2 not replayed, left on the subscription "
        f"(2 failed again after replay)"
    )
    left = drain(subscriber, dead_subscription)
    assert len({m.attributes["replayed"] for m in left}) == 1
    assert sorted(
        (bytes(m.data), m.attributes["source"], m.attributes["error_stage"]) for m in left
    ) == sorted((d, a["source"], "parse") for d, a in bad)
