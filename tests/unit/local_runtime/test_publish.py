"""Publishing on a local run: the inputs answered are acknowledged, a refused publish
acknowledges nothing and names the topic (fakes only)."""

import time

import pytest
from apache_beam.io.gcp.pubsub import PubsubMessage

from local_runtime.ledger import AckLedger
from local_runtime.publish import PublishFailed, publish_and_acknowledge
from pipelines.core.deadletters import answering
from tests.support.pubsub_fakes import (
    FakePublisher,
    FakeSubscriber,
    received,
)


def test_publishing_acknowledges_the_inputs_answered():
    ledger = AckLedger()
    ledger.holding = True
    subscriber = FakeSubscriber()
    ledger.hold(subscriber, "s", received("a", "b"))
    out = [answering("a", PubsubMessage(b"x", {"data": "attribute names are free", "topic": "t"}))]
    publisher = FakePublisher()
    publish_and_acknowledge(publisher, "projects/p/topics/out", out, ledger)
    assert subscriber.acks == ["ack-a"] and ledger.held_count() == 1
    assert publisher.requests == [
        ("projects/p/topics/out", [(b"x", {"data": "attribute names are free", "topic": "t"})])
    ]


def test_a_refused_publish_acknowledges_nothing_and_names_the_topic():
    from google.api_core.exceptions import NotFound

    ledger = AckLedger()
    subscriber = FakeSubscriber()
    ledger.hold(subscriber, "s", received("a"))
    with pytest.raises(PublishFailed, match="cannot publish to projects/p/topics/out: NotFound"):
        publish_and_acknowledge(
            FakePublisher(NotFound("Topic not found")),
            "projects/p/topics/out",
            [answering("a", PubsubMessage(b"x", {}))],
            ledger,
        )
    assert subscriber.acks == [] and ledger.held_count() == 1


def test_a_message_pub_sub_would_refuse_is_not_published_locally_either():
    publisher = FakePublisher()
    with pytest.raises(PublishFailed, match="would refuse a message: 101 attributes"):
        publish_and_acknowledge(
            publisher,
            "projects/p/topics/out",
            [answering("a", PubsubMessage(b"x", {str(i): "" for i in range(101)}))],
            AckLedger(),
        )
    assert publisher.requests == []


def _watched_run():
    from local_runtime.shared import Supervisor

    ledger, supervisor = AckLedger(), Supervisor()
    ledger.holding = supervisor.active = True
    return ledger, supervisor


def test_a_watched_run_publishes_behind_the_runner_and_acknowledges_only_once_published():
    import threading

    from local_runtime.publish import publish_behind
    from local_runtime.shared import Behind

    ledger, supervisor = _watched_run()
    subscriber = FakeSubscriber()
    ledger.hold(subscriber, "s", received("a", "b"))
    answered = threading.Event()

    class SlowPublisher(FakePublisher):
        def publish(self, request, timeout):
            answered.wait(5)  # Pub/Sub has not answered yet
            super().publish(request, timeout)

    publisher = SlowPublisher()
    behind = Behind(1, "publishing", supervisor)
    publish_behind(
        publisher,
        "projects/p/topics/out",
        [answering("a", PubsubMessage(b"x", {}))],
        ledger,
        supervisor,
        behind,
    )
    # the runner goes on while the publish waits; nothing is acknowledged before it is done
    assert subscriber.acks == [] and ledger.held_count() == 2
    answered.set()
    deadline = time.monotonic() + 5
    while ledger.held_count() != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert subscriber.acks == ["ack-a"] and ledger.held_count() == 1
    assert publisher.requests == [("projects/p/topics/out", [(b"x", {})])]


def test_a_publish_failing_behind_the_runner_stops_the_run_and_acknowledges_nothing():
    from google.api_core.exceptions import NotFound

    from local_runtime.publish import publish_behind
    from local_runtime.shared import Behind

    ledger, supervisor = _watched_run()
    subscriber = FakeSubscriber()
    ledger.hold(subscriber, "s", received("a"))
    publish_behind(
        FakePublisher(NotFound("Topic not found")),
        "projects/p/topics/out",
        [answering("a", PubsubMessage(b"x", {}))],
        ledger,
        supervisor,
        Behind(1, "publishing", supervisor),
    )
    assert supervisor.done.wait(5)
    assert supervisor.failure.startswith("cannot publish to projects/p/topics/out: NotFound")
    assert subscriber.acks == [] and ledger.held_count() == 1
