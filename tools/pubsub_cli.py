"""What the Pub/Sub command-line tools share: names, pacing, progress, clean Ctrl-C.

Credentials come from Application Default Credentials (`gcloud auth application-default
login`, or the VM's service account); with PUBSUB_EMULATOR_HOST set, the client library talks
to the local emulator instead. No key files are read.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def add_project_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--project",
        default=os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("PROJECT"),
        help="Google Cloud project ID (default: $GOOGLE_CLOUD_PROJECT or $PROJECT)",
    )


def resource_path(project: str | None, name: str, kind: str) -> str:
    """`name` as projects/P/<kind>/NAME; a full path is taken as it is. A path Pub/Sub's
    naming rules refuse (the jobs' own, pipelines/core/grammar.py), the project from the
    environment included, is one line and exit 2, not the client's traceback later."""
    if name.startswith("projects/"):
        path = name
    elif not project:
        sys.exit(f"error: --project is needed for the short {kind[:-1]} name {name!r}")
    else:
        path = f"projects/{project}/{kind}/{name}"
    from pipelines.core.grammar import PUBSUB_SUBSCRIPTION, PUBSUB_TOPIC

    problem = (PUBSUB_TOPIC if kind == "topics" else PUBSUB_SUBSCRIPTION).problem(path)
    if problem:
        print(f"error: --{kind[:-1]}: {problem}", file=sys.stderr)
        sys.exit(2)
    return path


class Pacer:
    """Spaces events `1/rate` seconds apart on a fixed schedule, so that slow publishes do
    not add up to drift (the lab's producer slept 0.1 s after each one)."""

    # How far behind its schedule the pacer may fall and still catch up. Late wake-ups on a
    # busy machine (often longer than the interval at hundreds of events per second) are
    # made up, so the rate holds; after a longer stall the schedule restarts instead of
    # bursting out everything it missed.
    MAX_LAG = 0.1

    def __init__(self, rate: float):
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = time.monotonic()

    def wait(self) -> None:
        if self._interval:
            delay = self._next - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._next = max(
                self._next + self._interval, time.monotonic() - max(self._interval, self.MAX_LAG)
            )


class Progress:
    """A one-line progress bar on stderr (only on a terminal, or when forced)."""

    def __init__(self, total: int | None, label: str, enabled: bool | None = None):
        self._total = total
        self._label = label
        self._start = time.monotonic()
        self._enabled = sys.stderr.isatty() if enabled is None else enabled
        self._last = 0.0
        self._width = 0

    def update(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self._enabled or (not force and now - self._last < 0.2):
            return
        self._last = now
        rate = done / max(now - self._start, 1e-9)
        if self._total:
            filled = int(30 * done / self._total)
            bar = "#" * filled + "." * (30 - filled)
            text = f"\r{self._label} [{bar}] {done}/{self._total} {rate:.1f}/s"
        else:
            text = f"\r{self._label} {done} {rate:.1f}/s"
        # Pad over what a longer previous line left behind (10.0/s -> 9.9/s).
        self._width = max(self._width, len(text))
        sys.stderr.write(text.ljust(self._width))
        sys.stderr.flush()

    def close(self, done: int) -> None:
        self.update(done, force=True)
        if self._enabled:
            sys.stderr.write("\n")
