"""The ledger of pulled input messages not yet answered: what a local stream run may
acknowledge, must keep leased, or hands back when it stops."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from local_runtime.limits import (
    ACK_CHUNK,
    CALL_TIMEOUT_SECONDS,
    LEASE_SECONDS,
    MAX_HELD,
    MAX_HELD_BYTES,
)

_log = logging.getLogger(__name__)


def raw_request(name: str, **fields):
    """A Pub/Sub request of type `name` (google.pubsub_v1.types), built from the raw protobuf
    class: the client's proto-plus wrappers convert each ack id or message on its own (about
    2 us an ack id, 0.04 this way; about 20 us a published message), for every message a run
    answers."""
    from google.pubsub_v1 import types

    kind = getattr(types, name)
    return kind.wrap(kind.pb()(**fields))


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class Sent:
    """How an acknowledgement call (acknowledge, lease, hand back) went: `done` ack ids
    the server took, `failed` ones it did not (they come back after their ack deadline),
    and the first failure's description."""

    done: int = 0
    failed: int = 0
    error: str | None = None

    def add(self, other: Sent) -> Sent:
        return Sent(self.done + other.done, self.failed + other.failed, self.error or other.error)


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
        # Messages the server leased to a pull whose answer never arrived (too big for the
        # channel, a timeout): they come back after their ack deadline, uncounted here.
        self.lost_pulls = 0
        self.answered = 0  # messages answered so far, held or not (run.py: the run has set up)
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

    def release(self, message_ids) -> Sent:
        with self._lock:
            entries = [e for i in message_ids if i is not None for e in self._held.pop(i, ())]
            for message_id in message_ids:
                self._bytes.pop(message_id, None)
            self.answered += len(message_ids)
        return self._send(
            entries,
            lambda client, sub, ids: client.acknowledge(
                request=raw_request("AcknowledgeRequest", subscription=sub, ack_ids=ids),
                timeout=CALL_TIMEOUT_SECONDS,
            ),
        )

    def lease(self, seconds: int = LEASE_SECONDS) -> Sent:
        with self._lock:
            entries = [e for group in self._held.values() for e in group]
        return self._set_deadline(entries, seconds)

    def hand_back(self, entries=None) -> Sent:
        """Every held message (or `entries`) back to its subscription now (ack deadline 0);
        counts the ack ids the server took and those it did not."""
        if entries is None:
            with self._lock:
                entries = [e for group in self._held.values() for e in group]
                self._held.clear()
                self._bytes.clear()
        return self._set_deadline(entries, 0)

    def _set_deadline(self, entries, seconds: int) -> Sent:
        return self._send(
            entries,
            lambda client, sub, ids: client.modify_ack_deadline(
                request=raw_request(
                    "ModifyAckDeadlineRequest",
                    subscription=sub,
                    ack_ids=ids,
                    ack_deadline_seconds=seconds,
                ),
                timeout=CALL_TIMEOUT_SECONDS,
            ),
        )

    @staticmethod
    def _send(entries, call) -> Sent:
        groups: dict = {}
        for client, subscription, ack_id in entries:
            groups.setdefault((id(client), subscription), (client, subscription, []))[2].append(
                ack_id
            )
        sent = Sent()
        for client, subscription, ack_ids in groups.values():
            for chunk in _chunks(ack_ids, ACK_CHUNK):
                try:
                    call(client, subscription, chunk)
                except Exception as error:  # noqa: BLE001 - the deadline will hand them back
                    first = str(error).splitlines()[0] if str(error) else ""
                    detail = f"{type(error).__name__}: {first}"
                    _log.warning(
                        "Pub/Sub acknowledgement call on %s failed (%s): these %d "
                        "messages come back after their ack deadline",
                        subscription,
                        detail,
                        len(chunk),
                    )
                    sent = sent.add(Sent(0, len(chunk), detail))
                else:
                    sent = sent.add(Sent(len(chunk), 0))
        return sent
