"""The local runner's Pub/Sub read: bigger pulls sized by count and bytes, acknowledgements
held until each message is answered, Pub/Sub lost -> the run told (fakes only;
tests/integration/stream has the runs on the emulator)."""

import time

import pytest

from local_runtime import beam_private
from local_runtime import ledger as ledger_module
from local_runtime import subscriber as subscriber_module
from local_runtime.ledger import AckLedger
from local_runtime.shared import Supervisor
from local_runtime.subscriber import PULL_MAX_MESSAGES, use_local_subscriber
from local_runtime.subscriber import LocalSubscriber as _LocalSubscriber
from tests.support.pubsub_fakes import (
    FailingSubscriber,
    FakeSubscriber,
    PagedSubscriber,
    received,
    sized,
)


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


def _wait_until(condition, seconds=5):
    import time

    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_a_prefetching_subscriber_pulls_the_next_bundle_while_the_runner_works():
    fake = FakeSubscriber(received("1", "2"))
    ledger = AckLedger()
    ledger.holding = True
    client = _LocalSubscriber(fake, 100, ledger, Supervisor(), prefetch=True)
    first = client.pull(subscription="s", max_messages=10, timeout=30)
    assert [m.message.message_id for m in first.received_messages] == ["1", "2"]
    fake.messages = received("3")
    # pulled, and held (leased, handed back by a stop), before the runner asks for it
    assert _wait_until(lambda: ledger.held_count() == 3)
    assert [m.message.message_id for m in client.pull(subscription="s").received_messages] == ["3"]
    assert fake.acks == []


def test_a_stop_finds_no_pull_in_flight_while_the_prefetcher_is_paused():
    fake = FakeSubscriber(received("1"))
    ledger = AckLedger()
    ledger.holding = True
    client = _LocalSubscriber(fake, 100, ledger, Supervisor(), prefetch=True)
    client.pull(subscription="s", max_messages=10, timeout=30)
    ledger.stopping = True
    time.sleep(0.3)  # the prefetcher keeps calling while the run is paused
    for _ in range(3):
        started = time.monotonic()
        assert ledger.wait_for_pulls(3)
        assert time.monotonic() - started < 1


def test_a_prefetching_subscriber_keeps_only_one_bundle_ahead():
    fake = FakeSubscriber(received("1"))
    client = _LocalSubscriber(fake, 100, AckLedger(), Supervisor(), prefetch=True)
    client.pull(subscription="s")
    fake.messages = received("2")
    assert _wait_until(lambda: not fake.messages)  # the bundle ahead
    fake.messages = received("3")
    assert not _wait_until(lambda: not fake.messages, 0.3)  # not pulled: one is waiting
    assert [m.message.message_id for m in client.pull(subscription="s").received_messages] == ["2"]
    assert [m.message.message_id for m in client.pull(subscription="s").received_messages] == ["3"]


def test_a_prefetching_subscriber_raises_a_pull_error_without_a_run_watching():
    from google.api_core.exceptions import NotFound

    fake = FailingSubscriber([NotFound("gone")])
    client = _LocalSubscriber(fake, 8, AckLedger(), Supervisor(), prefetch=True)
    with pytest.raises(NotFound):
        client.pull(subscription="s")


def test_a_prefetching_subscriber_stops_pulling_on_a_failure_and_gives_nothing_more():
    from google.api_core.exceptions import NotFound

    supervisor = Supervisor()
    supervisor.active = True
    fake = FailingSubscriber([NotFound("Subscription does not exist")], sized(1, 10))
    client = _LocalSubscriber(fake, 8, AckLedger(), supervisor, prefetch=True)
    assert list(client.pull(subscription="projects/p/subscriptions/s").received_messages) == []
    assert supervisor.failure.startswith("cannot pull from projects/p/subscriptions/s: NotFound")
    assert list(client.pull(subscription="projects/p/subscriptions/s").received_messages) == []
    assert len(fake.pulls) == 1
