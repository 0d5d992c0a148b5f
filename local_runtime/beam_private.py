"""Every private Beam name the local stream runtime uses, in one place: the DirectRunner's
Pub/Sub read, which Dataflow never runs (the product's own are
pipelines/core/beam_private.py).

Beam may change any of these in any release. Each is pinned by a test in
tests/unit/local_runtime/test_beam_private.py that fails when the installed Beam no longer has it
or no longer behaves as relied on here, so a Beam upgrade fails there, by name. Nothing
else in local_runtime/ (or bench/) reaches into Beam's private names (that test checks it).
"""

from __future__ import annotations

import threading

_PATCH_LOCK = threading.Lock()


def pubsub_read_evaluator():
    """The DirectRunner's evaluator of ReadFromPubSub. Its `_read_from_pubsub` pulls with
    `client.pull(subscription=, max_messages=10, timeout=30)` and, on return, acknowledges
    with `client.acknowledge(subscription=, ack_ids=)`, on the client that
    `_get_subscriber_client_state_unlocked(transform).client` caches per transform. Of the
    response it reads `received_messages`, of each `ack_id` and `message`, and of a message
    (through PubsubMessage._from_message) `data`, `attributes`, `message_id`,
    `publish_time` (a UTC datetime) and `ordering_key`."""
    from apache_beam.runners.direct import transform_evaluator

    return transform_evaluator._PubSubReadEvaluator


def wrap_direct_pubsub_subscriber(wrap) -> bool:
    """Makes the DirectRunner's Pub/Sub read use `wrap(beams_client)` as its subscriber
    client, for pulls, acknowledgements and the temporary subscription of a topic input
    alike. Once per process (later calls keep the first `wrap`). False if this Beam version
    reads differently."""
    try:
        evaluator = pubsub_read_evaluator()
        original = evaluator.__dict__["_get_subscriber_client_state_unlocked"].__func__
    except (ImportError, AttributeError, KeyError):
        return False
    with _PATCH_LOCK:
        if getattr(evaluator, "_pipelines_wrapped", False):
            return True

        def _get_subscriber_client_state_unlocked(cls, transform):
            state = original(cls, transform)
            if not getattr(state.client, "wraps_beams_client", False):
                state.client = wrap(state.client)
            return state

        evaluator._get_subscriber_client_state_unlocked = classmethod(
            _get_subscriber_client_state_unlocked
        )
        evaluator._pipelines_original = classmethod(original)  # for its test
        evaluator._pipelines_wrapped = True
    return True


def close_direct_pubsub_reads() -> None:
    """Closes every DirectRunner Pub/Sub read of this process: deletes the temporary
    subscription of a topic input and closes its client (Beam does it when the transform is
    garbage-collected or at interpreter exit)."""
    cache = pubsub_read_evaluator()._subscriber_client_cache
    for state in list(cache.values()):
        state.close()
