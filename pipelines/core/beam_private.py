"""Every private Beam name (and every public one relied on for undocumented behaviour) that
`pipelines/` uses, in one place.

Beam may change any of these in any release. Each is pinned by a test in
tests/unit/core/test_beam_private.py that fails when the installed Beam no longer has it or
no longer behaves as relied on here, so a Beam upgrade fails there, by name, rather than as
a confusing run-time failure of a job. Nothing else in `pipelines/` reaches into Beam's
private names (tests/unit/core/test_beam_private.py checks that too).
"""

from __future__ import annotations

import threading

_PATCH_LOCK = threading.Lock()


# --- the launch ---------------------------------------------------------------------------


def beam_argument_parser(**kwargs):
    """The argument parser Beam's PipelineOptions parse with (it knows Beam's own option
    types, e.g. the `--experiments` list); `PipelineOptions._add_argparse_args(parser)` adds
    each options class's arguments to it."""
    from apache_beam.options.pipeline_options import _BeamArgumentParser

    return _BeamArgumentParser(**kwargs)


def add_option_arguments(options_class, parser) -> None:
    """Adds the arguments of one PipelineOptions subclass to `parser`."""
    options_class._add_argparse_args(parser)


def in_process_direct_runner():
    """Beam's DirectRunner that runs in this process and never tries its PrismRunner.

    Beam 2.77's DirectRunner (SwitchingDirectRunner) first tries PrismRunner, which it
    downloads from GitHub at run time, and falls back to the in-process runners only when
    that fails. The only switch it has is `is_interactive()` (meant for the interactive
    runner): it makes `run_pipeline` skip Prism and choose as before between the FnApiRunner
    (batch) and the BundleBasedDirectRunner (streaming, Pub/Sub)."""
    from apache_beam.runners.direct.direct_runner import SwitchingDirectRunner

    runner = SwitchingDirectRunner()
    runner.is_interactive()
    return runner


# --- the DirectRunner's Pub/Sub read ------------------------------------------------------


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
