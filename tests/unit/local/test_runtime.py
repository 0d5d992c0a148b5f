"""The local runner's Pub/Sub read: bigger pulls, and acknowledgements held until each
message is answered (fakes only; tests/integration/stream has the runs on the emulator)."""

from types import SimpleNamespace

import pytest
from apache_beam.io.gcp.pubsub import PubsubMessage

from pipelines.core import beam_private
from pipelines.local import ledger as ledger_module
from pipelines.local import subscriber as subscriber_module
from pipelines.local.ledger import AckLedger, Sent
from pipelines.local.publish import PublishFailed, publish_and_acknowledge
from pipelines.local.shared import Supervisor
from pipelines.local.subscriber import PULL_MAX_MESSAGES, use_local_subscriber
from pipelines.local.subscriber import LocalSubscriber as _LocalSubscriber


def received(*ids):
    return [
        SimpleNamespace(
            ack_id=f"ack-{i}", message=SimpleNamespace(message_id=i, data=b"x", attributes={})
        )
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
    assert fake.pulls == [
        {"subscription": "s", "max_messages": 100, "return_immediately": True, "retry": None}
    ]
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
    assert ledger.hand_back().done == 2
    assert ("ack-1", 0) in fake.deadlines and ledger.held_count() == 0


def test_pulls_pause_when_stopping_and_hand_back_what_a_late_pull_brings():
    ledger = AckLedger()
    ledger.holding = True
    ledger.stopping = True
    fake = FakeSubscriber(received("1"))
    assert list(_LocalSubscriber(fake, 100, ledger).pull(subscription="s").received_messages) == []
    assert fake.pulls == []  # did not even ask


def test_pulls_pause_while_too_many_are_unanswered(monkeypatch):
    monkeypatch.setattr(ledger_module, "MAX_HELD", 2)
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
    assert beam_private.pubsub_read_evaluator()._pipelines_wrapped
    assert PULL_MAX_MESSAGES >= 100


def test_pulls_pause_while_too_many_bytes_are_unanswered(monkeypatch):
    monkeypatch.setattr(ledger_module, "MAX_HELD_BYTES", 2)
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
    monkeypatch.setattr(subscriber_module, "FULL_PAGE", 4)
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
    monkeypatch.setattr(subscriber_module, "FULL_PAGE", 4)
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


# --- pulls sized by bytes, and Pub/Sub failing under a pull ---------------------------------


def sized(count, size, first=0):
    return [
        SimpleNamespace(
            ack_id=f"ack-{i}",
            message=SimpleNamespace(message_id=str(i), data=b"x" * size, attributes={}),
        )
        for i in range(first, first + count)
    ]


class FailingSubscriber(FakeSubscriber):
    def __init__(self, errors, messages=()):
        super().__init__(messages)
        self.errors = list(errors)

    def pull(self, **kwargs):
        if self.errors:
            self.pulls.append(kwargs)
            raise self.errors.pop(0)
        return super().pull(**kwargs)


def test_pulls_ask_for_fewer_messages_after_big_ones(monkeypatch):
    monkeypatch.setattr(subscriber_module, "PULL_TARGET_BYTES", 1000)
    fake = FakeSubscriber(sized(2, 300))
    client = _LocalSubscriber(fake, 500, AckLedger(), Supervisor())
    assert client.wanted() == 500
    client.pull(subscription="s", max_messages=10)
    assert client.wanted() == 3  # 1000 bytes of 300-byte messages
    fake.messages = sized(4, 10, first=10)
    client.pull(subscription="s", max_messages=10)
    assert fake.pulls[-1]["max_messages"] == 3
    assert client.wanted() == 100  # small ones again: bigger pulls again


def test_a_pull_too_big_for_the_channel_is_asked_again_for_fewer():
    from google.api_core.exceptions import ResourceExhausted

    too_big = ResourceExhausted("Received message larger than max (6000080 vs. 4194304)")
    ledger = AckLedger()
    ledger.holding = True
    supervisor = Supervisor()
    supervisor.active = True
    fake = FailingSubscriber([too_big, too_big], sized(1, 10))
    client = _LocalSubscriber(fake, 8, ledger, supervisor)
    assert list(client.pull(subscription="s").received_messages) == []
    assert list(client.pull(subscription="s").received_messages) == []
    assert len(client.pull(subscription="s").received_messages) == 1
    assert [p["max_messages"] for p in fake.pulls] == [8, 4, 2]
    assert ledger.lost_pulls == 2 and supervisor.failure is None


def test_a_deleted_subscription_stops_the_run_naming_it():
    from google.api_core.exceptions import NotFound

    supervisor = Supervisor()
    supervisor.active = True
    fake = FailingSubscriber([NotFound("Subscription does not exist")], sized(1, 10))
    client = _LocalSubscriber(fake, 8, AckLedger(), supervisor)
    assert list(client.pull(subscription="projects/p/subscriptions/s").received_messages) == []
    assert supervisor.done.is_set()
    assert supervisor.failure == (
        "cannot pull from projects/p/subscriptions/s: NotFound: 404 Subscription does not exist"
    )
    assert list(client.pull(subscription="s").received_messages) == []
    assert len(fake.pulls) == 1  # stopped: asks no more


def test_pub_sub_unreachable_for_long_stops_the_run(monkeypatch):
    from google.api_core.exceptions import ServiceUnavailable

    monkeypatch.setattr(subscriber_module, "_RETRY_SECONDS", 0)
    monkeypatch.setattr(subscriber_module, "LOST_AFTER_SECONDS", 0.2)
    supervisor = Supervisor()
    supervisor.active = True
    fake = FailingSubscriber([ServiceUnavailable("Connection refused")] * 1000)
    client = _LocalSubscriber(fake, 8, AckLedger(), supervisor)
    client.pull(subscription="s")
    assert supervisor.failure is None  # a blip is retried
    import time

    time.sleep(0.25)
    client.pull(subscription="s")
    assert supervisor.failure.startswith("lost Pub/Sub: cannot pull from s for 0.2 s: ")
    assert "ServiceUnavailable" in supervisor.failure


def test_without_a_run_watching_a_lost_subscription_raises_as_beam_would():
    from google.api_core.exceptions import NotFound

    client = _LocalSubscriber(FailingSubscriber([NotFound("gone")]), 8, AckLedger(), Supervisor())
    with pytest.raises(NotFound):
        client.pull(subscription="s")


def test_a_hand_back_counts_only_what_the_server_took():
    from google.api_core.exceptions import NotFound

    from pipelines.local.run import hand_back_summary

    class Gone(FakeSubscriber):
        def modify_ack_deadline(self, **kwargs):
            raise NotFound("Subscription does not exist")

    ledger = AckLedger()
    ledger.hold(FakeSubscriber(), "kept", received("1", "2"))
    ledger.hold(Gone(), "gone", received("3"))
    sent = ledger.hand_back()
    assert (sent.done, sent.failed) == (2, 1)
    line = hand_back_summary(sent)
    assert line.startswith("2 unfinished input messages handed back to the subscription; 1 could")
    assert "NotFound: 404 Subscription does not exist" in line
    none = hand_back_summary(Sent(0, 3, "ServiceUnavailable: 503 gone"))
    assert none.startswith("its 3 unfinished input messages could not be handed back (Service")
    assert hand_back_summary(Sent(3, 0)) == (
        "3 unfinished input messages handed back to the subscription"
    )
    assert "the 1 pulls too big for the channel" in hand_back_summary(sent, lost_pulls=1)
    assert "a pull was still waiting" in hand_back_summary(sent, pulls_settled=False)


@pytest.mark.parametrize("kind", ["subscriber_client", "publisher_client"])
def test_local_clients_take_messages_bigger_than_pub_sub_allows(monkeypatch, kind):
    import grpc

    from pipelines.core.deadletters import MAX_MESSAGE_BYTES
    from pipelines.local import clients

    made = []
    real = grpc.insecure_channel

    def insecure_channel(target, options=None, compression=None):
        made.append((target, dict(options or ())))
        return real(target, options, compression)

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:9")
    monkeypatch.setattr(grpc, "insecure_channel", insecure_channel)
    getattr(clients, kind)()
    ((target, options),) = made
    assert target == "127.0.0.1:9"
    assert options["grpc.max_receive_message_length"] > MAX_MESSAGE_BYTES + 1_000_000
    assert options["grpc.max_send_message_length"] > MAX_MESSAGE_BYTES + 1_000_000


def test_google_endpoint_clients_get_the_same_limits(monkeypatch):
    from google.auth.credentials import AnonymousCredentials
    from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport

    from pipelines.local import clients

    made = []

    def create_channel(host, **kwargs):
        made.append(dict(kwargs["options"]))
        return original(host, **kwargs)

    original = SubscriberGrpcTransport.create_channel
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    monkeypatch.setattr(SubscriberGrpcTransport, "create_channel", create_channel)
    monkeypatch.setattr("google.auth.default", lambda **kw: (AnonymousCredentials(), "p"))
    clients.subscriber_client()
    assert made and made[0]["grpc.max_receive_message_length"] == clients.CHANNEL_MESSAGE_BYTES
