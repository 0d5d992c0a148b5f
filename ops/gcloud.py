"""The one way ops talks to Google Cloud: a `Gcloud` runner over the gcloud and bq CLIs.

Four kinds of call, each printed the same way in both modes:
  run       a command that changes something ("+ CMD"); a failure stops everything
  exists    a read-only check whose exit status is the answer ("? CMD")
  read      a read-only query whose JSON answer is used ("? CMD --format=json")
  launch    a command that changes something and whose JSON answer is used ("+ CMD")

Every JSON answer goes through a reader of ops/answers.py (a dry run's stand-in too): an
answer of another shape is one line naming the command, exit 1. Every call has a time limit:
`timeout` seconds (OPS_GCLOUD_TIMEOUT, default DEFAULT_TIMEOUT, which suits reads), or the
longer `wait` a slow call asks for (SLOW, build_limit); past it the call is stopped, two lines
(what, what to do), exit 1.
A failure is two lines: what failed, and what to do.

In dry-run mode nothing runs: "+" and "?" lines go to stdout, checks answer `assume`
("absent" shows what a first run creates) and queries their caller's stand-in. In a real
run "+" lines go to stderr as a trace and checks stay quiet. Tests swap `_execute` for a
recording fake (tests/support/fake_gcloud.py): everything else here is what users run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ops.answers import NOTHING, Wrong
from pipelines.core.json_text import read_json

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
            f"this command failed (exit {code}), nothing after it ran: {line}\n"
            f"{PROG}: fix the cause (gcloud's message above) and run the same {PROG} command "
            "again; every step checks what exists before it creates anything",
            code,
        )


# Seconds a call may take. A read answers in seconds; a launch, enabling APIs or a BigQuery
# load waits on Google's side for minutes (SLOW); `gcloud builds submit` waits for the build,
# which Cloud Build itself stops after cloudbuild.yaml's `timeout` (build_limit).
DEFAULT_TIMEOUT = 120
SLOW = 600
TIMEOUT_VARIABLE = "OPS_GCLOUD_TIMEOUT"


def build_limit(config: Path = ROOT / "cloudbuild.yaml") -> float:
    """cloudbuild.yaml's own `timeout: NNNs`, plus SLOW for the source's upload and the queue."""
    found = re.search(r"^timeout:\s*([0-9]+)s\s*$", config.read_text(encoding="utf-8"), re.M)
    if not found:
        raise Stop(f"{config.name} states no build timeout (timeout: NNNs)")
    return int(found.group(1)) + SLOW


def command_name(argv: Sequence[str]) -> str:
    """The words of a command before its flags (gcloud dataflow jobs describe ID), cut short."""
    words = []
    for word in argv:
        if word.startswith("-"):
            break
        words.append(word)
    return quote_command(words)[:120]


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
        self.timeout: float = DEFAULT_TIMEOUT
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

    def limit(self, wait: float = 0) -> float:
        """A call's time limit: OPS_GCLOUD_TIMEOUT, or `wait` for a call that takes longer."""
        return max(self.timeout, wait)

    # --- the one place a process starts (the tests' fake replaces it) -------------------------
    def _execute(
        self, argv: Sequence[str], *, capture: bool, quiet: bool, wait: float = 0
    ) -> tuple[int, str, str]:
        """Runs argv for at most max(timeout, wait) seconds; returns (exit status, stdout if
        captured, stderr if quiet). Past the limit it stops the command and what it started
        (gcloud is a script that starts Python), and raises Stop."""
        limit = self.limit(wait)
        try:
            process = subprocess.Popen(
                list(argv),
                cwd=self.cwd,
                env=self.env,
                text=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if capture or quiet else None,
                stderr=subprocess.PIPE if quiet else None,
                start_new_session=True,
            )
        except FileNotFoundError:
            return 127, "", f"{argv[0]}: command not found\n"
        try:
            out, errors = process.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            _stop_group(process)
            raise Stop(
                f"{command_name(argv)} did not finish within {limit:g} s and was stopped\n"
                f"{PROG}: check the network and `gcloud auth list`, then run the same {PROG} "
                f"command again (a slower answer: {TIMEOUT_VARIABLE}=SECONDS)"
            ) from None
        except BaseException:  # Ctrl-C: the command's own session does not get it
            _stop_group(process)
            raise
        return process.returncode, out or "", errors or ""

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    # --- the four kinds of call -------------------------------------------------------------
    def run(
        self, argv: Sequence[str], *, quiet: bool = False, iam: bool = False, wait: float = 0
    ) -> None:
        """A command that changes something. quiet: drop its own output (a policy dump).
        iam: a role binding, retried while a new account is not visible to IAM yet.
        wait: a slow command's time limit (SLOW, build_limit)."""
        line = self._show("+", argv)
        if self.dry_run:
            return
        attempts = IAM_ATTEMPTS if iam else 1
        for attempt in range(1, attempts + 1):
            code, _, errors = self._execute(argv, capture=False, quiet=quiet or iam, wait=wait)
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

    def read(
        self, argv: Sequence[str], stand_in: Any, reader: Callable[[Any], Any], *, document=False
    ) -> Any:
        """A read-only query; its JSON answer (`--format=json` is added), through `reader`.
        document: the answer is a stored JSON document (gcloud storage cat), as it is."""
        argv = list(argv) if document else [*argv, "--format=json"]
        self._show("?", argv)
        return self._json(argv, stand_in, reader)

    def launch(
        self, argv: Sequence[str], stand_in: Any, reader: Callable[[Any], Any], *, wait: float = 0
    ) -> Any:
        """A command that changes something and answers in JSON (`--format=json` is added),
        through `reader`."""
        argv = [*argv, "--format=json"]
        self._show("+", argv)
        return self._json(argv, stand_in, reader, wait=wait)

    def _json(self, argv: Sequence[str], stand_in: Any, reader, wait: float = 0) -> Any:
        if self.dry_run:
            answer = stand_in
        else:
            code, out, _ = self._execute(argv, capture=True, quiet=False, wait=wait)
            if code != 0:
                raise CommandFailed(code, quote_command(argv))
            try:
                answer = _parse(out)
            except ValueError:
                raise Stop(
                    f"{command_name(argv)} answered something that is not JSON; run it yourself "
                    f"to see why"
                ) from None
        try:
            return reader(answer)
        except Wrong as wrong:
            raise Stop(f"{command_name(argv)} answered {wrong}") from None

    def configured_project(self) -> str:
        """gcloud's configured project: local configuration only, no call to Google Cloud,
        and never printed."""
        code, out, _ = self._execute(
            ["gcloud", "config", "get-value", "project"], capture=True, quiet=True
        )
        value = out.strip() if code == 0 else ""
        return "" if value == "(unset)" else value


def _parse(out: str) -> Any:
    """gcloud's JSON output; NOTHING when it printed nothing. Raises ValueError otherwise
    (json's own error is one: a NaN or a 10,000-deep nesting is refused too)."""
    if not out.strip():
        return NOTHING
    return read_json(out, parse_constant=_no_constant)


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _stop_group(process: subprocess.Popen) -> None:
    """Stops a command and every process it started (its own session)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.communicate()
