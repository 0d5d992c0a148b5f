"""Pins every private Beam name local_runtime/beam_private.py uses (the DirectRunner's
Pub/Sub read): each test fails if the installed Beam no longer has it or no longer behaves
as that module relies on. And neither the rest of local_runtime/ nor bench/ reaches into
Beam's private names."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

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


def test_dofn_signatures_are_inspected_once_per_function_with_beams_answers(monkeypatch):
    import inspect

    import apache_beam as beam
    from apache_beam.transforms import core

    class WithDefaults(beam.DoFn):
        def process(self, element, side=3, *rest, timestamp=beam.DoFn.TimestampParam):
            yield element

    assert beam_private.cache_dofn_signatures()
    assert beam_private.cache_dofn_signatures()  # idempotent
    cached = core.get_function_args_defaults
    original = cached._pipelines_original
    first, second = WithDefaults(), WithDefaults()
    for f in (first.process, second.process, WithDefaults.process, len, lambda a, b=2: a):
        assert cached(f) == original(f)
    args, defaults = cached(first.process)
    assert (args, defaults) == (["element", "side"], [3])
    args.append("changed")  # a caller's list is its own
    assert cached(second.process) == (["element", "side"], [3])
    inspections = []
    real = inspect.signature
    monkeypatch.setattr(
        inspect, "signature", lambda *a, **k: inspections.append(a) or real(*a, **k)
    )
    original(first.process)
    assert len(inspections) == 1  # Beam inspects through inspect.signature
    for _ in range(3):  # every bundle's fresh copy of the DoFn
        core.get_function_arguments(WithDefaults(), "process")
    assert len(inspections) == 1


def test_dofn_specs_are_found_once_per_class_with_beams_answers(monkeypatch):
    import apache_beam as beam
    from apache_beam.coders import VarIntCoder
    from apache_beam.internal import pickler
    from apache_beam.transforms import userstate
    from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec

    count = ReadModifyWriteStateSpec("count", VarIntCoder())
    alarm = TimerSpec("alarm", beam.TimeDomain.WATERMARK)
    counted, alarmed = beam.DoFn.StateParam(count), beam.DoFn.TimerParam(alarm)

    class Stateful(beam.DoFn):
        def process(self, element, state=counted):
            yield element

        @userstate.on_timer(alarm)
        def ring(self, timer=alarmed):
            yield 1

    class Plain(beam.DoFn):
        def process(self, element):
            yield element

    def other_process(element, state=counted):
        yield element

    class Holder(beam.DoFn):
        def process(self, element):
            yield element

        def stateful(self, element, state=counted):
            yield element

    class Duplicate(beam.DoFn):
        def process(self, element, a=counted, b=counted):
            yield element

    assert beam_private.cache_dofn_specs()
    assert beam_private.cache_dofn_specs()  # idempotent
    cached = userstate.get_dofn_specs
    original = cached._pipelines_original
    holder = Plain()
    holder.process = Holder().stateful  # a bound method on the instance: its own specs
    shadowed = Stateful()
    shadowed.process = other_process  # a plain function hides the method: not a method now
    copies = [pickler.loads(pickler.dumps(fn)) for fn in (Stateful(), Plain())]
    for dofn in (Plain(), holder, shadowed, Stateful(), beam.Map(len).fn, *copies, holder):
        assert cached(dofn) == original(dofn)
    state_specs, timer_specs = cached(Stateful())
    assert [s.name for s in state_specs] == ["count"] and [t.name for t in timer_specs] == [
        "ts-alarm"
    ]
    assert [s.name for s in cached(holder)[0]] == ["count"]
    assert cached(shadowed)[0] == set() and [t.name for t in cached(shadowed)[1]] == ["ts-alarm"]
    state_specs, _ = cached(Plain())
    state_specs.add("mine")  # a caller's set is its own
    assert cached(Plain()) == (set(), set())
    with pytest.raises(ValueError, match="duplicate"):
        cached(Duplicate())
    with pytest.raises(ValueError, match="duplicate"):
        cached(Duplicate())  # refused every time, not remembered

    walks = []
    real_dir = dir
    monkeypatch.setattr("builtins.dir", lambda *a: walks.append(a) or real_dir(*a))
    original(Plain())
    assert len(walks) == 1  # Beam walks dir() of the DoFn
    walks.clear()
    for _ in range(3):  # every bundle's fresh copy of the DoFn
        cached(pickler.loads(pickler.dumps(Plain())))
    assert not walks
    for dofn in (holder, Stateful(), beam.Map(len).fn):
        walks.clear()
        cached(dofn)
        assert walks  # asked as before


def test_timestamps_from_datetimes_keep_beams_values():
    import datetime

    import pytz
    from apache_beam.utils.timestamp import Timestamp

    assert beam_private.keep_timestamp_epoch()
    assert beam_private.keep_timestamp_epoch()  # idempotent
    kept = Timestamp.__dict__["_epoch_datetime_utc"].__func__
    original = kept._pipelines_original.__func__
    assert kept() == original() and kept().tzinfo is original().tzinfo
    for when in (
        datetime.datetime(2026, 12, 7, 3, 4, 5, 123456, tzinfo=datetime.UTC),
        datetime.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=pytz.utc),
        datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC),
    ):
        expected = when - original()
        stamp = Timestamp.from_utc_datetime(when)
        assert stamp.micros == (expected.days * 86400 + expected.seconds) * 10**6 + (
            expected.microseconds
        )
