"""Every shell script under ops/ passes shellcheck (the Debian `shellcheck` package)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.markers import missing

OPS = Path(__file__).resolve().parents[3] / "ops"


def shell_scripts() -> list[Path]:
    scripts = []
    for path in sorted(OPS.rglob("*")):
        if not path.is_file():
            continue
        with path.open("rb") as handle:
            first = handle.readline()
        if path.suffix in {".sh", ".bash"} or (first.startswith(b"#!") and b"sh" in first):
            scripts.append(path)
    return scripts


def test_there_are_scripts_to_check():
    assert OPS / "flex" in shell_scripts()


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: str(p.relative_to(OPS.parent)))
def test_shellcheck_is_clean(script):
    if shutil.which("shellcheck") is None:
        missing("shellcheck is not installed (Debian: apt-get install -y shellcheck)")
    done = subprocess.run(
        ["shellcheck", "--external-sources", "--severity=style", str(script)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: str(p.relative_to(OPS.parent)))
def test_script_is_executable_and_strict(script):
    assert script.stat().st_mode & 0o111, f"{script} is not executable"
    text = script.read_text(encoding="utf-8")
    assert "set -Eeuo pipefail" in text or "set -euo pipefail" in text


def test_what_is_shell_is_a_thin_entry():
    # The work is the ops package's: the shell under ops/ only picks the interpreter.
    lines = sum(len(script.read_text(encoding="utf-8").splitlines()) for script in shell_scripts())
    assert shell_scripts() == [OPS / "flex"] and lines < 80, lines
