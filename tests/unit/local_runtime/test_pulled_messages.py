"""The local runtime's reading of a pull response (hypothesis): any data, attributes, IDs and
publish time Pub/Sub's protobuf can hold become a message the jobs' readers get, never an
exception that would end the pull loop. docs/boundaries.md lists it."""

from __future__ import annotations

import datetime

from google.pubsub_v1.types import PubsubMessage, PullResponse, ReceivedMessage
from hypothesis import given
from hypothesis import strategies as st

from local_runtime.subscriber import message_bytes, received_messages

INT64 = st.integers(-(2**63), 2**63 - 1)
INT32 = st.integers(-(2**31), 2**31 - 1)
ids = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


def response(ack_id: str, message: PubsubMessage, seconds: int, nanos: int) -> PullResponse:
    pulled = PullResponse(received_messages=[ReceivedMessage(ack_id=ack_id, message=message)])
    stamp = PullResponse.pb(pulled).received_messages[0].message.publish_time
    stamp.seconds, stamp.nanos = seconds, nanos
    return pulled


@given(
    data=st.binary(max_size=300),
    attributes=st.dictionaries(ids, ids, max_size=4),
    message_id=ids,
    seconds=INT64 | st.integers(0, 4_000_000_000),
    nanos=INT32,
    ack_id=ids,
)
def test_any_pulled_message_is_read_whatever_its_fields(
    data, attributes, message_id, seconds, nanos, ack_id
):
    message = PubsubMessage(data=data, attributes=attributes, message_id=message_id)
    (got,) = received_messages(response(ack_id, message, seconds, nanos))
    view = got.message
    assert got.ack_id == ack_id
    assert view.data == data and view.attributes == attributes and view.message_id == message_id
    assert isinstance(view.publish_time, datetime.datetime) and view.publish_time.tzinfo
    assert message_bytes(view) >= len(data)


def test_a_publish_time_in_range_is_kept_to_the_microsecond():
    pulled = response("a", PubsubMessage(data=b"x"), 1_700_000_000, 123_456_789)
    (got,) = received_messages(pulled)
    assert got.message.publish_time == datetime.datetime(
        2023, 11, 14, 22, 13, 20, 123456, tzinfo=datetime.UTC
    )
