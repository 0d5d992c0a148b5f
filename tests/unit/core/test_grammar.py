"""The console's regex and the launch's syntax check agree on every value, for every parameter
of every template (issue 18): the regex as metadata/*.json gives it to the console, run by
JavaScript itself, against `Kind.problem`, which the launch runs.

Values are generated valid by construction (from the kind's own grammar, and for numbers
around the range's bounds) and invalid by mutation: characters inserted, replaced or removed,
lengths pushed past their limits, line breaks, spaces, non-ASCII and astral characters, lone
surrogates. 1,000 examples per parameter with CI=true (hypothesis profile "ci", tests/conftest.py).
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation

import pytest
from apache_beam.io.gcp.pubsub import parse_subscription, parse_topic
from hypothesis import given, note
from hypothesis import strategies as st

from pipelines.core import grammar, names
from pipelines.registry import TEMPLATES, job_module
from tests.support.processes import REPO

PARAMETERS = [
    (template, p)
    for template in sorted(TEMPLATES)
    for p in job_module(template).TEMPLATE.parameters
    if p.kind is not None
]
IDS = [f"{template}-{p.name}" for template, p in PARAMETERS]


def console_regex(template: str, name: str) -> str:
    metadata = json.loads((REPO / "metadata" / f"{template}.json").read_text(encoding="utf-8"))
    (regex,) = next(p for p in metadata["parameters"] if p["name"] == name)["regexes"]
    return regex


@pytest.fixture(scope="module")
def javascript():
    try:
        from tests.support.jsregex import JavaScriptRegexes

        engine = JavaScriptRegexes()
    except FileNotFoundError as missing:
        pytest.skip(str(missing))
    yield engine
    engine.close()


# Characters a careless user (or a copy from a web page) brings along.
TROUBLE = st.sampled_from(
    list("\n\r\t /:.-_~+%*?gG0aZ;,'\"\\@#$&()[]{}|^=<>!")
    + ["\x00", "\x7f", " ", "\u00e4", "\u00a0", "\u2028", "\ufeff", "\U0001f600", "\ud800"]
)


@st.composite
def mutated(draw, valid: st.SearchStrategy[str]) -> str:
    """A valid value, then a few edits that may (or may not) make it invalid."""
    value = draw(valid)
    for _ in range(draw(st.integers(1, 3))):
        edit = draw(
            st.sampled_from(["insert", "replace", "delete", "cut", "grow", "end", "start", "case"])
        )
        at = draw(st.integers(0, len(value)))
        if edit == "insert":
            value = value[:at] + draw(TROUBLE) + value[at:]
        elif edit == "replace" and value:
            at = min(at, len(value) - 1)
            value = value[:at] + draw(TROUBLE | st.characters()) + value[at + 1 :]
        elif edit == "delete" and value:
            at = min(at, len(value) - 1)
            value = value[:at] + value[at + 1 :]
        elif edit == "cut":
            value = value[:at]
        elif edit == "grow":  # past a length limit: 64, 223, 256, 1025, ...
            value = (
                value[:at] + draw(TROUBLE | st.just("a")) * draw(st.integers(1, 1100)) + value[at:]
            )
        elif edit == "end":
            value += draw(st.sampled_from(["\n", "\r\n", " ", "/", "-", ".", "goog"]))
        elif edit == "start":
            value = draw(st.sampled_from(["goog", " ", "-", "1", "g00gle", "."])) + value
        else:
            value = value.upper() if draw(st.booleans()) else value.lower()
    return value


def numbers_around(low, high, integer: bool) -> st.SearchStrategy[str]:
    """Numbers near the bounds, written every way float() or int() reads them (and some it
    does not): signs, leading zeros, `5.`, `.5`, exponents, spaces, underscores."""
    low, high = Decimal(repr(low)), Decimal(repr(high))
    bound = st.sampled_from([low, high, Decimal(0)])
    delta = st.decimals(
        min_value=-2, max_value=2, allow_nan=False, allow_infinity=False, places=4
    ) | st.sampled_from([Decimal("0.0001"), Decimal("-0.0001"), Decimal(1), Decimal(-1)])

    @st.composite
    def written(draw) -> str:
        value = draw(bound) + draw(delta)
        if integer:
            value = value.to_integral_value()
        text = format(value, "f")
        style = draw(st.sampled_from(["plain", "plus", "zeros", "dot", "lead-dot", "exp", "odd"]))
        if style == "plus" and not text.startswith("-"):
            text = "+" + text
        elif style == "zeros":
            sign = "-" if text.startswith("-") else ""
            text = sign + "00" + text.lstrip("-")
        elif style == "dot" and "." not in text:
            text += "."
        elif style == "lead-dot" and text.lstrip("-").startswith("0."):
            text = text.replace("0.", ".", 1)
        elif style == "exp":
            text = f"{float(value):e}"
        elif style == "odd":
            text = draw(st.sampled_from([" ", "_", "\n", "e0", "nan", "inf", "-", "+", "٣"])).join(
                [text, ""] if draw(st.booleans()) else ["", text]
            )
        return text

    return written()


def strategy_for(kind, parameter) -> st.SearchStrategy[str]:
    if kind.name.startswith("number"):
        low, high = numbers_range(parameter)
        valid = numbers_around(low, high, integer="whole" in kind.expected)
        return valid | mutated(valid)
    valid = st.from_regex(kind.body, fullmatch=True)
    return valid | mutated(valid) | st.text(max_size=40)


def numbers_range(parameter):
    return parameter.kind.bounds


@pytest.mark.parametrize(("template", "parameter"), PARAMETERS, ids=IDS)
def test_console_regex_and_launch_syntax_agree(template, parameter, javascript):
    regex = console_regex(template, parameter.name)
    kind = parameter.kind

    @given(strategy_for(kind, parameter))
    def agree(value):
        note(f"value={value!r}")
        console = javascript.accepts(regex, value)
        launch = kind.problem(value, on_dataflow=True)
        assert console == (launch is None), (value, launch)
        if launch is not None:
            assert "\n" not in launch  # one line, whatever the value holds
        elif kind in (grammar.PUBSUB_TOPIC, grammar.PUBSUB_SUBSCRIPTION):
            # what the grammar takes, Beam's own parser (run while the graph is built) takes
            (parse_subscription if "/subscriptions/" in value else parse_topic)(value)

    agree()


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
