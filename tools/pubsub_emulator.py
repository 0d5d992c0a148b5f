"""The Pub/Sub emulator that ships with the Cloud SDK, for local runs of the stream jobs.

    with running_pubsub_emulator(Path("emulator.log")) as host:   # sets PUBSUB_EMULATOR_HOST
        create_topic("mnist_image") ...

Started directly (not through `gcloud beta emulators`, which adds a wrapper process) and
stopped with its whole process group, since the script starts a JVM.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

EMULATOR = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator")
PROJECT = "lab-project"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@contextlib.contextmanager
def running_pubsub_emulator(log_path: Path):
    """Yields host:port; sets PUBSUB_EMULATOR_HOST for this process while it runs."""
    if not EMULATOR.exists():
        raise FileNotFoundError(
            f"the Pub/Sub emulator is not installed at {EMULATOR} "
            f"(Debian package google-cloud-cli-pubsub-emulator)"
        )
    port = free_port()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(EMULATOR), "--host=127.0.0.1", f"--port={port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    host = f"127.0.0.1:{port}"
    previous = os.environ.get("PUBSUB_EMULATOR_HOST")
    try:
        wait_for_port(port, timeout=60, process=process)
        os.environ["PUBSUB_EMULATOR_HOST"] = host
        yield host
    finally:
        if previous is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = previous
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def topic(name: str) -> str:
    return f"projects/{PROJECT}/topics/{name}"


def subscription(name: str) -> str:
    return f"projects/{PROJECT}/subscriptions/{name}"


def create_topic(name: str) -> str:
    from pipelines.io.pubsub_clients import publisher_client

    publisher_client().create_topic(name=topic(name))
    return topic(name)


def create_topic_with_subscription(name: str) -> tuple[str, str]:
    from pipelines.io.pubsub_clients import subscriber_client

    create_topic(name)
    subscriber_client().create_subscription(name=subscription(name + "-sub"), topic=topic(name))
    return topic(name), subscription(name + "-sub")


def wait_for_subscriber(topic_path: str, timeout: float = 120) -> None:
    """Until a streaming job has subscribed to `topic_path` (messages before that are lost).
    The topic must have had no subscription of its own."""
    from pipelines.io.pubsub_clients import publisher_client

    publisher = publisher_client()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if list(publisher.list_topic_subscriptions(topic=topic_path)):
            return
        time.sleep(0.5)
    raise TimeoutError(f"no subscription on {topic_path} after {timeout}s")


def pull(subscription_path: str, count: int, timeout: float, subscriber=None) -> list:
    """Pulls until `count` messages arrived or `timeout` passed; acks what it got. With
    `subscriber`, through that client, else through the factory's."""
    if subscriber is None:
        from pipelines.io.pubsub_clients import subscriber_client

        subscriber = subscriber_client()
    received = []
    deadline = time.monotonic() + timeout
    while len(received) < count and time.monotonic() < deadline:
        response = subscriber.pull(
            subscription=subscription_path, max_messages=100, timeout=5, return_immediately=False
        )
        if response.received_messages:
            subscriber.acknowledge(
                subscription=subscription_path,
                ack_ids=[m.ack_id for m in response.received_messages],
            )
            received += [m.message for m in response.received_messages]
    return received
