"""CI never passes by skipping: a test that needs a tool the repository lacks (an emulator,
node, gcloud, a model, the lab's design frames) skips locally and fails in CI, with the
reason; and every other skip in the suite is one that no install could remove."""

from __future__ import annotations

import re

import pytest

from tests.support import markers
from tests.support.processes import REPO
from tools import design_frames

# The skips that stay skips in CI, each for a reason no tool would change.
DELIBERATE_SKIPS = {
    # Parametrised over every template: a template the lab has no resources for takes its
    # values from --param, and one whose metadata is not generated yet has none to compare.
    "tests/system/ops/test_ops_plans.py": 2,
    # Stream templates have no bundled sample run and refuse the portable runner (which
    # test_stream_templates_refuse_the_portable_runner checks) in the three worker tests.
    "tests/system/image/test_image.py": 4,
}
SKIP_CALL = re.compile(r"pytest\.skip\(|\.skipif\(|importorskip\(")


def test_a_missing_tool_fails_in_ci_with_its_reason(monkeypatch):
    monkeypatch.setattr(markers, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="missing: node is not installed"):
        markers.missing("node is not installed")


def test_a_missing_tool_skips_elsewhere(monkeypatch):
    monkeypatch.setattr(markers, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="node is not installed"):
        markers.missing("node is not installed")


def test_needs_marks_only_what_is_missing():
    assert markers.needs(None).args == (None,)
    assert markers.needs("gcloud is not installed").args == ("gcloud is not installed",)


def test_the_design_frames_come_from_DESIGN_FRAMES(monkeypatch, tmp_path):
    monkeypatch.setenv(design_frames.ENV, str(tmp_path))
    reason = design_frames.missing()
    assert str(tmp_path) in reason and "SOFE4630U-Design" in reason
    assert f"{design_frames.ENV}=" in reason and "\n" not in reason
    for name in design_frames.SAMPLE:
        (tmp_path / name).write_bytes(b"")
    assert design_frames.missing() is None
    monkeypatch.delenv(design_frames.ENV)
    assert design_frames.folder() == REPO.parent / "shared" / "design"


def test_every_other_skip_is_deliberate():
    found = {}
    for path in sorted((REPO / "tests").rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        if relative in ("tests/support/markers.py", "tests/unit/test_ci_needs.py"):
            continue
        count = len(SKIP_CALL.findall(path.read_text(encoding="utf-8")))
        if count:
            found[relative] = count
    assert found == DELIBERATE_SKIPS, (
        "a test skips for a missing tool: use tests.support.markers.missing() or needs(), "
        "which fail in CI"
    )
