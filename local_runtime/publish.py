"""Publishing on a local stream run: each bundle's messages published, then the inputs they
answer acknowledged; and dead letters logged, then acknowledged.

While a run watches and holds acknowledgements (run.py), a bundle's publish request and its
acknowledgements are made behind the runner, on a thread of their own (shared.PUBLISHING),
while the runner works on the next bundle: the runner's one thread otherwise waits for
Pub/Sub to answer both calls. An input is still acknowledged only after its outcome's
publish succeeded; a run that stops waits for what is being published (the ledger holds it).

A publish that fails (topic deleted, permission denied, Pub/Sub gone, or a message Pub/Sub
would refuse) acknowledges nothing more and tells the run, which stops with one line naming
the topic (see run.py): the unanswered input stays on the subscription.
"""

from __future__ import annotations

import functools
import threading

import apache_beam as beam

from local_runtime.ledger import AckLedger, raw_request
from local_runtime.shared import LEDGER, PUBLISHING, SUPERVISOR, Behind, Supervisor, publisher
from pipelines.io.pubsub import LogDeadLetterFn

PUBLISH_TIMEOUT_SECONDS = 30
_PUBLISH_CHUNK = 1000  # messages per publish request (Pub/Sub's maximum)
_PUBLISH_CHUNK_BYTES = 9_000_000  # under Pub/Sub's 10 MB per request


class PublishFailed(RuntimeError):
    def __init__(self, topic: str, error: Exception):
        detail = str(error).splitlines()[0] if str(error) else ""
        super().__init__(f"cannot publish to {topic}: {type(error).__name__}: {detail}")
        self.topic = topic


class PublishAndAcknowledgeFn(beam.DoFn):
    """Publishes each bundle's messages to one topic (one request per 1,000), then
    acknowledges the inputs they answer: behind the runner while a run watches."""

    answers_input = True  # see overrides.pipeline_answers_every_message

    def __init__(self, topic: str):
        self._topic = topic
        self._client = None
        self._pending = []

    def setup(self):
        self._client = publisher()

    def start_bundle(self):
        self._pending = []

    def process(self, outcome):
        self._pending.append(outcome)

    def finish_bundle(self):
        pending, self._pending = self._pending, []
        if pending:
            publish_behind(self._client, self._topic, pending)


def publish_behind(
    client,
    topic: str,
    outcomes: list,
    ledger: AckLedger = LEDGER,
    supervisor: Supervisor = SUPERVISOR,
    behind: Behind = PUBLISHING,
) -> None:
    """publish_and_acknowledge, on `behind`'s thread while a run watches and the ledger
    holds; else now (a test, a plain pipeline.run(): a failure raises as Beam's would)."""
    if supervisor.active and ledger.holding:
        behind.submit(
            functools.partial(publish_and_acknowledge, client, topic, outcomes, ledger, supervisor)
        )
    else:
        publish_and_acknowledge(client, topic, outcomes, ledger, supervisor)


def publish_and_acknowledge(
    client,
    topic: str,
    outcomes,
    ledger: AckLedger = LEDGER,
    supervisor: Supervisor = SUPERVISOR,
) -> None:
    """Publishes the messages of `outcomes` (deadletters.Outcome); acknowledges the inputs
    of those published. On a failure, the rest stay unacknowledged and the run stops (see
    the module docstring)."""
    from pipelines.core.deadletters import publish_problem

    for chunk in _publish_chunks(outcomes):
        try:
            for _, message in chunk:
                # The emulator takes what Pub/Sub refuses (101 attributes, long keys): refuse
                # it here too, so that a local run fails where Google Cloud would.
                problem = publish_problem(message)
                if problem:
                    raise ValueError(f"Pub/Sub would refuse a message: {problem}")
            client.api.publish(
                request=_publish_request(topic, chunk), timeout=PUBLISH_TIMEOUT_SECONDS
            )
        except Exception as error:
            failure = PublishFailed(topic, error)
            if not supervisor.active:
                raise failure from error
            supervisor.fail(str(failure))
            # The main thread ends the process; this thread (the runner's, or the publishing
            # one behind it) publishes nothing more.
            threading.Event().wait()
        ledger.release([source_id for source_id, _ in chunk])


def _publish_request(topic: str, outcomes):
    from google.pubsub_v1 import types

    message = types.PubsubMessage.pb()
    return raw_request(
        "PublishRequest",
        topic=topic,
        messages=[message(data=m.data or b"", attributes=m.attributes or {}) for _, m in outcomes],
    )


def _publish_chunks(outcomes):
    chunk, size = [], 0
    for outcome in outcomes:
        message = outcome.message
        message_size = len(message.data or b"") + sum(
            len(k) + len(v) for k, v in (message.attributes or {}).items()
        )
        if chunk and (len(chunk) >= _PUBLISH_CHUNK or size + message_size > _PUBLISH_CHUNK_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(outcome)
        size += message_size
    if chunk:
        yield chunk


class LogAndAcknowledgeFn(LogDeadLetterFn):
    """Logs a dead letter, then acknowledges the input it answers."""

    answers_input = True  # see overrides.pipeline_answers_every_message

    def process(self, outcome):
        super().process(outcome)
        LEDGER.release([outcome.source_id])
