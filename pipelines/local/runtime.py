"""Stream jobs on the local DirectRunner: bigger Pub/Sub pulls, an input acknowledged only
once its outcome is published, a clean stop on SIGTERM, and one line when a topic refuses.

Why. Beam's DirectRunner pulls at most 10 messages per bundle (`max_messages=10`,
hard-coded in apache_beam/runners/direct/transform_evaluator.py, _PubSubReadEvaluator), and
acknowledges them as soon as they are pulled. A local stream job therefore tops out near
100-160 messages/s, and whatever it pulled is lost when it stops or fails before
publishing. `run_local_stream` (called by launch.run_job for every streaming template run
off Dataflow) changes three things:

* Pulls ask for up to PULL_MAX_MESSAGES (latency is unchanged: a pull returns at once with
  whatever is waiting). A server may return fewer than asked even with a backlog (the
  emulator at most 100): while a pull brings FULL_PAGE or more, the bundle pulls again at
  once (return_immediately), up to PULL_MAX_MESSAGES, so that a backlog is worked through
  in big bundles; the runner's cost per bundle (a DoFn pickle round trip, setup and
  teardown in each step) is then paid per 500 messages rather than per 100.
* When every outcome of the pipeline goes through our publishing steps
  (`pipeline_answers_every_message`), the runner's acknowledgement is held back: the
  `LEDGER` keeps each pulled message's ack id, extends its ack deadline while it is being
  processed, and acknowledges it only when `PublishAndAcknowledgeFn` has published the
  message that answers it (a result or a dead letter, which carry its id in `message_id`,
  see pipelines/io/pubsub.py). Pulls pause while MAX_HELD messages (or MAX_HELD_BYTES of
  data) are unanswered, which also bounds the job's memory.
* SIGTERM or Ctrl-C stops pulling, waits up to DRAIN_SECONDS (or until a second signal)
  for what was pulled to be answered and acknowledged, hands anything left back to the
  subscription (ack deadline 0), and exits 0. A publish that fails (topic deleted,
  permission denied, or a message Pub/Sub would refuse) stops the job with one line naming
  the topic, exit status 1, and hands back every unanswered message: the input stays on
  the subscription. (A job that reads a topic rather than a subscription
  reads through a subscription of its own, deleted when the job ends: to lose nothing
  across stops, give it a subscription.)

What Dataflow does instead (it never runs this module): its own Pub/Sub source acknowledges
a message only once the first fused stage has processed it and that stage's effects are
written to persistent storage ("Streaming with Pub/Sub" in Dataflow's documentation). These
jobs have no shuffle, so their whole graph, publishing included, is that one stage: an input
is acknowledged only after its outcome is handed to Dataflow's Pub/Sub sink. A publish that
keeps failing (topic deleted, permission removed) fails its work item, and Dataflow retries
a failing streaming work item indefinitely instead of failing the job: the step stalls, the
errors show in the worker logs, the backlog and data freshness grow, nothing is acknowledged
or dropped, until the topic is back (or the job is updated, drained or cancelled).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import traceback

import apache_beam as beam
from apache_beam.io.gcp.pubsub import WriteToPubSub
from apache_beam.pipeline import PTransformOverride

from pipelines.io.pubsub import LogDeadLetterFn

PULL_MAX_MESSAGES = 500
FULL_PAGE = 100  # a pull that brings this many (the emulator's most) is followed by another
MAX_HELD = 2000
MAX_HELD_BYTES = 256 * 2**20  # camera frames are megabytes each
LEASE_EVERY_SECONDS = 5
LEASE_SECONDS = 60
DRAIN_SECONDS = 15
# With a backlog a pull returns at once; one still waiting after this found nothing (and
# whatever the server hands it afterwards returns when its ack deadline passes).
PULL_WAIT_SECONDS = 3
PUBLISH_TIMEOUT_SECONDS = 60
_ACK_CHUNK = 500  # ack ids per acknowledge / modify request, well under its size limit
_PUBLISH_CHUNK = 1000  # messages per publish request (Pub/Sub's maximum)
_PUBLISH_CHUNK_BYTES = 9_000_000

_log = logging.getLogger(__name__)


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


class AckLedger:
    """Pulled messages not yet answered, by message id: (client, subscription, ack ids).

    Thread-safe: the runner pulls and publishes on its worker thread, the lease runs on its
    own. A message pulled twice (redelivered after its deadline) is acknowledged with both
    ack ids; a release of an id the ledger does not hold does nothing.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._held: dict[str, list] = {}
        self._bytes: dict[str, int] = {}
        self.holding = False
        self.stopping = False
        self._pulls = 0
        self._no_pulls = threading.Condition(self._lock)

    def pull_started(self) -> None:
        with self._lock:
            self._pulls += 1

    def pull_ended(self) -> None:
        with self._lock:
            self._pulls -= 1
            if not self._pulls:
                self._no_pulls.notify_all()

    def wait_for_pulls(self, timeout: float) -> bool:
        """Until no pull is in flight (one that returns after a stop hands its messages back
        itself); False if one still is after `timeout`. Exiting before would leave what the
        server already gave that pull leased to nobody until its ack deadline passes."""
        with self._lock:
            return self._no_pulls.wait_for(lambda: not self._pulls, timeout)

    def held_count(self) -> int:
        with self._lock:
            return len(self._held)

    def full(self) -> bool:
        with self._lock:
            return len(self._held) >= MAX_HELD or sum(self._bytes.values()) >= MAX_HELD_BYTES

    def hold(self, client, subscription: str, received) -> None:
        with self._lock:
            for item in received:
                message_id = item.message.message_id
                self._held.setdefault(message_id, []).append((client, subscription, item.ack_id))
                self._bytes[message_id] = len(item.message.data)

    def release(self, message_ids) -> None:
        with self._lock:
            entries = [e for i in message_ids if i is not None for e in self._held.pop(i, ())]
            for message_id in message_ids:
                self._bytes.pop(message_id, None)
        self._send(
            entries,
            lambda client, sub, ids: client.acknowledge(subscription=sub, ack_ids=ids, timeout=30),
        )

    def lease(self, seconds: int = LEASE_SECONDS) -> None:
        with self._lock:
            entries = [e for group in self._held.values() for e in group]
        self._send(
            entries,
            lambda client, sub, ids: client.modify_ack_deadline(
                subscription=sub, ack_ids=ids, ack_deadline_seconds=seconds, timeout=30
            ),
        )

    def hand_back(self, entries=None) -> int:
        """Every held message back to its subscription now (ack deadline 0)."""
        if entries is None:
            with self._lock:
                entries = [e for group in self._held.values() for e in group]
                count = len(self._held)
                self._held.clear()
                self._bytes.clear()
        else:
            count = len(entries)
        self._send(
            entries,
            lambda client, sub, ids: client.modify_ack_deadline(
                subscription=sub, ack_ids=ids, ack_deadline_seconds=0, timeout=30
            ),
        )
        return count

    @staticmethod
    def _send(entries, call) -> None:
        groups: dict = {}
        for client, subscription, ack_id in entries:
            groups.setdefault((id(client), subscription), (client, subscription, []))[2].append(
                ack_id
            )
        for client, subscription, ack_ids in groups.values():
            for chunk in _chunks(ack_ids, _ACK_CHUNK):
                try:
                    call(client, subscription, chunk)
                except Exception as error:  # noqa: BLE001 - the deadline will hand them back
                    _log.warning(
                        "Pub/Sub acknowledgement call on %s failed (%s): these "
                        "messages come back after their ack deadline",
                        subscription,
                        error,
                    )


LEDGER = AckLedger()


class _LocalSubscriber:
    """The DirectRunner's subscriber client, with bigger pulls and, while the ledger holds,
    acknowledgements held back until each message is answered."""

    def __init__(self, client, max_messages: int, ledger: AckLedger = LEDGER):
        self._client = client
        self._max_messages = max_messages
        self._ledger = ledger

    def pull(self, **kwargs):
        self._ledger.pull_started()
        try:
            return self._pull(**kwargs)
        finally:
            self._ledger.pull_ended()

    def _pull(self, **kwargs):
        ledger = self._ledger
        if ledger.holding and (ledger.stopping or ledger.full()):
            time.sleep(0.05)  # the runner asks again at once: do not spin
            return _empty_pull()
        wanted = max(kwargs.get("max_messages", 0), self._max_messages)
        kwargs["max_messages"] = wanted
        response = self._client.pull(**kwargs)
        received = list(response.received_messages)
        last = len(received)
        while (
            FULL_PAGE <= last
            and len(received) < wanted
            and not (ledger.holding and (ledger.stopping or ledger.full()))
        ):
            # A backlog: more at once, never waiting for it (a pull that returns fewer than
            # FULL_PAGE, at a low rate the first, ends the bundle).
            more = self._client.pull(
                **{**kwargs, "max_messages": wanted - len(received), "return_immediately": True}
            )
            last = len(more.received_messages)
            received += more.received_messages
        if len(received) > len(response.received_messages):
            response = _Pulled(received)
        if ledger.holding:
            if ledger.stopping:  # stopped while this pull waited: give them back now
                ledger.hand_back(
                    [(self._client, kwargs["subscription"], m.ack_id) for m in received]
                )
                return _empty_pull()
            ledger.hold(self._client, kwargs["subscription"], received)
        return response

    def acknowledge(self, **kwargs):
        if self._ledger.holding:
            return None  # acknowledged by PublishAndAcknowledgeFn, once answered
        return self._client.acknowledge(**kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


class _Pulled:
    """Several pulls' messages as one response (what the runner reads of a response)."""

    def __init__(self, received_messages: list):
        self.received_messages = received_messages


def _empty_pull():
    from google.cloud.pubsub_v1 import types

    return types.PullResponse()


def _read_evaluator():
    from apache_beam.runners.direct import transform_evaluator

    return transform_evaluator._PubSubReadEvaluator


def use_local_subscriber(max_messages: int = PULL_MAX_MESSAGES) -> bool:
    """Patches the DirectRunner's Pub/Sub read (once per process); False, with a warning,
    if this Beam version reads differently (then it keeps Beam's pulls and acks)."""
    try:
        evaluator = _read_evaluator()
        get_client = evaluator.__dict__["_get_subscriber_client"].__func__
    except (ImportError, AttributeError, KeyError):
        _log.warning(
            "DirectRunner Pub/Sub read not recognised; keeping its 10-message pulls "
            "and its acknowledgement on pull"
        )
        return False
    if getattr(evaluator, "_local_subscriber", False):
        return True

    def _get_subscriber_client(cls, transform):
        return _LocalSubscriber(get_client(cls, transform), max_messages)

    evaluator._get_subscriber_client = classmethod(_get_subscriber_client)
    evaluator._local_subscriber = True
    return True


# --- publishing ---------------------------------------------------------------------------


class PublishFailed(RuntimeError):
    def __init__(self, topic: str, error: Exception):
        detail = str(error).splitlines()[0] if str(error) else ""
        super().__init__(f"cannot publish to {topic}: {type(error).__name__}: {detail}")
        self.topic = topic


class _Supervisor:
    """What the publishing step tells the main thread of run_local_stream."""

    def __init__(self):
        self.active = False
        self.done = threading.Event()
        self.failure: str | None = None

    def fail(self, line: str) -> None:
        if self.failure is None:
            self.failure = line
        self.done.set()


SUPERVISOR = _Supervisor()
_HURRY = threading.Event()


_PUBLISHERS: dict = {}
_PUBLISHERS_LOCK = threading.Lock()


def _publisher():
    """One publisher client per process: the DirectRunner sets up (and tears down) a fresh
    copy of a DoFn for every bundle, and a client per bundle would be a new gRPC channel per
    bundle (about a millisecond each, and channels left for the garbage collector)."""
    pid = os.getpid()
    with _PUBLISHERS_LOCK:
        client = _PUBLISHERS.get(pid)
        if client is None:
            from google.cloud import pubsub_v1

            client = _PUBLISHERS[pid] = pubsub_v1.PublisherClient()
        return client


class PublishAndAcknowledgeFn(beam.DoFn):
    """Publishes each bundle's messages to one topic synchronously (one request per 1,000),
    then acknowledges the inputs they answer."""

    answers_input = True  # see pipeline_answers_every_message

    def __init__(self, topic: str):
        self._topic = topic
        self._client = None
        self._pending = []

    def setup(self):
        self._client = _publisher()

    def start_bundle(self):
        self._pending = []

    def process(self, message):
        self._pending.append(message)

    def finish_bundle(self):
        pending, self._pending = self._pending, []
        publish_and_acknowledge(self._client, self._topic, pending)


def publish_and_acknowledge(client, topic: str, messages, ledger: AckLedger = LEDGER) -> None:
    """Publishes `messages`; acknowledges the inputs of those published. On a failure, the
    rest stay unacknowledged and the job stops (see the module docstring)."""
    from google.pubsub_v1 import types

    from pipelines.core.deadletters import publish_problem

    for chunk in _publish_chunks(messages):
        try:
            for message in chunk:
                # The emulator takes what Pub/Sub refuses (101 attributes, long keys): refuse
                # it here too, so that a local run fails where Google Cloud would.
                problem = publish_problem(message)
                if problem:
                    raise ValueError(f"Pub/Sub would refuse a message: {problem}")
            client.api.publish(
                topic=topic,
                messages=[
                    types.PubsubMessage(data=m.data or b"", attributes=m.attributes or {})
                    for m in chunk
                ],
                timeout=PUBLISH_TIMEOUT_SECONDS,
            )
        except Exception as error:
            failure = PublishFailed(topic, error)
            if not SUPERVISOR.active:
                raise failure from error
            SUPERVISOR.fail(str(failure))
            threading.Event().wait()  # the main thread ends the process; publish nothing more
        ledger.release([m.message_id for m in chunk])


def _publish_chunks(messages):
    chunk, size = [], 0
    for message in messages:
        message_size = len(message.data or b"") + sum(
            len(k) + len(v) for k, v in (message.attributes or {}).items()
        )
        if chunk and (len(chunk) >= _PUBLISH_CHUNK or size + message_size > _PUBLISH_CHUNK_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(message)
        size += message_size
    if chunk:
        yield chunk


# --- the run ------------------------------------------------------------------------------


def pipeline_answers_every_message(pipeline) -> bool:
    """Whether every outcome leaves through a step that acknowledges its input (our publish
    and dead-letter log steps), with no Beam WriteToPubSub (which cannot): only then may
    acknowledgements wait for outcomes, or unanswered messages would be redelivered for ever."""
    from apache_beam.io.gcp.pubsub import WriteToPubSub
    from apache_beam.pipeline import PipelineVisitor

    found = {"answering": 0, "beam_writes": 0}

    class _Visitor(PipelineVisitor):
        def enter_composite_transform(self, node):
            self.visit_transform(node)

        def visit_transform(self, node):
            transform = node.transform
            if isinstance(transform, WriteToPubSub):
                found["beam_writes"] += 1
            if getattr(getattr(transform, "fn", None), "answers_input", False):
                found["answering"] += 1

    pipeline.visit(_Visitor())
    return found["answering"] > 0 and found["beam_writes"] == 0


class _LogAndAcknowledgeFn(LogDeadLetterFn):
    """Logs a dead letter, then acknowledges the input it answers."""

    answers_input = True  # see pipeline_answers_every_message

    def process(self, message):
        super().process(message)
        LEDGER.release([message.message_id])


class _PublishLocally(PTransformOverride):
    """Beam's WriteToPubSub -> a synchronous publish that acknowledges what it answers."""

    def matches(self, applied_ptransform):
        return isinstance(applied_ptransform.transform, WriteToPubSub)

    def get_replacement_transform_for_applied_ptransform(self, applied_ptransform):
        return beam.ParDo(PublishAndAcknowledgeFn(applied_ptransform.transform.full_topic))


class _LogLocally(PTransformOverride):
    """Logging a dead letter -> logging it and acknowledging its input."""

    def matches(self, applied_ptransform):
        transform = applied_ptransform.transform
        return isinstance(transform, beam.ParDo) and type(transform.fn) is LogDeadLetterFn

    def get_replacement_transform_for_applied_ptransform(self, applied_ptransform):
        return beam.ParDo(_LogAndAcknowledgeFn())


LOCAL_OVERRIDES = (_PublishLocally(), _LogLocally())


def run_local_stream(pipeline, name: str):
    """Runs a streaming pipeline on the local runner until SIGTERM/Ctrl-C or a failure, then
    ends the process (see the module docstring for the exit statuses)."""
    pipeline.replace_all(list(LOCAL_OVERRIDES))
    use_local_subscriber()
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
            _HURRY.set()
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
    while not SUPERVISOR.done.wait(0.5):
        pass
    if SUPERVISOR.failure is None and "failure" not in error and stop["signal"]:
        _drain(name, stop["signal"], ended)
    if SUPERVISOR.failure is not None:
        left = _stop_pulling_and_hand_back()
        _end(
            1,
            f"{name}: error: {SUPERVISOR.failure}; the job stopped, and its {left} "
            f"unfinished input messages stay on the subscription",
        )
    if "failure" in error:
        left = _stop_pulling_and_hand_back()
        sys.stderr.write(error["trace"])
        _end(
            1,
            f"{name}: error: {type(error['failure']).__name__}: {error['failure']}; "
            f"{left} unfinished input messages stay on the subscription",
        )
    _end(0, None)


def _stop_pulling_and_hand_back() -> int:
    LEDGER.stopping = True
    if not LEDGER.wait_for_pulls(PULL_WAIT_SECONDS):
        _log.warning(
            "a Pub/Sub pull is still in flight; what it brings comes back to the "
            "subscription when its ack deadline passes"
        )
    return LEDGER.hand_back()


def _lease():
    while True:
        time.sleep(LEASE_EVERY_SECONDS)
        if LEDGER.holding:
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
        and not _HURRY.is_set()
        and not ended.is_set()
    ):
        time.sleep(0.1)
    if SUPERVISOR.failure is None:
        left = _stop_pulling_and_hand_back()
        _log.info(
            "%s: stopped cleanly; %d unfinished messages handed back to the subscription",
            name,
            left,
        )


def _end(status: int, line: str | None):
    """Ends the process: the runner's threads may sit in a 30 s pull or a model call, and
    waiting for them would only delay what is already safe in Pub/Sub."""
    _close_read_clients()
    logging.shutdown()
    if line:
        sys.stderr.write(line + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _close_read_clients() -> None:
    # Deletes the subscription the runner made for a topic input (Beam does it at exit,
    # which os._exit skips).
    try:
        cache = _read_evaluator()._subscriber_client_cache
        for state in list(cache.values()):
            state.close()
    except Exception as error:  # noqa: BLE001 - best effort on the way out
        _log.warning("could not close the Pub/Sub read: %s", error)
