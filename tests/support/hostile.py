"""Hostile forms for the property tests of the readers docs/boundaries.md lists: any JSON
(NaN and infinities included, as Python's json writes them), documents shaped like the
expected one with any values, nesting past the recursion limit, and any bytes."""

from __future__ import annotations

import json
import sys

from hypothesis import strategies as st

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**70)
    | st.floats()
    | st.text(max_size=20)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
# Deeper than the interpreter's recursion limit: json's C scanner recurses once per level.
TOO_DEEP = st.sampled_from([b"[", b'{"a":']).map(
    lambda open_: open_ * (sys.getrecursionlimit() + 10)
)


def documents(fields, values=JSON):
    """JSON objects (as bytes) with some of `fields`, each any value, and maybe others."""
    keys = st.sampled_from(list(fields)) | st.text(max_size=6)
    return st.dictionaries(keys, values, max_size=len(fields) + 2).map(
        lambda document: json.dumps(document).encode("utf-8")
    )


def hostile_bytes(fields=()):
    """Any bytes, any JSON, documents with `fields`, and nesting too deep."""
    anything = (
        st.binary(max_size=200)
        | JSON.map(lambda value: json.dumps(value).encode("utf-8"))
        | TOO_DEEP
    )
    return anything | documents(fields) if fields else anything


def one_line(message: str) -> None:
    """What a reader says about a hostile form: one short line."""
    assert message and "\n" not in message and "\r" not in message, message
    assert len(message) < 400, message
