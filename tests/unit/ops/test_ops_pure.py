"""The pure parts of ops: value rules, shell quoting, the lab's values and topics from the
registry, the parameters flag and job ages."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ops import names
from ops.answers import Wrong, job, job_list
from ops.commands.jobs import age, parameters_flag
from ops.gcloud import quote_command, quote_word
from ops.lab import Catalog
from ops.names import Refused

# --- quoting -----------------------------------------------------------------------------


@given(st.lists(st.text(min_size=0, max_size=40), min_size=1, max_size=6))
def test_a_printed_command_splits_back_into_the_same_words(words):
    # What a dry run prints is what a real run executes, once pasted into a shell.
    assert shlex.split(quote_command(words)) == words


def test_safe_words_stay_bare_and_only_a_flag_value_is_quoted():
    assert quote_word("--project=lab-1") == "--project=lab-1"
    assert quote_word("--description=a b") == "--description='a b'"
    assert quote_word("it's") == "'it'\\''s'"


# --- value rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule, good, bad",
    [
        (names.project_id, ["lab-project-123", "abcdef"],
         ["Bad_Project", "abcde", "a" * 31, "1abcdef", "abcdef-"]),
        (names.bucket, ["lab-bucket", "a.b_c-d"], ["Bad", "-ab", "ab", "googlers", "my-google-x"]),
        (names.region, ["us-central1", "northamerica-northeast2"],
         ["us", "US-central1", "us central1"]),
        (names.job_name, ["a", "mnist-stream", "a" * 1024], ["A", "1a", "a-", "a_b", "a" * 1025]),
        (names.tag, ["0f3c2a9e-1b2d", "v_1"], ["V1", "a b", "a" * 64]),
    ],
)  # fmt: skip
def test_each_rule_takes_what_google_takes(rule, good, bad):
    for value in good:
        assert rule(value) == value
    for value in bad:
        with pytest.raises(Refused):
            rule(value)


@given(st.text(min_size=1, max_size=5000))
def test_a_refusal_is_one_short_line_whatever_the_value(value):
    for rule in (names.project_id, names.bucket, names.region, names.job_name, names.tag):
        try:
            rule(value)
        except Refused as refused:
            message = str(refused)
            assert "\n" not in message and "\r" not in message
            assert len(message) < 300


def test_shown_cuts_and_escapes():
    assert names.shown("a\nb") == "'a\\nb'"
    assert names.shown("x" * 100) == f"'{'x' * 40}...' (100 characters)"


def test_one_of_suggests_the_near_miss():
    with pytest.raises(Refused, match="did you mean wordcount\\?"):
        names.one_of("template", "wordcont", ["wordcount", "mnist_batch"])
    with pytest.raises(Refused) as far:
        names.one_of("template", "zzz", ["wordcount"])
    assert "did you mean" not in str(far.value)


@pytest.mark.parametrize("value", ["1", "9999"])
def test_whole_numbers_in_range(value):
    assert names.whole_number("--n", value, 1, 9999) == int(value)


@pytest.mark.parametrize("value", ["0", "10000", "01", "1.0", " 1", "１"])
def test_whole_numbers_out_of_range_or_not_plain(value):
    with pytest.raises(Refused):
        names.whole_number("--n", value, 1, 9999)


# --- the lab's values, from the registry -------------------------------------------------


def test_the_lab_values_and_topics_come_from_the_templates():
    catalog = Catalog.from_registry()
    lab = {
        "project": "p1",
        "bucket": "b1",
        "dataset": "D",
        "images_table": "I",
        "predict_table": "P",
    }
    assert catalog["wordcount"].lab_values(lab)["output"] == "gs://b1/result/wordcount"
    assert catalog["mnist_batch"].lab_values(lab) == {"input": "p1:D.I", "output": "p1:D.P"}
    stream = catalog["mnist_stream"]
    assert (
        stream.lab_values(lab)["input_subscription"] == "projects/p1/subscriptions/mnist_image-sub"
    )
    assert stream.input_topic() == "mnist_image"
    assert stream.dead_letter_topic() == "mnist_dead_letter"
    assert catalog.topics() == [
        "mnist_image",
        "mnist_predict",
        "mnist_dead_letter",
        "camera_frames",
        "pedestrian_depth",
        "pedestrian_dead_letter",
    ]
    assert catalog.subscriptions_read() == ["mnist_image-sub", "camera_frames-sub"]
    # Every lab value names a parameter the template declares, and formats without a gap.
    for template in catalog.templates.values():
        assert set(template.lab) <= set(template.parameters)
        assert "{" not in "".join(template.lab_values(lab).values())


# --- launch details ----------------------------------------------------------------------


def test_parameters_flag_switches_the_separator_for_commas():
    assert parameters_flag({}) == []
    assert parameters_flag({"a": "1", "b": "2"}) == ["--parameters=a=1,b=2"]
    assert parameters_flag({"a": "1,2", "b": "x"}) == ["--parameters=^~^a=1,2~b=x"]
    assert parameters_flag({"a": "1,~", "b": "x"}) == ["--parameters=^|^a=1,~|b=x"]
    with pytest.raises(Refused):
        parameters_flag({"a": ",~|;#!"})


def test_age_and_step_names():
    now = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    assert age("2026-01-01 00:00:00", now) == "1d3h"
    assert age("2026-01-02 01:00:00", now) == "2h04m"
    assert age("yesterday", now) == "?"
    transforms = [{"name": n} for n in ("Read", "Classify/Parse", "Classify", "", "Publish")]
    described = {"id": "1", "pipelineDescription": {"originalPipelineTransform": transforms}}
    assert job(described).steps == ("Classify", "Publish", "Read")


# --- readers of gcloud's answers (issue 26): odd answers give None or nothing, never a crash ---

_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=30)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)


@given(_json)
def test_streaming_mode_reads_any_answer(answer):
    from ops.answers import streaming_mode

    assert streaming_mode(answer) in (True, False, None)
    assert streaming_mode({"environment": answer}) in (True, False, None)


def test_streaming_mode_reads_the_field_then_the_experiment():
    from ops.answers import AT_LEAST_ONCE, streaming_mode

    def env(**fields):
        return {"environment": fields}

    assert streaming_mode(env(streamingMode="STREAMING_MODE_AT_LEAST_ONCE")) is True
    assert streaming_mode(env(streamingMode="STREAMING_MODE_EXACTLY_ONCE")) is False
    assert streaming_mode(env(streamingMode="STREAMING_MODE_UNSPECIFIED")) is None
    assert streaming_mode(env(experiments=[AT_LEAST_ONCE])) is True
    assert streaming_mode(env(serviceOptions=[AT_LEAST_ONCE])) is True
    assert streaming_mode({}) is None


_DATED = st.sampled_from(["20250101_RC00", "20260101_RC00", "20260101_RC01", "20991231_RC99"])
_IMAGES = st.lists(
    st.fixed_dictionaries(
        {"digest": st.sampled_from(["sha256:aa", "sha256:bb", "sha256:cc"])},
        optional={"tags": st.none() | st.lists(_DATED | st.sampled_from(["latest", "2026"]))},
    ),
    max_size=4,
)
# One thing off in a listing: what newer_tags no longer checks, as answers.image_tags refuses it.
_ODD = st.sampled_from(
    [
        ("digest", None),
        ("digest", ""),
        ("digest", 7),
        ("tags", "20991231_RC99"),
        ("tags", ["20991231_RC99", 20991231]),
        ("tags", {"20991231_RC99": 1}),
    ]
)


@given(_IMAGES, st.sampled_from(["20260101_RC00", "", "2"]) | st.text(max_size=14))
def test_newer_tags_are_the_dated_tags_after_the_pin(images, current):
    from ops.answers import image_tags
    from ops.commands.launcher import DATED, newer_tags

    newer = newer_tags(image_tags(images), current)
    listed = {(t, image["digest"]) for image in images for t in image.get("tags") or []}
    assert {t for t, _ in newer} == {t for t, _ in listed if DATED.fullmatch(t) and t > current}
    assert set(newer) <= listed
    assert [t for t, _ in newer] == sorted((t for t, _ in newer), reverse=True)


@given(_IMAGES.filter(bool), st.data())
def test_a_listing_newer_tags_cannot_read_is_refused_by_the_reader_before_it(images, data):
    from ops.answers import image_tags

    which = data.draw(st.integers(0, len(images) - 1))
    key, value = data.draw(_ODD)
    odd = [dict(image) for image in images]
    if value is None:
        odd[which].pop(key, None)
    else:
        odd[which][key] = value
    with pytest.raises(Wrong):
        image_tags(odd)


def test_the_dockerfile_has_one_launcher_pin_the_launcher_command_reads():
    from ops.commands.launcher import DATED, DOCKERFILE, pinned

    name, tag = pinned(DOCKERFILE.read_text())
    assert name == "gcr.io/dataflow-templates-base/python311-template-launcher-base"
    assert DATED.fullmatch(tag)


@given(st.lists(_json, max_size=5))
def test_overdue_reads_any_listing(listing):
    from types import SimpleNamespace

    from ops.commands.jobs import overdue

    try:
        jobs = job_list(listing)  # what ops/flex jobs passes it: a listing its reader took
    except Wrong:
        return
    ctx = SimpleNamespace(settings=SimpleNamespace(max_hours=1))
    for line in overdue(ctx, jobs, datetime(2026, 12, 7, tzinfo=UTC)):
        assert line.startswith("OVER 1 h: stream job ")
