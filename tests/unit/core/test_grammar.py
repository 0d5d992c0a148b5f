"""The grammar's pure properties (issue 18): a number's regex is its range, a refusal says which
rule in one line, the rules beyond the form are checked at launch, every default and lab value
passes its own grammar. The console-against-launch agreement, which runs JavaScript (node),
is tests/integration/test_console_agreement.py; the values both use are
tests/support/grammar_values.py.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import pytest
from hypothesis import given

from pipelines.core import grammar, names
from tests.support.grammar_values import PARAMETERS, numbers_around, numbers_range


@pytest.mark.parametrize(
    ("low", "high"),
    [
        (0, 1),
        (1, 100_000),
        (-10, 10),
        (0.1, 100),
        (0.5, 2.5),
        (0, 1080),
        (1.575, 1.6),
        (-0.049, 0.05),
    ],
)
def test_a_number_is_accepted_exactly_when_it_is_in_its_range(low, high):
    kind = grammar.number_kind(low, high)

    @given(numbers_around(low, high, integer=False))
    def in_range(text):
        try:
            value = Decimal(text)
            well_formed = text == text.strip() and "e" not in text.lower() and "_" not in text
            well_formed = well_formed and value.is_finite() and text.isascii()
        except InvalidOperation:
            well_formed = False
        expected = well_formed and Decimal(repr(low)) <= value <= Decimal(repr(high))
        assert kind.accepts(text) == expected, text

    in_range()


def test_every_default_and_every_help_range_agree_with_the_regex():
    for _, p in PARAMETERS:
        if p.default is not None:
            assert p.kind.accepts(p.default), p.name
        if p.kind.name.startswith("number"):
            low, high = numbers_range(p)
            said = (f"From {grammar.plain(low)} to {grammar.plain(high)}.", f"({low} to {high})")
            assert any(s in p.help_text for s in said), p.name
            assert p.kind.accepts(grammar.plain(low)) and p.kind.accepts(grammar.plain(high))


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("gs://" + ".".join(["a" * 60] * 4) + "/x", "222"),
        ("gs://192.168.5.4/x", "IP address"),
        ("gs://my-google-bucket/x", "google"),
        ("gs://my-g00gle-bucket/x", "g00gle"),
        ("gs://bucket/" + "\u00e4" * 600, "bytes"),
        ("gs://bucket/.well-known/acme-challenge/x", "reserved"),
        ("gs://bucket/a\udcffb", "Unicode"),
    ],
)
def test_the_rules_beyond_the_form_are_checked_at_launch(value, rule):
    """What the console's regex cannot state (names.BEYOND_THE_FORM) the launch refuses."""
    assert grammar.GCS_FILE.accepts(value)
    problem = names.gcs_problem(value)
    assert problem and rule in problem, problem


@pytest.mark.parametrize(
    ("kind", "value", "says"),
    [
        (grammar.PUBSUB_TOPIC, "projects/my-project-/topics/frames", "must not end with '-'"),
        (grammar.PUBSUB_TOPIC, "projects/my-project/topics/goog-x", "reserved 'goog'"),
        (grammar.PUBSUB_TOPIC, "projects/my-project/topics/1abc", "must not start with '1'"),
        (grammar.PUBSUB_TOPIC, "projects/my-project/topics/ab", "2 characters (3 to 255)"),
        (grammar.PUBSUB_TOPIC, "projects/my-project/topics/a b", "has ' '"),
        (
            grammar.PUBSUB_TOPIC,
            "projects/my-project/subscriptions/abc",
            "projects/PROJECT/topics/TOPIC",
        ),
        (grammar.GCS_PREFIX, "gs://goog-b/x", "reserved 'goog'"),
        (grammar.GCS_PREFIX, "gs://bucket/out/", "ends with /"),
        (grammar.GCS_PREFIX, "gs://bucket/a\nb", "control characters"),
        (grammar.BIGQUERY_TABLE, "my-project:MN-IST.Images", "dataset 'MN-IST'"),
        (grammar.BIGQUERY_TABLE, "my-project:MNIST.Images;", "table name 'Images;'"),
        (grammar.number_kind(0, 1), "2", "from 0 to 1"),
        (grammar.number_kind(0, 1), "1e-1", "without an exponent"),
    ],
)
def test_a_refusal_says_which_rule_in_one_line(kind, value, says):
    problem = kind.problem(value)
    assert problem and says in problem and "\n" not in problem, problem


class _LabNames(dict):
    def __missing__(self, key):
        return {"project": "my-project", "bucket": "my-project-bucket"}.get(key, "Lab_name")


def test_the_lab_values_ops_sets_up_pass_their_own_grammar():
    for template, p in PARAMETERS:
        if p.lab is not None:
            value = p.lab.format_map(_LabNames())
            assert p.kind.problem(value) is None, (template, p.name, value)
