"""The Pub/Sub plumbing both stream jobs share (pure parts): dead letters under Pub/Sub's
limits (hypothesis properties), publish checks, and the launch checks on topics."""

import base64
import json

import pytest
from apache_beam.io.gcp.pubsub import PubsubMessage
from hypothesis import given
from hypothesis import strategies as st

from pipelines.core import deadletters
from pipelines.core.params import ParameterError
from pipelines.io import pubsub
from pipelines.io.parameters import INPUT_NAMES
from tests.support.properties import PROPERTY


def test_dead_letter_keeps_the_message_and_adds_the_reason():
    message = deadletters.dead_letter_message(
        b"\xffdata", {"name": "A_001.png"}, "bad", stage="decode"
    )
    assert message.data == b"\xffdata"
    assert message.attributes == {"name": "A_001.png", "error": "bad", "error_stage": "decode"}


def test_dead_letter_reason_fits_an_attribute():
    message = deadletters.dead_letter_message(b"x", None, "why " * 1000, stage="parse")
    assert len(message.attributes["error"].encode()) <= 1024


def test_a_dead_letter_that_would_not_fit_is_cut_and_says_so():
    data = b"z" * 10_000_000
    message = deadletters.dead_letter_message(data, {"a": "b"}, "too big", stage="decode")
    assert (
        len(message.data) + sum(len(k) + len(v) for k, v in message.attributes.items()) < 10_000_000
    )
    assert message.attributes["truncated_from_bytes"] == "10000000"
    assert data.startswith(message.data)


@pytest.mark.parametrize(
    "value, ok",
    [
        ("projects/lab-project/topics/mnist_image", True),
        ("projects/lab-project/subscriptions/mnist_image-sub", True),
        ("projects/p/topics/x", False),  # Beam's rule: project IDs have 6+ characters
        ("mnist_image", False),
        ("projects/lab-project/queues/q", False),
    ],
)
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


# --- dead letters: always publishable, original always recoverable -------------------------


def assert_publishable(message):
    """Pub/Sub's limits, written out here rather than trusting deadletters.publish_problem."""
    attributes = message.attributes
    assert isinstance(message.data, bytes)
    assert message.data or attributes
    assert len(attributes) <= 100
    size = len(message.data)
    for key, value in attributes.items():
        key_bytes, value_bytes = key.encode("utf-8"), value.encode("utf-8")  # valid UTF-8
        assert 1 <= len(key_bytes) <= 256 and not key.startswith("goog")
        assert len(value_bytes) <= 1024
        size += len(key_bytes) + len(value_bytes)
    assert size <= 10_000_000
    message._to_proto_str(for_publish=True)  # Beam's own check passes too


def text_of_bytes(max_bytes, min_size=0):
    return st.text(min_size=min_size, max_size=max_bytes).filter(
        lambda t: len(t.encode("utf-8")) <= max_bytes
    )


keys = text_of_bytes(256, min_size=1) | st.sampled_from(
    ["error", "error_stage", "truncated_from_bytes", "error_envelope", "ID", "name", "googx"]
)
values = text_of_bytes(1024) | st.builds(lambda n: "é" * n, st.integers(0, 512))
attribute_sets = st.dictionaries(keys, values, max_size=100)
payloads = st.binary(max_size=2000) | st.builds(
    lambda n, b: b * n,
    st.sampled_from([9_899_000, 9_950_000, 10_000_000, 10_485_760]),
    st.sampled_from([b"x", b"\xff"]),
)


@PROPERTY
@given(
    data=payloads,
    attributes=attribute_sets,
    reason=st.text(max_size=3000),
    stage=st.sampled_from(["parse", "inference", "format", "decode"]),
)
def test_every_dead_letter_is_publishable_and_keeps_the_original(data, attributes, reason, stage):
    message = deadletters.dead_letter_message(data, attributes, reason, stage=stage)
    assert_publishable(message)
    assert deadletters.publish_problem(message) is None
    assert message.attributes["error"] == deadletters.utf8_prefix(reason, 1024)
    assert reason.startswith(message.attributes["error"])
    assert message.attributes["error_stage"] == stage
    original_data, original_attributes, cut_from = deadletters.original_message(message)
    assert original_attributes == attributes
    if cut_from is None:
        assert original_data == data
    else:
        assert cut_from == len(data) and data.startswith(original_data)
        assert len(original_data) > 7_000_000  # cut only when it had to be


@pytest.mark.parametrize(
    "attributes",
    [
        {f"a{i}": "v" for i in range(99)},  # 99 + ours > 100
        {"error": "the sender's own error", "name": "x"},  # would be overwritten
        {"x" * 257: "key too long"},
    ],
)
def test_attributes_that_do_not_fit_go_into_an_envelope(attributes):
    message = deadletters.dead_letter_message(b"\x00data", attributes, "bad", stage="parse")
    assert message.attributes == {"error": "bad", "error_stage": "parse", "error_envelope": "json"}
    envelope = json.loads(message.data)
    assert envelope["attributes"] == attributes
    assert base64.b64decode(envelope["data"]) == b"\x00data"


def test_97_attributes_stay_beside_ours_unchanged():
    attributes = {f"a{i}": "v" for i in range(97)}
    message = deadletters.dead_letter_message(b"d", attributes, "bad", stage="parse")
    assert message.data == b"d"
    assert message.attributes == {**attributes, "error": "bad", "error_stage": "parse"}


def test_reason_is_cut_at_a_character_boundary():
    message = deadletters.dead_letter_message(b"", {}, "€" * 400, stage="parse")  # 1200 bytes
    assert message.attributes["error"] == "€" * 341  # 1023 bytes: the 342nd would split


def test_publish_problem_names_each_limit():
    ok = PubsubMessage(b"x", {"ID": "7"})
    assert deadletters.publish_problem(ok) is None
    assert "101 attributes" in deadletters.publish_problem(
        PubsubMessage(b"x", {str(i): "" for i in range(101)})
    )
    assert "1025 bytes" in deadletters.publish_problem(PubsubMessage(b"x", {"k": "é" * 512 + "a"}))
    assert "reserved" in deadletters.publish_problem(PubsubMessage(b"x", {"googfoo": "1"}))
    assert "needs data" in deadletters.publish_problem(PubsubMessage(b"", {}))
    assert "10000001 bytes" in deadletters.publish_problem(
        PubsubMessage(b"x" * 10_000_000, {"a": ""})
    )


def test_publish_problem_counts_utf8_bytes_not_characters():
    def problem(data, attributes):
        return deadletters.publish_problem(PubsubMessage(data, attributes))

    assert problem(b"x", {"k": "a" * 1024}) is None
    assert problem(b"x", {"k": "é" * 512}) is None  # 1024 bytes
    assert "1025 bytes" in problem(b"x", {"k": "a" * 1025})
    assert problem(b"x", {"é" * 128: "v"}) is None  # a key of 256 bytes
    assert "257 bytes" in problem(b"x", {"é" * 128 + "a": "v"})
    assert "257 bytes" in problem(b"x", {"a" * 257: "v"})
    assert "not valid UTF-8" in problem(b"x", {"k": "\udc80"})
    assert "not valid UTF-8" in problem(b"x", {"\ud800": "v"})
    # The whole message, attributes in UTF-8 bytes: "é" is two.
    assert problem(b"x" * (10_000_000 - 3), {"k": "é"}) is None
    assert "10000001 bytes" in problem(b"x" * (10_000_000 - 2), {"k": "é"})


def test_outcomes_name_their_input_and_leave_the_message_alone():
    source = PubsubMessage(b"in", {"a": "b"}, message_id="42")
    result = deadletters.answering("42", PubsubMessage(b"out", {"ID": "1"}))
    letter = deadletters.dead_letter(source, "why", stage="parse")
    assert (result.source_id, letter.source_id) == ("42", "42")
    # Nothing only a runner needs rides on what is published.
    assert result.message.message_id is None and letter.message.message_id is None
    assert (result.message.data, result.message.attributes) == (b"out", {"ID": "1"})
    assert letter.message.attributes == {"a": "b", "error": "why", "error_stage": "parse"}


# --- launch checks: outputs differ from the input's topic; what exists ------------------

LAB = "projects/lab-project"


class FakeLookup:
    def __init__(self, topics=(), subscriptions=None, unknown=False):
        self.topics, self.subscriptions, self.unknown = set(topics), subscriptions or {}, unknown

    def topic_exists(self, topic):
        return None if self.unknown else topic in self.topics

    def subscription_topic(self, subscription):
        return None if self.unknown else self.subscriptions.get(subscription, False)


@pytest.mark.parametrize(
    "a, b, same",
    [
        (f"{LAB}/topics/in", f"{LAB}/topics/in", True),
        (f"{LAB}/topics/in", f" {LAB}/topics/in ", True),
        (f"{LAB}/topics/in", f"{LAB}/topics/in/", False),  # not a topic path: never equal
        (f"{LAB}/topics/in", f"{LAB}/topics/In", False),
        (f"{LAB}/topics/in", None, False),
    ],
)
def test_same_topic_compares_paths_not_strings(a, b, same):
    assert pubsub.same_topic(a, b) is same


def test_dead_letter_equal_to_the_input_topic_is_refused():
    with pytest.raises(ParameterError, match="--dead_letter: must differ from the input's topic"):
        pubsub.check_streaming_topics(
            f"{LAB}/topics/in",
            f"{LAB}/topics/out",
            f"{LAB}/topics/in",
            on_dataflow=False,
            lookup=FakeLookup(unknown=True),
        )


def test_dead_letter_equal_to_the_topic_behind_the_subscription_is_refused():
    lookup = FakeLookup(
        topics={f"{LAB}/topics/in", f"{LAB}/topics/out"},
        subscriptions={f"{LAB}/subscriptions/in-sub": f"{LAB}/topics/in"},
    )
    with pytest.raises(ParameterError, match=r"--dead_letter: .*topics/in \(the topic of "):
        pubsub.check_streaming_topics(
            f"{LAB}/subscriptions/in-sub",
            f"{LAB}/topics/out",
            f"{LAB}/topics/in",
            on_dataflow=False,
            lookup=lookup,
        )


@pytest.mark.parametrize(
    "source, output, dead, problem",
    [
        (f"{LAB}/subscriptions/gone", f"{LAB}/topics/out", None, "--input: subscription"),
        (f"{LAB}/topics/gone", f"{LAB}/topics/out", None, "--input: topic"),
        (f"{LAB}/topics/in", f"{LAB}/topics/gone", None, "--output: topic"),
        (f"{LAB}/topics/in", f"{LAB}/topics/out", f"{LAB}/topics/gone", "--dead_letter: topic"),
    ],
)
def test_missing_resources_are_refused_when_they_can_be_looked_up(source, output, dead, problem):
    lookup = FakeLookup(topics={f"{LAB}/topics/in", f"{LAB}/topics/out"})
    with pytest.raises(ParameterError, match=problem + r" .* does not exist"):
        pubsub.check_streaming_topics(source, output, dead, on_dataflow=False, lookup=lookup)


def test_nothing_is_refused_when_nothing_can_be_looked_up():
    pubsub.check_streaming_topics(
        f"{LAB}/subscriptions/s",
        f"{LAB}/topics/out",
        f"{LAB}/topics/dead",
        on_dataflow=False,
        lookup=FakeLookup(unknown=True),
    )


def test_lookup_without_credentials_skips_quickly(monkeypatch):
    import google.auth

    def no_credentials():
        raise google.auth.exceptions.DefaultCredentialsError("none")

    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    monkeypatch.setattr(google.auth, "default", no_credentials)
    lookup = pubsub.PubsubLookup()
    assert "no Google credentials" in lookup.skip_reason
    assert lookup.topic_exists(f"{LAB}/topics/x") is None
    assert lookup.subscription_topic(f"{LAB}/subscriptions/x") is None


def test_a_dead_letter_of_something_that_is_not_a_message_still_says_why():
    odd = PubsubMessage(b"x", None, message_id="9")
    odd.attributes = ["not", "a", "mapping"]
    source_id, message = deadletters.dead_letter(odd, "bad", stage="parse")
    assert source_id == "9" and message.attributes["error_stage"] == "parse"
    assert message.attributes["error"].startswith("bad; and the message could not be kept")
    assert deadletters.publish_problem(message) is None


def test_a_dataflow_launch_never_asks_the_emulator(monkeypatch):
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:1")
    assert pubsub.PubsubLookup(on_dataflow=False).skip_reason is None
    lookup = pubsub.PubsubLookup(on_dataflow=True)
    assert "Dataflow job reads Google's Pub/Sub" in lookup.skip_reason
    assert lookup.topic_exists(f"{LAB}/topics/x") is None


# ---- the input pickers ----------------------------------------------------------------------


def _args(**given):
    import argparse

    values = {name: None for name in INPUT_NAMES}
    values.update(given)
    return argparse.Namespace(**values)


SUB = "projects/lab-project/subscriptions/mnist_image-sub"
TOPIC = "projects/lab-project/topics/mnist_image"


@pytest.mark.parametrize(
    "given, name",
    [
        ({"input_subscription": SUB}, "input_subscription"),
        ({"input_topic": TOPIC}, "input_topic"),
        ({"input": SUB}, "input"),
        ({"input": TOPIC}, "input"),
    ],
)
def test_exactly_one_input_becomes_args_input(given, name):
    args = _args(**given)
    assert pubsub.resolve_input(args) == name
    assert args.input == next(iter(given.values()))


@pytest.mark.parametrize(
    "given, message",
    [
        ({}, "--input_subscription: is required"),
        (
            {"input_subscription": SUB, "input_topic": TOPIC},
            "--input_topic: give one input, not both --input_subscription and --input_topic",
        ),
        ({"input_topic": TOPIC, "input": SUB}, "--input: give one input"),
        ({"input_subscription": TOPIC}, "--input_subscription: expected projects/PROJECT/subscr"),
        ({"input_topic": SUB}, "--input_topic: expected projects/PROJECT/topics/TOPIC"),
    ],
)
def test_inputs_other_than_exactly_one_are_refused_naming_the_parameter(given, message):
    with pytest.raises(ParameterError) as refused:
        pubsub.resolve_input(_args(**given))
    assert str(refused.value).startswith(message)


def test_dead_letter_equal_to_the_output_is_refused():
    from types import SimpleNamespace

    def args(dead_letter):
        return SimpleNamespace(
            input_subscription=f"{LAB}/subscriptions/in-sub",
            output=f"{LAB}/topics/out",
            dead_letter=dead_letter,
        )

    with pytest.raises(ParameterError, match="--dead_letter: must differ from --output"):
        pubsub.check_stream_parameters(args(f"{LAB}/topics/out"))
    assert pubsub.check_stream_parameters(args(f"{LAB}/topics/dead")) == "input_subscription"


# ---- issue 18: what Pub/Sub itself refuses, the launch refuses ------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "projects/lab-project-/topics/frames",  # a project ID does not end with -
        "projects/lab-project/topics/goog-frames",
        "projects/lab-project/topics/fr\u00e4mes",
        "projects/lab-project/topics/frames\n",
    ],
)
def test_a_topic_pubsub_would_refuse_is_refused_at_launch(value):
    with pytest.raises(ParameterError) as error:
        pubsub.check_topic("output", value)
    assert error.value.name == "output" and "\n" not in str(error.value)


def test_an_invalid_argument_answer_is_a_refusal_not_a_shrug(monkeypatch):
    """Pub/Sub answering InvalidArgument to a lookup means no such name can exist: the launch
    refuses the parameter (it used to log "cannot tell" and start the job)."""
    from google.api_core import exceptions

    class Publisher:
        def get_topic(self, request, retry, timeout):
            raise exceptions.InvalidArgument("Invalid [topics] name: (name=x)")

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:1")
    lookup = pubsub.PubsubLookup()
    lookup._publisher = Publisher()
    answer = lookup.topic_exists(f"{LAB}/topics/frames")
    assert isinstance(answer, pubsub.Refused) and "Invalid [topics] name" in answer.reason
    with pytest.raises(ParameterError, match=r"--output: Pub/Sub refuses the topic name"):
        pubsub.check_streaming_topics(
            f"{LAB}/topics/in",
            f"{LAB}/topics/frames",
            None,
            on_dataflow=False,
            lookup=_RefusingOutput(),
        )


class _RefusingOutput(FakeLookup):
    def __init__(self):
        super().__init__(topics={f"{LAB}/topics/in"})

    def topic_exists(self, topic):
        if topic.endswith("/frames"):
            return pubsub.Refused("Invalid [topics] name")
        return super().topic_exists(topic)
