"""Every private Beam name the local stream runtime uses, in one place: the DirectRunner's
Pub/Sub read, which Dataflow never runs, and the work it repeats for every bundle or message
(DoFn signatures and state specs, the epoch of a timestamp; the product's own private names
are pipelines/core/beam_private.py).

Beam may change any of these in any release. Each is pinned by a test in
tests/unit/local_runtime/test_beam_private.py that fails when the installed Beam no longer has it
or no longer behaves as relied on here, so a Beam upgrade fails there, by name. Nothing
else in local_runtime/ (or bench/) reaches into Beam's private names (that test checks it).
"""

from __future__ import annotations

import threading
import types
import weakref

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


def cache_dofn_signatures() -> bool:
    """Makes Beam remember the argument lists of DoFn methods (and other functions) it
    inspects, per function, instead of inspecting them again for every bundle.

    Why: the DirectRunner sets up a fresh copy of every DoFn for each bundle, and each set-up
    inspects the signatures of its methods again (`apache_beam.transforms.core.
    get_function_args_defaults`, through `inspect.signature`): about 1,200 inspections a
    bundle for the MNIST stream job's ~13 steps, over a tenth of its runner thread's time. A
    function's signature does not change, so the answer is kept per function object (weakly:
    functions made per bundle go with their bundle); bound methods by their function, as
    their signature is the function's without `self`. Other callables are inspected as
    before. Once per process; False if this Beam version has no such function."""
    from apache_beam.transforms import core

    with _PATCH_LOCK:
        original = getattr(core, "get_function_args_defaults", None)
        if original is None:
            return False
        if getattr(original, "_pipelines_cached", False):
            return True
        plain = weakref.WeakKeyDictionary()
        bound = weakref.WeakKeyDictionary()

        def get_function_args_defaults(f):
            if isinstance(f, types.FunctionType):
                cache, key = plain, f
            elif isinstance(f, types.MethodType) and isinstance(f.__func__, types.FunctionType):
                cache, key = bound, f.__func__
            else:
                return original(f)
            found = cache.get(key)
            if found is None:
                found = cache[key] = original(f)
            args, defaults = found
            return list(args), list(defaults)  # callers own their lists

        get_function_args_defaults._pipelines_cached = True
        get_function_args_defaults._pipelines_original = original  # for its test
        core.get_function_args_defaults = get_function_args_defaults
    return True


def _specs_follow_the_class(cls, by_class: weakref.WeakKeyDictionary) -> bool:
    """Whether every DoFn of `cls` has the state and timer specs of any other, whatever its
    instance attributes: none of its methods has an `_inspect_<method>` hook (Beam asks
    those the instance, e.g. a Map's function), no `__slots__` (their values are instance
    attributes `dir` lists), no attribute look-up of its own."""
    found = by_class.get(cls)
    if found is None:
        found = by_class[cls] = (
            not any(name.startswith("_inspect_") for name in dir(cls))
            and not any(getattr(klass, "__slots__", ()) for klass in cls.__mro__)
            and cls.__getattribute__ is object.__getattribute__
            and cls.__dir__ is object.__dir__
            and not hasattr(cls, "__getattr__")
        )
    return found


def _shadows_a_descriptor(cls, name: str) -> bool:
    """Whether an instance attribute `name` hides what the class would give in its place
    that could be a method (a function, a classmethod, any descriptor); a plain class
    value hidden by the instance's (Beam's `_type_hints`, say) changes no spec."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return hasattr(type(klass.__dict__[name]), "__get__")
    return False


def cache_dofn_specs() -> bool:
    """Makes Beam remember which DoFn classes have no state and no timers, instead of
    finding it again for every bundle.

    Why: `apache_beam.transforms.userstate.get_dofn_specs` walks `dir()` of a DoFn and builds
    a `MethodWrapper` for each of its methods, to find the state and timer parameters among
    their defaults; the DirectRunner asks it about the fresh copy of every DoFn it sets up
    for each bundle, several times (about 7 ms a pass over the MNIST stream job's 10 ParDos,
    paid per bundle). The answer depends only on the class's methods when the instance holds
    no bound method and hides none of its class's methods (_shadows_a_descriptor), and when
    the class passes _specs_follow_the_class. Only "no state, no timers" is remembered (per
    class, weakly): a stateful DoFn's specs are objects its methods' defaults hold, which
    unpickling a class defined by value (cloudpickle) replaces, so Beam is asked again each
    time, as it is about any other DoFn and about one it refuses (it raises). Once per
    process; False if this Beam version has no such function."""
    from apache_beam.transforms import userstate

    with _PATCH_LOCK:
        original = getattr(userstate, "get_dofn_specs", None)
        if original is None:
            return False
        if getattr(original, "_pipelines_cached", False):
            return True
        stateless = weakref.WeakSet()
        plain_classes = weakref.WeakKeyDictionary()

        def get_dofn_specs(dofn):
            cls = type(dofn)
            own = getattr(dofn, "__dict__", None)
            if (
                own is None
                or not _specs_follow_the_class(cls, plain_classes)
                or any(
                    isinstance(value, types.MethodType) or _shadows_a_descriptor(cls, name)
                    for name, value in own.items()
                )
            ):
                return original(dofn)
            if cls in stateless:
                return set(), set()  # callers own their sets
            state_specs, timer_specs = original(dofn)
            if not state_specs and not timer_specs:
                stateless.add(cls)
            return state_specs, timer_specs

        get_dofn_specs._pipelines_cached = True
        get_dofn_specs._pipelines_original = original  # for its test
        userstate.get_dofn_specs = get_dofn_specs
    return True


def keep_timestamp_epoch() -> bool:
    """Makes Beam's `Timestamp.from_utc_datetime` use one epoch instead of building it again
    for every call (`Timestamp._epoch_datetime_utc`: `datetime.fromtimestamp(0, pytz.utc)`,
    about 1.4 us of the 3.9 the call takes): the DirectRunner's Pub/Sub read makes a
    Timestamp from each message's publish time. The epoch is the same immutable value
    every time. Once per process; False if this Beam version has no such method."""
    from apache_beam.utils.timestamp import Timestamp

    with _PATCH_LOCK:
        original = Timestamp.__dict__.get("_epoch_datetime_utc")
        if not isinstance(original, staticmethod):
            return False
        if getattr(original.__func__, "_pipelines_cached", False):
            return True
        epoch = original.__func__()

        def _epoch_datetime_utc():
            return epoch

        _epoch_datetime_utc._pipelines_cached = True
        _epoch_datetime_utc._pipelines_original = original  # for its test
        Timestamp._epoch_datetime_utc = staticmethod(_epoch_datetime_utc)
    return True
