"""The local runner's Pub/Sub read: bigger pulls, and acknowledgements held until each
message is answered (fakes only; tests/integration/stream has the runs on the emulator)."""

from types import SimpleNamespace

import pytest
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.runners.direct import transform_evaluator

from pipelines.local import runtime as local_pubsub
from pipelines.local.runtime import (
    PULL_MAX_MESSAGES,
    AckLedger,
    PublishFailed,
    _LocalSubscriber,
    publish_and_acknowledge,
    use_local_subscriber,
)


def received(*ids):
    return [
        SimpleNamespace(ack_id=f"ack-{i}", message=SimpleNamespace(message_id=i, data=b"x"))
        for i in ids
    ]


class FakeSubscriber:
    def __init__(self, messages=()):
        self.messages = list(messages)
        self.pulls, self.acks, self.deadlines = [], [], []
        self.closed = False

    def pull(self, **kwargs):
        self.pulls.append(kwargs)
        response, self.messages = self.messages, []
        return SimpleNamespace(received_messages=response)

    def acknowledge(self, subscription, ack_ids, timeout=None):
        self.acks += ack_ids

    def modify_ack_deadline(self, subscription, ack_ids, ack_deadline_seconds, timeout=None):
        self.deadlines += [(a, ack_deadline_seconds) for a in ack_ids]

    def close(self):
        self.closed = True


def test_pulls_ask_for_more_messages_and_everything_else_passes_through():
    fake = FakeSubscriber()
    client = _LocalSubscriber(fake, 100, AckLedger())
    client.pull(subscription="s", max_messages=10, return_immediately=True)
    assert fake.pulls == [{"subscription": "s", "max_messages": 100, "return_immediately": True}]
    client.acknowledge(subscription="s", ack_ids=["a"])
    assert fake.acks == ["a"]  # not holding: acknowledged on pull, as Beam does
    client.close()
    assert fake.closed


def test_held_messages_are_acknowledged_only_when_answered():
    ledger = AckLedger()
    ledger.holding = True
    fake = FakeSubscriber(received("1", "2", "3"))
    client = _LocalSubscriber(fake, 100, ledger)
    response = client.pull(subscription="s", max_messages=10)
    client.acknowledge(subscription="s", ack_ids=[m.ack_id for m in response.received_messages])
    assert fake.acks == [] and ledger.held_count() == 3
    ledger.lease(60)
    assert sorted(fake.deadlines) == [("ack-1", 60), ("ack-2", 60), ("ack-3", 60)]
    ledger.release(["2", None, "unknown"])
    assert fake.acks == ["ack-2"] and ledger.held_count() == 2
    assert ledger.hand_back() == 2
    assert ("ack-1", 0) in fake.deadlines and ledger.held_count() == 0


def test_pulls_pause_when_stopping_and_hand_back_what_a_late_pull_brings():
    ledger = AckLedger()
    ledger.holding = True
    ledger.stopping = True
    fake = FakeSubscriber(received("1"))
    assert list(_LocalSubscriber(fake, 100, ledger).pull(subscription="s").received_messages) == []
    assert fake.pulls == []  # did not even ask


def test_pulls_pause_while_too_many_are_unanswered(monkeypatch):
    monkeypatch.setattr(local_pubsub, "MAX_HELD", 2)
    ledger = AckLedger()
    ledger.holding = True
    fake = FakeSubscriber(received("1", "2"))
    client = _LocalSubscriber(fake, 100, ledger)
    client.pull(subscription="s")
    fake.messages = received("3")
    assert list(client.pull(subscription="s").received_messages) == []
    ledger.release(["1"])
    assert len(client.pull(subscription="s").received_messages) == 1


class FakePublisher:
    def __init__(self, fail_with=None):
        self.requests = []
        self.fail_with = fail_with
        self.api = self

    def publish(self, topic, messages, timeout):
        if self.fail_with:
            raise self.fail_with
        self.requests.append((topic, [(m.data, dict(m.attributes)) for m in messages]))


def test_publishing_acknowledges_the_inputs_answered():
    ledger = AckLedger()
    ledger.holding = True
    subscriber = FakeSubscriber()
    ledger.hold(subscriber, "s", received("a", "b"))
    out = [PubsubMessage(b"x", {"data": "attribute names are free", "topic": "t"}, message_id="a")]
    publish_and_acknowledge(FakePublisher(), "projects/p/topics/out", out, ledger)
    assert subscriber.acks == ["ack-a"] and ledger.held_count() == 1


def test_a_refused_publish_acknowledges_nothing_and_names_the_topic():
    from google.api_core.exceptions import NotFound

    ledger = AckLedger()
    subscriber = FakeSubscriber()
    ledger.hold(subscriber, "s", received("a"))
    with pytest.raises(PublishFailed, match="cannot publish to projects/p/topics/out: NotFound"):
        publish_and_acknowledge(
            FakePublisher(NotFound("Topic not found")),
            "projects/p/topics/out",
            [PubsubMessage(b"x", {}, message_id="a")],
            ledger,
        )
    assert subscriber.acks == [] and ledger.held_count() == 1


def test_the_direct_runners_reader_is_patched_once():
    assert use_local_subscriber()
    assert use_local_subscriber()  # idempotent
    assert transform_evaluator._PubSubReadEvaluator._local_subscriber
    assert PULL_MAX_MESSAGES >= 100


def test_pulls_pause_while_too_many_bytes_are_unanswered(monkeypatch):
    monkeypatch.setattr(local_pubsub, "MAX_HELD_BYTES", 2)
    ledger = AckLedger()
    ledger.holding = True
    fake = FakeSubscriber(received("1", "2"))
    client = _LocalSubscriber(fake, 100, ledger)
    client.pull(subscription="s")
    assert ledger.full()
    ledger.release(["1"])
    assert not ledger.full()


def test_a_message_pub_sub_would_refuse_is_not_published_locally_either():
    publisher = FakePublisher()
    with pytest.raises(PublishFailed, match="would refuse a message: 101 attributes"):
        publish_and_acknowledge(
            publisher,
            "projects/p/topics/out",
            [PubsubMessage(b"x", {str(i): "" for i in range(101)}, message_id="a")],
            AckLedger(),
        )
    assert publisher.requests == []


class PagedSubscriber(FakeSubscriber):
    """Returns at most `page` messages a pull, as the emulator returns at most 100."""

    def __init__(self, messages, page):
        super().__init__(messages)
        self.page = page

    def pull(self, **kwargs):
        self.pulls.append(kwargs)
        count = min(self.page, kwargs["max_messages"])
        response, self.messages = self.messages[:count], self.messages[count:]
        return SimpleNamespace(received_messages=response)


def test_a_backlog_is_pulled_in_one_bundle_of_up_to_the_maximum(monkeypatch):
    monkeypatch.setattr(local_pubsub, "FULL_PAGE", 4)
    fake = PagedSubscriber(received(*range(20)), page=4)
    ledger = AckLedger()
    ledger.holding = True
    client = _LocalSubscriber(fake, 10, ledger)
    response = client.pull(subscription="s", max_messages=10, timeout=30)
    assert [m.message.message_id for m in response.received_messages] == list(range(10))
    assert [p["max_messages"] for p in fake.pulls] == [10, 6, 2]
    assert [p.get("return_immediately") for p in fake.pulls] == [None, True, True]
    assert ledger.held_count() == 10


def test_a_short_pull_is_the_whole_bundle(monkeypatch):
    monkeypatch.setattr(local_pubsub, "FULL_PAGE", 4)
    fake = PagedSubscriber(received(1, 2, 3), page=4)
    client = _LocalSubscriber(fake, 10, AckLedger())
    response = client.pull(subscription="s", max_messages=10, timeout=30)
    assert len(response.received_messages) == 3
    assert len(fake.pulls) == 1  # at a low rate a bundle never waits for, or asks for, more


def test_a_stop_waits_for_a_pull_in_flight_which_hands_back_what_it_brings():
    import threading

    ledger = AckLedger()
    ledger.holding = True
    release = threading.Event()

    class SlowSubscriber(FakeSubscriber):
        def pull(self, **kwargs):
            release.wait(5)  # the server is handing this pull a page while the job stops
            return super().pull(**kwargs)

    fake = SlowSubscriber(received("1", "2"))
    pulling = threading.Thread(
        target=_LocalSubscriber(fake, 100, ledger).pull, kwargs={"subscription": "s"}
    )
    pulling.start()
    ledger.stopping = True
    assert not ledger.wait_for_pulls(0.2)  # still in flight: an exit now would strand it
    release.set()
    assert ledger.wait_for_pulls(5)
    pulling.join(5)
    assert fake.deadlines == [("ack-1", 0), ("ack-2", 0)]  # handed back, not held
    assert ledger.held_count() == 0
