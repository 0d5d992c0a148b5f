"""pipelines/core/json_text.py: JSON nested too deep is a ValueError every reader handles, and
the readers of JSON they did not write go through it rather than catching RecursionError one
by one."""

from __future__ import annotations

import ast
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.core.json_text import NestedTooDeep, read_json
from tests.support.processes import REPO

TOO_DEEP = [
    "[" * 100_000,
    "[" * 100_000 + "]" * 100_000,
    '{"a":' * 100_000 + "1" + "}" * 100_000,
    '[{"a":' * 50_000,
    b"[" * 100_000,
]

# Readers that still catch json's RecursionError themselves, and why they are not converted.
CATCHING_THEIR_OWN = {
    # Cloud Build runs it as `python3 tools/register_template.py` in gcloud's image, with
    # tools/ (not the repository) on sys.path: it cannot import pipelines.
    "tools/register_template.py": "standard library only",
}


@pytest.mark.parametrize("text", TOO_DEEP, ids=lambda t: repr(t[:8]))
def test_json_nested_too_deep_is_a_value_error_saying_so(text):
    with pytest.raises(RecursionError):
        json.loads(text)  # what every reader would otherwise have to catch
    with pytest.raises(NestedTooDeep, match="^JSON nested too deep$") as raised:
        read_json(text)
    assert isinstance(raised.value, ValueError)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@given(_JSON)
def test_any_other_json_reads_as_json_loads_reads_it(value):
    text = json.dumps(value)
    assert read_json(text) == json.loads(text)
    assert read_json(text.encode("utf-8")) == json.loads(text)


def test_json_errors_and_options_are_jsons_own():
    with pytest.raises(json.JSONDecodeError) as raised:
        read_json('{"a": 1')
    assert not isinstance(raised.value, NestedTooDeep)
    with pytest.raises(UnicodeDecodeError):
        read_json(b'"\xff"')
    assert math.isnan(read_json("NaN"))

    def no_constant(name):
        raise ValueError(f"{name} is not JSON")

    with pytest.raises(ValueError, match="NaN is not JSON"):
        read_json("[NaN]", parse_constant=no_constant)
    assert read_json('{"a": 1}', object_hook=lambda d: sorted(d)) == ["a"]


def _catches_recursion_error(path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for handler in ast.walk(tree):
        if isinstance(handler, ast.ExceptHandler) and handler.type is not None:
            names = {n.id for n in ast.walk(handler.type) if isinstance(n, ast.Name)}
            if "RecursionError" in names:
                return True
    return False


def test_readers_of_json_go_through_the_loader_not_their_own_recursion_error():
    catching = {
        str(path.relative_to(REPO))
        for folder in ("pipelines", "tools", "ops", "local_runtime")
        for path in (REPO / folder).rglob("*.py")
        if _catches_recursion_error(path)
    }
    assert "pipelines/core/json_text.py" in catching  # the guard sees the one it must see
    stray = catching - {"pipelines/core/json_text.py", *CATCHING_THEIR_OWN}
    assert not stray, f"read JSON with pipelines.core.json_text.read_json instead: {stray}"
