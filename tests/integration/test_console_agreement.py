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

import pytest
from apache_beam.io.gcp.pubsub import parse_subscription, parse_topic
from hypothesis import given, note

from pipelines.core import grammar
from tests.support.grammar_values import IDS, PARAMETERS, strategy_for
from tests.support.processes import REPO


def console_regex(template: str, name: str) -> str:
    metadata = json.loads((REPO / "metadata" / f"{template}.json").read_text(encoding="utf-8"))
    (regex,) = next(p for p in metadata["parameters"] if p["name"] == name)["regexes"]
    return regex


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
