"""The one way ops talks to Google Cloud: a `Gcloud` runner over the gcloud and bq CLIs.

Four kinds of call, each printed the same way in both modes:
  run       a command that changes something ("+ CMD"); a failure stops everything
  exists    a read-only check whose exit status is the answer ("? CMD")
  read      a read-only query whose JSON answer is used ("? CMD --format=json")
  launch    a command that changes something and whose JSON answer is used ("+ CMD")

In dry-run mode nothing runs: "+" and "?" lines go to stdout, checks answer `assume`
("absent" shows what a first run creates) and queries their caller's stand-in. In a real
run "+" lines go to stderr as a trace and checks stay quiet. Tests swap `_execute` for a
recording fake (tests/support/fake_gcloud.py): everything else here is what users run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PROG = "ops/flex"
ROOT = Path(__file__).resolve().parents[1]

_BARE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
_FLAG_VALUE = re.compile(r"(--[a-z0-9-]+=)(.*)", re.DOTALL)


class Stop(Exception):
    """A failure already explained in one message; exit with `code`."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


class CommandFailed(Stop):
    def __init__(self, code: int, line: str):
        super().__init__(
            f"this command failed (exit {code}):\n  {line}\n"
            f"{PROG}: stopped here; nothing after it ran. Fix the cause and run the same "
            f"{PROG} command again:\n"
            f"{PROG}: every step checks what exists before it creates anything.",
            code,
        )


def quote_word(word: str) -> str:
    """One word as a shell needs it: bare when safe; else single-quoted (only the value of a
    --flag=value), so that the printed line can be pasted as it is."""
    if _BARE.fullmatch(word):
        return word
    match = _FLAG_VALUE.fullmatch(word)
    if match:
        return match.group(1) + quote_word(match.group(2))
    return "'" + word.replace("'", "'\\''") + "'"


def quote_command(argv: Sequence[str]) -> str:
    return " ".join(quote_word(word) for word in argv)


def say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


# A service account created seconds ago may not be visible to IAM yet: only that is retried.
_NOT_YET_VISIBLE = re.compile(r"does not exist|not found|unknown service account", re.I)
IAM_ATTEMPTS = 7
IAM_WAIT_SECONDS = 10


class Gcloud:
    def __init__(self, *, dry_run: bool, cwd: Path = ROOT, out=None, err=None):
        self.dry_run = dry_run
        self.cwd = cwd
        self._out = out
        self._err = err
        # What a dry run's existence checks answer: "absent" or "present".
        self.assume = "absent"
        self.env = dict(os.environ)
        if not dry_run:
            self.env["CLOUDSDK_CORE_DISABLE_PROMPTS"] = "1"

    # --- output ---------------------------------------------------------------------------
    @property
    def out(self):
        return self._out or sys.stdout

    @property
    def err(self):
        return self._err or sys.stderr

    def _show(self, mark: str, argv: Sequence[str]) -> str:
        line = quote_command(argv)
        if self.dry_run:
            print(f"{mark} {line}", file=self.out, flush=True)
        elif mark == "+":
            print(f"{mark} {line}", file=self.err, flush=True)
        return line

    # --- the one place a process starts (the tests' fake replaces it) -------------------------
    def _execute(self, argv: Sequence[str], *, capture: bool, quiet: bool) -> tuple[int, str, str]:
        """Runs argv; returns (exit status, stdout if captured, stderr if quiet)."""
        try:
            done = subprocess.run(
                list(argv),
                cwd=self.cwd,
                env=self.env,
                text=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if capture or quiet else None,
                stderr=subprocess.PIPE if quiet else None,
            )
        except FileNotFoundError:
            return 127, "", f"{argv[0]}: command not found\n"
        return done.returncode, done.stdout or "", done.stderr or ""

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    # --- the four kinds of call -------------------------------------------------------------
    def run(self, argv: Sequence[str], *, quiet: bool = False, iam: bool = False) -> None:
        """A command that changes something. quiet: drop its own output (a policy dump).
        iam: a role binding, retried while a new account is not visible to IAM yet."""
        line = self._show("+", argv)
        if self.dry_run:
            return
        attempts = IAM_ATTEMPTS if iam else 1
        for attempt in range(1, attempts + 1):
            code, _, errors = self._execute(argv, capture=False, quiet=quiet or iam)
            if code == 0:
                return
            if attempt < attempts and _NOT_YET_VISIBLE.search(errors):
                say(
                    f"the service account is not visible to IAM yet; retrying in "
                    f"{IAM_WAIT_SECONDS} s ({attempt}/{attempts - 1})"
                )
                self.sleep(IAM_WAIT_SECONDS)
                continue
            break
        if errors:
            print(errors, end="", file=self.err)
        raise CommandFailed(code, line)

    def exists(self, argv: Sequence[str]) -> bool:
        """A read-only check: does the thing exist (exit status 0)?"""
        self._show("?", argv)
        if self.dry_run:
            return self.assume == "present"
        code, _, _ = self._execute(argv, capture=True, quiet=True)
        return code == 0

    def read(self, argv: Sequence[str], stand_in: Any) -> Any:
        """A read-only query; its JSON answer (`--format=json` is added), parsed."""
        argv = [*argv, "--format=json"]
        line = self._show("?", argv)
        if self.dry_run:
            return stand_in
        return self._json(argv, line)

    def read_text(self, argv: Sequence[str], stand_in: str) -> str:
        """A read-only query whose answer is a document (gcloud storage cat)."""
        line = self._show("?", argv)
        if self.dry_run:
            return stand_in
        code, out, _ = self._execute(argv, capture=True, quiet=False)
        if code != 0:
            raise CommandFailed(code, line)
        return out

    def launch(self, argv: Sequence[str], stand_in: Any) -> Any:
        """A command that changes something and answers in JSON (`--format=json` is added)."""
        argv = [*argv, "--format=json"]
        line = self._show("+", argv)
        if self.dry_run:
            return stand_in
        return self._json(argv, line)

    def _json(self, argv: Sequence[str], line: str) -> Any:
        code, out, _ = self._execute(argv, capture=True, quiet=False)
        if code != 0:
            raise CommandFailed(code, line)
        try:
            return json.loads(out) if out.strip() else None
        except json.JSONDecodeError:
            raise Stop(f"{argv[0]} answered something that is not JSON to:\n  {line}") from None

    def configured_project(self) -> str:
        """gcloud's configured project: local configuration only, no call to Google Cloud,
        and never printed."""
        code, out, _ = self._execute(
            ["gcloud", "config", "get-value", "project"], capture=True, quiet=True
        )
        value = out.strip() if code == 0 else ""
        return "" if value == "(unset)" else value
