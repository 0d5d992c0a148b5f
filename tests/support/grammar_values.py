"""Values for the grammar's property tests (tests/unit/core/test_grammar.py and
tests/integration/test_console_agreement.py): every parameter that has a kind, values valid by
construction (from the kind's own grammar, numbers around their range's bounds) and invalid by
mutation (characters inserted, replaced or removed, lengths past their limits, line breaks,
spaces, non-ASCII and astral characters, lone surrogates)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import strategies as st

from pipelines.registry import TEMPLATES, job_module

PARAMETERS = [
    (template, p)
    for template in sorted(TEMPLATES)
    for p in job_module(template).TEMPLATE.parameters
    if p.kind is not None
]
IDS = [f"{template}-{p.name}" for template, p in PARAMETERS]


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
