"""The README stays a page a newcomer finishes, and no link in the docs leads nowhere."""

from __future__ import annotations

import re

import pytest

from tests.support.processes import REPO

README_MAX_LINES = 250
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_the_readme_is_short_and_keeps_its_two_commands():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    assert "scripts/demo.sh" in text and "scripts/test.sh" in text


def test_ci_runs_the_readmes_test_command():
    assert "scripts/test.sh" in (REPO / ".ci" / "run").read_text(encoding="utf-8")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_resolves(doc):
    targets = [t for t in LINK.findall(doc.read_text(encoding="utf-8")) if "://" not in t]
    broken = [t for t in targets if not (doc.parent / t).exists()]
    assert not broken, f"{doc.name} links to missing files: {broken}"
