"""Publishing on a local run: the inputs answered are acknowledged, a refused publish
acknowledges nothing and names the topic (fakes only)."""

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
