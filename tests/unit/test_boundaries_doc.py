"""docs/boundaries.md names, for every place the project reads what it did not make, the
tests that feed it hostile forms: each one named there exists (its file, and a test function
of that name in it), so the table cannot name a test that is not there."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

from tests.support.processes import REPO

DOC = REPO / "docs" / "boundaries.md"
TESTS = REPO / "tests"
# In the tests column, in the order written: a test file (a path from the repository root
# or a bare file name), maybe with ::name; a test name, maybe after :: (in the file named
# last in its row, or anywhere in tests/ when the row names none); `..._end`, the test named
# before with its last words replaced.
TOKEN = re.compile(
    r"(?P<file>(?:tests/[\w./-]+/)?test_\w+\.py)(?:::(?P<in_file>test_\w+))?"
    r"|(?:::)?(?P<name>test_\w+)"
    r"|\.\.\.(?P<tail>_\w+)"
)


def table_rows() -> list[tuple[str, str]]:
    """(section, the last cell) of every row of every table, the header rows left out."""
    rows, section = [], ""
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line[3:]
        elif line.startswith("|") and not re.fullmatch(r"\|[\s|:-]+\|", line):
            cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
            if not cells[-1].lower().startswith("the test"):
                rows.append((section, cells[-1]))
    return rows


@functools.cache
def functions_in(path: Path) -> frozenset[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return frozenset(
        node.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.name.startswith("test_")
    )


def find_file(named: str) -> Path:
    if "/" in named:
        path = REPO / named
        assert path.is_file(), f"{named} does not exist"
        return path
    found = sorted(TESTS.rglob(named))
    assert len(found) == 1, f"{named}: {len(found)} test files of that name"
    return found[0]


def named_tests(cell: str) -> list[tuple[Path | None, list[str]]]:
    """(file or None, the names one of which must be a test in it) of each test in a cell."""
    named, current, last = [], None, None
    for token in TOKEN.finditer(cell):
        if token["file"]:
            current = find_file(token["file"])
            if token["in_file"]:
                last = token["in_file"]
                named.append((current, [last]))
        elif token["name"]:
            last = token["name"]
            named.append((current, [last]))
        else:
            assert last, f"{token.group()} follows no test name"
            words = last.split("_")
            named.append(
                (current, ["_".join(words[:i]) + token["tail"] for i in range(2, len(words))])
            )
    return named


ROWS = table_rows()


def test_the_doc_has_a_section_for_every_kind_of_thing_read():
    sections = {section for section, _ in ROWS}
    for kind in ("BigQuery", "Dead letters", "Model folders", "gcloud", "Text and CSV"):
        assert any(kind in section for section in sections), kind
    for kind in ("Pub/Sub messages", "outputs", "tools", "Environment variables"):
        assert any(kind in section for section in sections), kind


@pytest.mark.parametrize("section, cell", ROWS, ids=[f"{s}-{i}" for i, (s, _) in enumerate(ROWS)])
def test_every_test_the_table_names_exists(section, cell):
    named = named_tests(cell)
    assert named, f"a row of {section!r} names no test"
    everywhere = None
    for path, candidates in named:
        if path is None:  # the row names no file: the test is somewhere in tests/
            everywhere = everywhere or frozenset().union(
                *(functions_in(p) for p in TESTS.rglob("test_*.py"))
            )
            assert any(c in everywhere for c in candidates), f"{candidates[-1]} is no test"
        else:
            assert any(c in functions_in(path) for c in candidates), (
                f"{path.relative_to(REPO)} has no test {candidates[-1]}"
            )


def test_the_checker_catches_a_test_that_is_not_there():
    cell = "`tests/unit/test_boundaries_doc.py::test_no_such_thing`"
    ((path, names),) = named_tests(cell)
    assert path == Path(__file__) and names == ["test_no_such_thing"]
    assert "test_no_such_thing" not in functions_in(path)
    assert "test_every_test_the_table_names_exists" in functions_in(path)
