"""Template parameters: declared once, used for argparse, checks and the console metadata.

Each job lists its `Parameter`s; `add_to_parser` turns them into command-line options and
`Template.metadata` into the JSON that `gcloud dataflow flex-template build --metadata-file`
reads. `metadata/<job>.json` is generated from here (`python -m tools.generate`), and a
test fails when the committed files drift from the code.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from pipelines.core import names
from pipelines.core.grammar import Kind, number_kind
from pipelines.core.regex import plain


class ParameterError(ValueError):
    """A template parameter that is missing or malformed; the message names it."""

    def __init__(self, name: str, problem: str):
        super().__init__(f"--{name}: {problem}")
        self.name = name


@dataclass(frozen=True)
class Parameter:
    """One template parameter, as the console form, gcloud and argparse all see it."""

    name: str
    label: str
    help_text: str
    param_type: str = "TEXT"
    optional: bool = False
    default: str | None = None
    # The syntax (pipelines/core/grammar.py): the console's regex and the launch's check.
    kind: Kind | None = None
    # argparse conversion (str -> value); metadata always carries strings.
    type: Callable[[str], object] = str
    enum_options: tuple[tuple[str, str], ...] = ()
    group: str | None = None
    extra: dict = field(default_factory=dict)
    # The course lab's value, as a str.format template over {project}, {bucket}, {dataset},
    # {images_table} and {predict_table}: what `ops/flex run` passes, and where `ops/flex
    # setup` derives the lab's topics from. Not part of the console metadata.
    lab: str | None = None

    def metadata(self) -> dict:
        entry = {
            "name": self.name,
            "label": self.label,
            "helpText": self.help_text,
            "isOptional": self.optional,
            "paramType": self.param_type,
        }
        if self.kind is not None:
            entry["regexes"] = [self.kind.console_regex()]
        if self.default is not None:
            entry["defaultValue"] = self.default
        if self.enum_options:
            entry["enumOptions"] = [
                {"value": value, "label": label} for value, label in self.enum_options
            ]
        if self.group:
            entry["groupName"] = self.group
        entry.update(self.extra)
        return entry


def number_parameter(
    name: str,
    label: str,
    help_text: str,
    default,
    low,
    high,
    type=float,
    *,
    group: str | None = None,
) -> Parameter:
    """An optional number from `low` to `high`, both inclusive: the range is in its kind (so
    in the console's regex and the launch's check) and in its help text, as a last sentence
    "From LOW to HIGH." or, when the text places it, where it says `{low}` and `{high}` (and
    the default where it says `{default}`), so that no text states these numbers by hand."""
    kind = number_kind(low, high, integer=type is int)
    # repr() of a float is the shortest text that reads back as the same float, so the
    # console's default and the parser's default agree exactly.
    default_text = repr(default)
    placed = {key for key in ("low", "high") if f"{{{key}}}" in help_text}
    if placed:
        if len(placed) == 1:
            raise ValueError(f"{name}: its help text places {{low}} or {{high}}, not both")
        help_text = help_text.format(low=plain(low), high=plain(high), default=default_text)
    else:
        help_text = help_text.replace("{default}", default_text)
        help_text = f"{help_text} From {plain(low)} to {plain(high)}."
    return Parameter(
        name=name,
        label=label,
        help_text=help_text,
        param_type="NUMBER",
        optional=True,
        default=default_text,
        kind=kind,
        # the grammar first (the range included), so float() and int() cannot fail
        type=kind.argparse_type(type),
        group=group,
    )


@dataclass(frozen=True)
class Template:
    """What the console shows about a job, and whether Dataflow runs it as a stream."""

    name: str
    description: str
    parameters: tuple[Parameter, ...]
    streaming: bool = False

    def metadata(self) -> dict:
        data = {
            "name": self.name,
            "description": self.description,
            "parameters": [p.metadata() for p in self.parameters],
        }
        if self.streaming:
            # gcloud drops these when it renders the spec; tools/register_template.py puts them
            # back.
            data.update(
                {
                    "streaming": True,
                    "supportsAtLeastOnce": True,
                    "supportsExactlyOnce": True,
                    "defaultStreamingMode": "EXACTLY_ONCE",
                }
            )
        return data


def finite_float(text: str) -> float:
    """argparse type: a finite number. float() alone takes 'nan' and 'inf', which no
    measurement can be and which JSON outputs cannot carry. (Template parameters use their
    kind's grammar instead; the tools' own options use this.)"""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


class OneLineErrorParser(argparse.ArgumentParser):
    """Reports a bad command line as one line naming the parameter, exit status 2.
    Abbreviations are off: `--out` must not quietly mean `--output` (or `--output2`)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_to_parser(parser: argparse.ArgumentParser, parameters) -> None:
    for p in parameters:
        parser.add_argument(
            f"--{p.name}",
            dest=p.name,
            type=p.type,
            default=p.type(p.default) if p.default is not None else None,
            choices=[value for value, _ in p.enum_options] or None,
            help=p.help_text.replace("%", "%%"),  # argparse formats help with %
        )


def check_required(args: argparse.Namespace, parameters) -> None:
    """Required parameters are checked here, not by argparse, to say what was expected."""
    for p in parameters:
        if not p.optional and getattr(args, p.name) in (None, ""):
            raise ParameterError(p.name, f"is required: {p.help_text}")


def check_value(p: Parameter, text: str, *, on_dataflow: bool) -> None:
    """One value given as text, checked as the launch checks it: its argparse type and
    choices, then check_required and check_syntax. For what passes a value on to a launch
    without parsing a command line (ops/flex --param)."""
    try:
        value = p.type(text)
    except (argparse.ArgumentTypeError, TypeError, ValueError) as error:
        raise ParameterError(p.name, str(error) or f"invalid value {text!r}") from None
    choices = [choice for choice, _ in p.enum_options]
    if choices and value not in choices:
        raise ParameterError(p.name, f"invalid choice {text!r} (choose from {', '.join(choices)})")
    args = argparse.Namespace(**{p.name: value})
    check_required(args, [p])
    check_syntax(args, [p], on_dataflow=on_dataflow)


def check_syntax(args: argparse.Namespace, parameters, *, on_dataflow: bool) -> None:
    """Every given text value against its kind's grammar (exactly the console's regex; on a
    local run a location may also be a local path), then the naming rules the regex cannot
    state (names.BEYOND_THE_FORM). Numbers were checked by their argparse type already."""
    for p in parameters:
        value = getattr(args, p.name, None)
        if isinstance(value, list):
            # argparse reads `--name=--` as an empty list (it drops "--" from every value),
            # which no check below would see.
            raise ParameterError(p.name, "got '--', which is not a value")
        if p.kind is None or not isinstance(value, str) or value == "":
            continue
        problem = p.kind.problem(value, on_dataflow=on_dataflow)
        if problem is None and value.startswith("gs://") and p.kind.accepts(value):
            problem = names.gcs_problem(value)
        if problem:
            raise ParameterError(p.name, problem)
