"""number_parameter (pipelines/core/params.py) is the one builder of number parameters: their
range and default are stated once, in the kind, the help text and the console default alike,
wherever the help text puts them."""

from __future__ import annotations

import argparse
import ast

import pytest

from pipelines.core.params import add_to_parser, number_parameter
from pipelines.mnist.parameters import CHECK_SECONDS_RANGE, MODEL_CHECK_SECONDS
from pipelines.registry import TEMPLATES, job_module
from tests.support.processes import REPO


def test_the_range_ends_the_help_text_unless_the_text_places_it():
    appended = number_parameter("x", "X", "How much.", 0.25, 0, 1)
    assert appended.help_text == "How much. From 0 to 1."
    placed = number_parameter(
        "n", "N", "How many ({low} to {high}); default {default}.", 3, 2, 10_000, type=int
    )
    assert placed.help_text == "How many (2 to 10000); default 3."
    assert placed.default == "3" and placed.kind.accepts("10000")
    assert not placed.kind.accepts("10001") and not placed.kind.accepts("2.5")
    default_only = number_parameter("y", "Y", "How much (default {default}).", 0.5, 0, 1)
    assert default_only.help_text == "How much (default 0.5). From 0 to 1."


def test_a_help_text_placing_one_bound_only_is_refused_where_it_is_declared():
    with pytest.raises(ValueError, match="^n: .*not both"):
        number_parameter("n", "N", "At least {low}.", 3, 2, 10, type=int)


def test_model_check_seconds_keeps_its_help_text_through_the_builder():
    low, high = CHECK_SECONDS_RANGE
    assert MODEL_CHECK_SECONDS.help_text == (
        "With model_pattern: how often each worker looks for a newer model, in seconds "
        f"({low} to {high}). Default: 60."
    )
    parser = argparse.ArgumentParser()
    add_to_parser(parser, [MODEL_CHECK_SECONDS])
    assert parser.parse_args([]).model_check_seconds == 60
    assert parser.parse_args(["--model_check_seconds=86400"]).model_check_seconds == 86_400
    # --help shows the same text (argparse only rewraps it).
    assert " ".join(MODEL_CHECK_SECONDS.help_text.split()) in " ".join(parser.format_help().split())


def _number_parameters_declared_by_hand() -> list[str]:
    found = []
    for path in sorted((REPO / "pipelines").rglob("*.py")):
        if path == REPO / "pipelines" / "core" / "params.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "Parameter"
                and any(
                    k.arg == "param_type" and getattr(k.value, "value", None) == "NUMBER"
                    for k in node.keywords
                )
            ):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def test_every_number_parameter_goes_through_number_parameter():
    assert not _number_parameters_declared_by_hand()
    numbers = {
        p.name: p
        for name in TEMPLATES
        for p in job_module(name).TEMPLATE.parameters
        if p.param_type == "NUMBER"
    }
    assert "model_check_seconds" in numbers  # the check sees the one it was written for
    for p in numbers.values():
        # What the builder makes of every one: optional, the default as repr() writes the
        # parsed value, the grammar checked before the conversion.
        assert p.optional and p.kind.name.startswith("number"), p.name
        assert p.default == repr(p.type(p.default)), p.name
        with pytest.raises(argparse.ArgumentTypeError):
            p.type("1e3")
