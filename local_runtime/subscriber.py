"""The DirectRunner's Pub/Sub subscriber, made to pull as a Dataflow job would.

Beam's DirectRunner pulls at most 10 messages per bundle (`max_messages=10`, hard-coded in
its Pub/Sub read evaluator, see local_runtime/beam_private.py) and acknowledges them as
soon as they are pulled. `LocalSubscriber` stands in for its client:

* Pulls ask for up to PULL_MAX_MESSAGES, and for no more than PULL_TARGET_BYTES by the
  size of the messages the last pull brought (a camera frame is megabytes, an MNIST image a
  few kilobytes). A server may return fewer than asked even with a backlog (the emulator at
  most 100): while a pull brings FULL_PAGE or more, the bundle pulls again at once
  (return_immediately), so that a backlog is worked through in big bundles.
* A pull whose answer is too big for the channel (RESOURCE_EXHAUSTED) is asked again for
  half as many messages; what the server leased to it comes back after its ack deadline.
* While the ledger holds (see run.py), acknowledgements wait until each message is
  answered, and pulls pause while too much is unanswered.
* Pub/Sub gone (the subscription deleted or not allowed: at once; unreachable: for
  LOST_AFTER_SECONDS) ends the run with one line naming the subscription and the cause.
* The runner reads each message from a MessageView of the raw protobuf rather than
  through the client's proto-plus wrapper (about 60 us a message, 5 us this way).
* With `prefetch` (a local run's), the pulls run on a thread of their own, one bundle ahead
  of the runner, whose pull takes what is ready: on the runner's one thread, pulling was
  about 40% of a backlog drain's time, waiting on Pub/Sub while nothing else ran.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time

from local_runtime.ledger import AckLedger
from local_runtime.limits import (
    FULL_PAGE,
    PREFETCH_PULL_SECONDS,
    PULL_MAX_MESSAGES,
    PULL_TARGET_BYTES,
)
from local_runtime.shared import LEDGER, SUPERVISOR, Supervisor

LOST_AFTER_SECONDS = 20
_PAUSE_SECONDS = 0.05  # the runner asks again at once after an empty pull: do not spin
_RETRY_SECONDS = 1
# The runner's pull waits this long for a prefetched bundle before it returns an empty one: an
# empty bundle is cheap, and the runner then sees a failure or a stop within this.
_TAKE_SECONDS = 1

_log = logging.getLogger(__name__)


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


class MessageView:
    """A pulled message's fields, read once from the raw protobuf: what the DirectRunner's
    read reads of a message (see beam_private.pubsub_read_evaluator), at a tenth of the cost
    of reading them through the client's proto-plus wrapper (about 60 us a message, which
    was a fifth of the job's CPU per message)."""

    __slots__ = ("data", "attributes", "message_id", "publish_time", "ordering_key", "size")

    def __init__(self, pb):
        self.data = pb.data
        self.attributes = dict(pb.attributes)
        self.message_id = pb.message_id
        self.publish_time = publish_time(pb.publish_time)
        self.ordering_key = pb.ordering_key
        self.size = pb.ByteSize()


def publish_time(stamp) -> datetime.datetime:
    """The message's publish time; the pull's own time when Pub/Sub's answer holds one that no
    datetime can (the protobuf allows any 64-bit seconds): it was published before the pull,
    and a timestamp is needed for the watermark either way, so the pull is not lost to it."""
    try:
        return _EPOCH + datetime.timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)
    except OverflowError:
        return datetime.datetime.now(datetime.UTC)


class Received:
    __slots__ = ("ack_id", "message")

    def __init__(self, ack_id: str, message):
        self.ack_id = ack_id
        self.message = message


def received_messages(response) -> list:
    """The messages of a pull response, as MessageViews (or as they are, from a client that
    does not answer with the library's protobuf messages)."""
    try:
        pb = type(response).pb(response)
    except (AttributeError, TypeError):
        return list(response.received_messages)
    return [Received(r.ack_id, MessageView(r.message)) for r in pb.received_messages]


def message_bytes(message) -> int:
    size = getattr(message, "size", None)
    if size is not None:
        return size
    return len(message.data) + sum(len(k) + len(v) for k, v in message.attributes.items())


def _describe(error: Exception) -> str:
    detail = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {detail}"


class LocalSubscriber:
    """The DirectRunner's subscriber client, with pulls sized like Dataflow's and, while the
    ledger holds, acknowledgements held back until each message is answered."""

    wraps_beams_client = True  # see beam_private.wrap_direct_pubsub_subscriber

    def __init__(
        self,
        client,
        max_messages: int | None = None,
        ledger: AckLedger = LEDGER,
        supervisor: Supervisor = SUPERVISOR,
        prefetch: bool = False,
    ):
        self._client = client
        self._prefetch = prefetch
        self._ahead = None  # the _Prefetcher, from the first pull on
        # Read here, not bound at definition: bench/mnist_stream_bench.py --pull-max sets it.
        self._max_messages = max_messages or PULL_MAX_MESSAGES
        self._ledger = ledger
        self._supervisor = supervisor
        self._largest = 0  # bytes of the largest message of the last pull that brought any
        self._too_big = None  # a count a pull's answer was too big for, until one fits
        self._failing_since = None

    def pull(self, **kwargs):
        if self._prefetch:
            if self._ahead is None:
                self._ahead = _Prefetcher(self, kwargs)
            if kwargs["subscription"] == self._ahead.subscription:
                return _Pulled(self._ahead.take(_TAKE_SECONDS))
        return _Pulled(self.pull_now(kwargs))

    def pull_now(self, kwargs) -> list:
        """One bundle's messages, pulled now (held in the ledger while it holds)."""
        if self._paused():
            # Not counted as a pull in flight: a stop waits for real pulls only, and the
            # prefetch thread keeps calling while paused.
            time.sleep(_PAUSE_SECONDS)
            return []
        self._ledger.pull_started()
        try:
            return self._pull(**kwargs)
        finally:
            self._ledger.pull_ended()

    def failed(self) -> bool:
        return self._supervisor.failure is not None

    def _paused(self) -> bool:
        ledger = self._ledger
        return self._supervisor.failure is not None or (
            ledger.holding and (ledger.stopping or ledger.full())
        )

    def wanted(self, asked: int = 0) -> int:
        """How many messages the next pull asks for."""
        wanted = max(asked, self._max_messages)
        if self._largest:
            wanted = min(wanted, max(1, PULL_TARGET_BYTES // self._largest))
        if self._too_big:
            wanted = min(wanted, max(1, self._too_big // 2))
        return wanted

    def _pull(self, **kwargs):
        if self._paused():  # stopped while this pull was being counted
            return []
        wanted = self.wanted(kwargs.get("max_messages", 0))
        kwargs["max_messages"] = wanted
        received = self._call_pull(kwargs)
        if received is None:
            return []
        last = len(received)
        size = sum(message_bytes(m.message) for m in received)
        while (
            FULL_PAGE <= last
            and len(received) < wanted
            and size < PULL_TARGET_BYTES
            and not self._paused()
        ):
            # A backlog: more at once, never waiting for it (a pull that returns fewer than
            # FULL_PAGE, at a low rate the first, ends the bundle).
            more = self._call_pull(
                {**kwargs, "max_messages": wanted - len(received), "return_immediately": True}
            )
            if more is None:
                break
            last = len(more)
            received += more
            size += sum(message_bytes(m.message) for m in more)
        if received:
            self._largest = max(message_bytes(m.message) for m in received)
        ledger = self._ledger
        if ledger.holding:
            if ledger.stopping or self._supervisor.failure is not None:
                # stopped while this pull waited: give them back now
                ledger.hand_back(
                    [(self._client, kwargs["subscription"], m.ack_id) for m in received]
                )
                return []
            ledger.hold(self._client, kwargs["subscription"], received)
        return received

    def _call_pull(self, kwargs):
        """The messages of one pull, no retries of the client library's own (they would
        hide a lost Pub/Sub for minutes); None when it brought nothing usable."""
        from google.api_core import exceptions

        subscription = kwargs["subscription"]
        try:
            response = self._client.pull(**kwargs, retry=None)
        except exceptions.DeadlineExceeded:
            return None  # nothing arrived while the pull waited
        except exceptions.ResourceExhausted as error:
            if "larger than max" not in str(error):
                return self._transient(subscription, error)  # a quota: wait and retry
            if kwargs["max_messages"] == 1:
                self._fatal(f"a message on {subscription} is too big: {_describe(error)}", error)
                return None
            # The answer was too big for the channel: the server leased those messages to
            # this pull, and they come back after their ack deadline. Ask for fewer.
            self._ledger.lost_pulls += 1
            self._too_big = kwargs["max_messages"]
            _log.warning(
                "a pull of %d messages from %s was too big (%s); asking for %d",
                kwargs["max_messages"],
                subscription,
                _describe(error),
                self.wanted(),
            )
            return None
        except (
            exceptions.NotFound,
            exceptions.PermissionDenied,
            exceptions.Unauthenticated,
            exceptions.InvalidArgument,
            exceptions.FailedPrecondition,
        ) as error:
            self._fatal(f"cannot pull from {subscription}: {_describe(error)}", error)
            return None
        except exceptions.GoogleAPICallError as error:
            return self._transient(subscription, error)
        self._failing_since = None
        self._too_big = None
        return received_messages(response)

    def _transient(self, subscription: str, error: Exception):
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
            _log.warning("pulling from %s failed (%s); retrying", subscription, _describe(error))
        if now - self._failing_since >= LOST_AFTER_SECONDS:
            self._fatal(
                f"lost Pub/Sub: cannot pull from {subscription} for {LOST_AFTER_SECONDS} s: "
                f"{_describe(error)}",
                error,
            )
        else:
            time.sleep(_RETRY_SECONDS)
        return None

    def _fatal(self, line: str, error: Exception) -> None:
        if not self._supervisor.active:
            raise error  # no run watching (a test, a plain pipeline.run()): Beam's behaviour
        self._supervisor.fail(line)
        time.sleep(_PAUSE_SECONDS)

    def acknowledge(self, **kwargs):
        if self._ledger.holding:
            return None  # acknowledged by the publishing step, once answered
        return self._client.acknowledge(**kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


class _Prefetcher:
    """Pulls a subscription one bundle ahead of the runner, on a thread of its own.

    What it pulled is held in the ledger from the pull on (leased, and handed back by a stop
    like the rest); a bundle ready when the run stops is still given to the runner, which
    finishes it, as it finishes the bundle it is working on. Without a run watching, an
    error of a pull is raised by the runner's next pull, as Beam's own read would raise it.
    """

    def __init__(self, subscriber: LocalSubscriber, kwargs: dict):
        self.subscription = kwargs["subscription"]
        self._subscriber = subscriber
        self._kwargs = {**kwargs, "timeout": PREFETCH_PULL_SECONDS}
        self._ready = threading.Condition()
        self._bundle = None  # the next bundle's messages, once pulled
        self._error = None
        threading.Thread(target=self._run, name="pubsub-prefetch", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: self._bundle is None)
            started = time.monotonic()
            try:
                received = self._subscriber.pull_now(dict(self._kwargs))
            except BaseException as error:  # noqa: BLE001 - raised by the runner's pull
                with self._ready:
                    self._error = error
                    self._ready.notify_all()
                return
            if not received and time.monotonic() - started < _PAUSE_SECONDS:
                time.sleep(_PAUSE_SECONDS)  # a server that answers "nothing" at once
            if received:
                with self._ready:
                    self._bundle = received
                    self._ready.notify_all()

    def take(self, timeout: float) -> list:
        """The next bundle's messages, waiting up to `timeout` for them; [] if none came."""
        with self._ready:
            self._ready.wait_for(
                lambda: self._bundle is not None or self._error is not None, timeout
            )
            if self._bundle is None or self._subscriber.failed():
                if self._error is not None:
                    raise self._error
                return []
            received, self._bundle = self._bundle, None
            self._ready.notify_all()
            return received


class _Pulled:
    """Several pulls' messages as one response (what the runner reads of a response)."""

    def __init__(self, received_messages: list):
        self.received_messages = received_messages


def _replace_beams_client(beams_client):
    from pipelines.io.pubsub_clients import subscriber_client

    beams_client.close()  # never used: it has gRPC's 4 MiB receive limit on the emulator
    return LocalSubscriber(subscriber_client(), prefetch=True)


def use_local_subscriber() -> bool:
    """Makes the DirectRunner read Pub/Sub through LocalSubscriber (once per process); False,
    with a warning, if this Beam version reads differently (then it keeps Beam's pulls and
    acknowledgements)."""
    from local_runtime.beam_private import wrap_direct_pubsub_subscriber

    if wrap_direct_pubsub_subscriber(_replace_beams_client):
        return True
    _log.warning(
        "DirectRunner Pub/Sub read not recognised; keeping its 10-message pulls "
        "and its acknowledgement on pull"
    )
    return False
