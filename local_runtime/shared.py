"""The process-wide state of a local stream run, all of it, in one place.

Why it cannot live on objects passed around: the DirectRunner pickles every DoFn and sets up
a fresh copy for each bundle, and it builds its own Pub/Sub subscriber client (through the
hook in local_runtime/beam_private.py) where the run cannot hand it anything. The
publishing step (a DoFn) must reach the ledger the subscriber fills, and both must tell the
main thread of `run.run_local_stream` when Pub/Sub fails; so they meet here. One run per
process (a stream run ends its process), so one of each is enough.
"""

from __future__ import annotations

import os
import threading

from local_runtime.ledger import AckLedger

LEDGER = AckLedger()


class Supervisor:
    """What the runner's threads tell the main thread of run_local_stream."""

    def __init__(self):
        self.active = False  # a run is watching: report failures here instead of raising
        self.done = threading.Event()
        self.hurry = threading.Event()  # a second signal: stop waiting for the drain
        self.failure: str | None = None

    def fail(self, line: str) -> None:
        if self.failure is None:
            self.failure = line
        self.done.set()


SUPERVISOR = Supervisor()

_PUBLISHERS: dict = {}
_PUBLISHERS_LOCK = threading.Lock()


def publisher():
    """One publisher client per process: the DirectRunner sets up (and tears down) a fresh
    copy of a DoFn for every bundle, and a client per bundle would be a new gRPC channel per
    bundle (about a millisecond each, and channels left for the garbage collector)."""
    from pipelines.io.pubsub_clients import publisher_client

    pid = os.getpid()
    with _PUBLISHERS_LOCK:
        client = _PUBLISHERS.get(pid)
        if client is None:
            client = _PUBLISHERS[pid] = publisher_client()
        return client
