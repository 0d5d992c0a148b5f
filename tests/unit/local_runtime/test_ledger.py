"""The ledger of unanswered input: acknowledge when answered, lease, hand back, and
count only what the server took (fakes only)."""

from local_runtime.ledger import AckLedger, Sent
from local_runtime.subscriber import LocalSubscriber as _LocalSubscriber
from tests.support.pubsub_fakes import (
    FakeSubscriber,
    received,
)


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


def test_a_hand_back_counts_only_what_the_server_took():
    from google.api_core.exceptions import NotFound

    from local_runtime.run import hand_back_summary

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


def test_the_run_freezes_what_it_set_up_once_it_answered_a_message():
    import gc

    from local_runtime.run import freeze_once_answering

    ledger = AckLedger()
    ledger.holding = True
    fake = FakeSubscriber(received("1", "2"))
    client = _LocalSubscriber(fake, 100, ledger)
    client.pull(subscription="s", max_messages=10)
    frozen = gc.get_freeze_count()
    try:
        assert not freeze_once_answering(ledger)  # pulled, not answered: still setting up
        assert gc.get_freeze_count() == frozen
        ledger.release(["1"])
        assert ledger.answered == 1
        assert freeze_once_answering(ledger)
        assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()


def test_a_run_that_holds_nothing_freezes_once_it_answered_too():
    """Without holding (input acknowledged on pull, when the job writes with Beam's own
    WriteToPubSub) the ledger holds no entries, yet the run has set up all the same."""
    import gc

    from local_runtime.run import freeze_once_answering

    ledger = AckLedger()
    ledger.holding = False
    try:
        assert not freeze_once_answering(ledger)
        ledger.release(["1", "2"])
        assert ledger.answered == 2
        assert freeze_once_answering(ledger)
    finally:
        gc.unfreeze()
