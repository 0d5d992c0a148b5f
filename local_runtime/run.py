"""Running a stream job on the local DirectRunner until SIGTERM/Ctrl-C or a failure.

`run_local_stream` (called by the launch for every streaming template run off Dataflow)
swaps in the local publishing steps (overrides.py), reads through LocalSubscriber
(subscriber.py), holds each input's acknowledgement in the ledger until its outcome is
published, extends the leases of what it holds, and ends the process:

* SIGTERM or Ctrl-C: stops pulling, waits up to DRAIN_SECONDS (or until a second signal)
  for what was pulled to be answered, hands the rest back to the subscription (ack
  deadline 0), and exits 0 with "stopped cleanly; N unfinished messages handed back". If a
  hand-back call fails, it says so instead, and exits 1.
* A publish that fails, a subscription that is gone or refused, Pub/Sub unreachable for
  subscriber.LOST_AFTER_SECONDS, or the runner failing: one line naming the cause, what
  was really handed back, and exit 1.

Every last line counts only the hand-back calls that succeeded; messages the server leased
to a pull that never answered (too big for the channel, still waiting at the stop) come back
on their own when their ack deadline passes, and the line says so when there were any.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
import time
import traceback

from local_runtime.beam_private import (
    cache_dofn_signatures,
    cache_dofn_specs,
    keep_timestamp_epoch,
)
from local_runtime.ledger import Sent
from local_runtime.limits import LEASE_SECONDS, PREFETCH_PULL_SECONDS
from local_runtime.overrides import LOCAL_OVERRIDES, pipeline_answers_every_message
from local_runtime.shared import LEDGER, SUPERVISOR
from local_runtime.subscriber import use_local_subscriber

LEASE_EVERY_SECONDS = 5
DRAIN_SECONDS = 15
# With a backlog a pull returns at once; one still waiting after this found nothing (and
# whatever the server hands it afterwards returns when its ack deadline passes).
PULL_WAIT_SECONDS = 3
assert LEASE_EVERY_SECONDS < LEASE_SECONDS
assert PREFETCH_PULL_SECONDS < PULL_WAIT_SECONDS

_log = logging.getLogger(__name__)


def run_local_stream(pipeline, name: str):
    """Runs a streaming pipeline on the local runner until SIGTERM/Ctrl-C or a failure, then
    ends the process (see the module docstring for the exit statuses)."""
    pipeline.replace_all(list(LOCAL_OVERRIDES))
    use_local_subscriber()
    cache_dofn_signatures()
    cache_dofn_specs()
    keep_timestamp_epoch()
    LEDGER.holding = pipeline_answers_every_message(pipeline)
    if not LEDGER.holding:
        _log.warning(
            "%s: some outcome is published by Beam's WriteToPubSub: the local runner "
            "acknowledges input on pull (a stop may lose what was pulled)",
            name,
        )
    SUPERVISOR.active = True
    stop = {"signal": None}

    def _on_signal(signum, frame):
        if stop["signal"]:  # a second one: stop waiting, hand the rest back now
            SUPERVISOR.hurry.set()
        stop["signal"] = signal.Signals(signum).name
        SUPERVISOR.done.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    result = pipeline.run()
    error = {}
    ended = threading.Event()

    def _wait():
        try:
            result.wait_until_finish()
        except BaseException as failure:  # noqa: BLE001 - reported by the main thread
            error["failure"] = failure
            error["trace"] = traceback.format_exc()
        ended.set()
        SUPERVISOR.done.set()

    threading.Thread(target=_wait, name="pipeline", daemon=True).start()
    threading.Thread(target=_lease, name="ack-lease", daemon=True).start()
    set_up = False
    while not SUPERVISOR.done.wait(0.5):
        set_up = set_up or freeze_once_answering(LEDGER)
    if SUPERVISOR.failure is None and "failure" not in error and stop["signal"]:
        _drain(name, stop["signal"], ended)
    if SUPERVISOR.failure is not None:
        _end(1, f"{name}: error: {SUPERVISOR.failure}; the job stopped: {_stop_and_hand_back()}")
    if "failure" in error:
        sys.stderr.write(error["trace"])
        failure = error["failure"]
        _end(
            1,
            f"{name}: error: {type(failure).__name__}: {failure}; the job stopped: "
            f"{_stop_and_hand_back()}",
        )
    _end(0, None)


def freeze_once_answering(ledger) -> bool:
    """Once the run has answered a message, takes every object alive then out of the garbage
    collector's generations (gc.freeze); True when it has.

    Why: by the first answer the run has set up for good. The launch froze what it imported
    (pipelines/registry.py), but TensorFlow and the model load with the first bundle: some
    250,000 more objects, which every full collection walked again (0.58 s of CPU in four
    collections over a 40,000-message drain; the job 0.150 ms of CPU a message against
    0.111 frozen). What the first bundles leave in reference cycles while this runs is never
    collected: a bundle's worth, once. Objects made later (a newer model of a model_pattern)
    are collected as before."""
    if not ledger.answered:
        return False
    gc.freeze()
    return True


def _stop_and_hand_back() -> str:
    """Stops pulling, hands back what is held, and says what really happened."""
    LEDGER.stopping = True
    settled = LEDGER.wait_for_pulls(PULL_WAIT_SECONDS)
    return hand_back_summary(LEDGER.hand_back(), LEDGER.lost_pulls, settled)


def hand_back_summary(sent: Sent, lost_pulls: int = 0, pulls_settled: bool = True) -> str:
    """What a stop did with the unfinished input, counting only the calls that succeeded."""
    if not sent.failed:
        line = f"{sent.done} unfinished input messages handed back to the subscription"
    elif not sent.done:
        line = (
            f"its {sent.failed} unfinished input messages could not be handed back "
            f"({sent.error}); they come back to the subscription when their ack deadline "
            f"passes"
        )
    else:
        line = (
            f"{sent.done} unfinished input messages handed back to the subscription; "
            f"{sent.failed} could not be ({sent.error}) and come back when their ack "
            f"deadline passes"
        )
    if not pulls_settled:
        line += (
            "; a pull was still waiting at the stop: whatever the server gives it comes "
            "back when its ack deadline passes"
        )
    if lost_pulls:
        line += (
            f"; messages leased to the {lost_pulls} pulls too big for the channel come back "
            f"when their ack deadline passes"
        )
    return line


def _lease():
    while True:
        time.sleep(LEASE_EVERY_SECONDS)
        if LEDGER.holding and not LEDGER.stopping:
            LEDGER.lease()


def _drain(name: str, signal_name: str, ended: threading.Event) -> None:
    LEDGER.stopping = True
    if not LEDGER.holding:
        _log.warning(
            "%s: %s: stopping; messages pulled but not yet published are lost", name, signal_name
        )
        return
    deadline = time.monotonic() + DRAIN_SECONDS
    _log.info(
        "%s: %s: stopped pulling; finishing %d messages", name, signal_name, LEDGER.held_count()
    )
    while (
        LEDGER.held_count()
        and time.monotonic() < deadline
        and SUPERVISOR.failure is None
        and not SUPERVISOR.hurry.is_set()
        and not ended.is_set()
    ):
        time.sleep(0.1)
    if SUPERVISOR.failure is not None:
        return  # reported by run_local_stream
    settled = LEDGER.wait_for_pulls(PULL_WAIT_SECONDS)
    sent = LEDGER.hand_back()
    if sent.failed:
        _end(
            1,
            f"{name}: error: stopping on {signal_name}: "
            f"{hand_back_summary(sent, LEDGER.lost_pulls, settled)}",
        )
    _log.info(
        "%s: stopped cleanly on %s; %s",
        name,
        signal_name,
        hand_back_summary(sent, LEDGER.lost_pulls, settled),
    )


def _end(status: int, line: str | None):
    """Ends the process with `status`, `line` (if any) its last line.

    Why os._exit and not sys.exit: by now every input is either acknowledged, handed back or
    due back after its ack deadline, and the temporary subscription (if any) is deleted. The
    runner's threads (daemon threads, never joined by Beam) may still sit in a 30 s pull, a
    publish retrying an unreachable Pub/Sub, or inside TensorFlow; an interpreter shutdown
    under them waits for that pull's gRPC call or crashes in TensorFlow's teardown, and
    would only delay (or garble) what is already true. Logs are flushed first."""
    _close_read_clients()
    logging.shutdown()
    if line:
        sys.stderr.write(line + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _close_read_clients() -> None:
    from local_runtime.beam_private import close_direct_pubsub_reads

    try:
        close_direct_pubsub_reads()
    except Exception as error:  # noqa: BLE001 - best effort on the way out
        _log.warning("could not close the Pub/Sub read: %s", error)
