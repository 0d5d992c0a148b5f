"""The Pub/Sub plumbing both stream jobs share (pure parts)."""

import pytest

from pipelines import pubsub
from pipelines.params import ParameterError


def test_dead_letter_keeps_the_message_and_adds_the_reason():
    message = pubsub.dead_letter_message(b"\xffdata", {"name": "A_001.png"}, "bad", stage="decode")
    assert message.data == b"\xffdata"
    assert message.attributes == {"name": "A_001.png", "error": "bad", "error_stage": "decode"}


def test_dead_letter_reason_fits_an_attribute():
    message = pubsub.dead_letter_message(b"x", None, "why " * 1000, stage="parse")
    assert len(message.attributes["error"].encode()) <= 1024


def test_a_dead_letter_that_would_not_fit_is_cut_and_says_so():
    data = b"z" * 10_000_000
    message = pubsub.dead_letter_message(data, {"a": "b"}, "too big", stage="decode")
    assert len(message.data) + sum(len(k) + len(v) for k, v in message.attributes.items()) \
        < 10_000_000
    assert message.attributes["truncated_from_bytes"] == "10000000"
    assert data.startswith(message.data)


@pytest.mark.parametrize("value, ok", [
    ("projects/lab-project/topics/mnist_image", True),
    ("projects/lab-project/subscriptions/mnist_image-sub", True),
    ("projects/p/topics/x", False),          # Beam's rule: project IDs have 6+ characters
    ("mnist_image", False),
    ("projects/lab-project/queues/q", False),
])
def test_input_source_check(value, ok):
    if ok:
        pubsub.check_input_source("input", value)
    else:
        with pytest.raises(ParameterError, match="--input"):
            pubsub.check_input_source("input", value)


def test_topic_check_allows_an_absent_optional_topic():
    pubsub.check_topic("dead_letter", None)
    with pytest.raises(ParameterError, match="--output: expected projects/PROJECT/topics"):
        pubsub.check_topic("output", "projects/lab-project/subscriptions/s")
