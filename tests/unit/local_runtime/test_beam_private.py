"""Pins every private Beam name local_runtime/beam_private.py uses (the DirectRunner's
Pub/Sub read): each test fails if the installed Beam no longer has it or no longer behaves
as that module relies on. And neither the rest of local_runtime/ nor bench/ reaches into
Beam's private names."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from local_runtime import beam_private
from tests.support.beam_names import private_beam_names_outside

ROOT = Path(__file__).resolve().parents[3]


def test_no_module_but_beam_private_uses_private_beam_names():
    runtime = ROOT / "local_runtime"
    assert not private_beam_names_outside(runtime, runtime / "beam_private.py")
    assert not private_beam_names_outside(ROOT / "bench", runtime / "beam_private.py")
    assert not private_beam_names_outside(ROOT / "tools", runtime / "beam_private.py")


class AppliedTransform:
    pass


class FakeBeamClient:
    """What `google.cloud.pubsub.SubscriberClient()` is to the DirectRunner's read."""

    def __init__(self):
        self.closed = False

    def close(self):
        self.closed = True


class Wrapper:
    wraps_beams_client = True

    def __init__(self, client):
        from google.pubsub_v1 import types

        self.wrapped = client
        self.pulls, self.acks = [], []
        self.response = types.PullResponse(
            received_messages=[
                types.ReceivedMessage(
                    ack_id="ack-1",
                    message=types.PubsubMessage(
                        data=b"d",
                        attributes={"k": "v"},
                        message_id="1",
                        publish_time={"seconds": 5},
                    ),
                )
            ]
        )

    def pull(self, **kwargs):
        self.pulls.append(kwargs)
        return self.response

    def acknowledge(self, **kwargs):
        self.acks.append(kwargs)

    def close(self):
        self.wrapped.close()


def test_the_direct_runners_pubsub_read_goes_through_the_wrapped_client(monkeypatch):
    from google.cloud import pubsub

    evaluator = beam_private.pubsub_read_evaluator()
    # Beam's own method (kept by the wrapping, which may already have happened here).
    original = evaluator.__dict__.get(
        "_pipelines_original", evaluator.__dict__["_get_subscriber_client_state_unlocked"]
    )
    monkeypatch.setattr(evaluator, "_get_subscriber_client_state_unlocked", original)
    monkeypatch.setattr(evaluator, "_pipelines_wrapped", False, raising=False)
    monkeypatch.setattr(evaluator, "_pipelines_original", original, raising=False)
    monkeypatch.setattr(pubsub, "SubscriberClient", FakeBeamClient)
    wrapped = []
    assert beam_private.wrap_direct_pubsub_subscriber(
        lambda c: wrapped.append(Wrapper(c)) or wrapped[-1]
    )

    reader = object.__new__(evaluator)
    reader._applied_ptransform = AppliedTransform()  # the cache key (weakly held)
    reader._sub_name = "projects/p/subscriptions/s"
    [(timestamp, message)] = reader._read_from_pubsub(None)
    (client,) = wrapped
    assert isinstance(client.wrapped, FakeBeamClient)
    assert client.pulls == [
        {"subscription": "projects/p/subscriptions/s", "max_messages": 10, "timeout": 30}
    ]
    assert client.acks == [{"subscription": "projects/p/subscriptions/s", "ack_ids": ["ack-1"]}]
    assert (message.data, message.attributes, message.message_id) == (b"d", {"k": "v"}, "1")
    assert timestamp.micros == 5_000_000
    # The local subscriber answers with views of the raw protobuf instead: read the same.
    from google.pubsub_v1 import types

    from local_runtime.subscriber import received_messages

    client.response = SimpleNamespace(received_messages=received_messages(client.response))
    assert not isinstance(client.response.received_messages[0], types.ReceivedMessage)
    [(timestamp_2, message_2)] = reader._read_from_pubsub(None)
    assert (timestamp_2, message_2) == (timestamp, message)
    assert message_2.publish_time == message.publish_time
    assert len(wrapped) == 1  # one client per read, cached

    beam_private.close_direct_pubsub_reads()
    assert client.wrapped.closed
    evaluator._subscriber_client_cache.pop(reader._applied_ptransform, None)
