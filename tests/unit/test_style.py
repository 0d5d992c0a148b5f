"""The style the project keeps: ruff's lint and format, configured in pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _ruff() -> str:
    # The dev lock pins ruff into the venv; the venv's bin folder is where pytest runs from.
    found = Path(sys.executable).parent / "ruff"
    if found.exists():
        return str(found)
    on_path = shutil.which("ruff")
    if not on_path:
        pytest.fail("ruff is not installed: it is in requirements-dev.lock (scripts/setup.sh)")
    return on_path


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]])
def test_ruff_is_clean(command):
    done = subprocess.run(
        [_ruff(), *command], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
