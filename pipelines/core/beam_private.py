"""Every private Beam name (and every public one relied on for undocumented behaviour) that
`pipelines/` uses, in one place.

Beam may change any of these in any release. Each is pinned by a test in
tests/unit/core/test_beam_private.py that fails when the installed Beam no longer has it or
no longer behaves as relied on here, so a Beam upgrade fails there, by name, rather than as
a confusing run-time failure of a job. Nothing else in `pipelines/` reaches into Beam's
private names (tests/unit/core/test_beam_private.py checks that too).
"""

from __future__ import annotations

import copy
import copyreg

from apache_beam.options.pipeline_options import PipelineOptions

# --- the launch ---------------------------------------------------------------------------


def beam_argument_parser(**kwargs):
    """The argument parser Beam's PipelineOptions parse with (it knows Beam's own option
    types, e.g. the `--experiments` list); `PipelineOptions._add_argparse_args(parser)` adds
    each options class's arguments to it."""
    from apache_beam.options.pipeline_options import _BeamArgumentParser

    return _BeamArgumentParser(**kwargs)


def pipeline_options_classes() -> list:
    """Every PipelineOptions class Beam and the code imported so far define (Dataflow's
    included), once each: the classes whose arguments Beam's own parsing knows. Beam finds
    them the same way (`PipelineOptions.__subclasses__()`, direct subclasses only, in
    `get_all_options`); Beam has no public list of them."""
    from apache_beam.options.pipeline_options import PipelineOptions

    return list({str(c): c for c in PipelineOptions.__subclasses__()}.values())


def add_option_arguments(options_class, parser) -> None:
    """Adds the arguments of one PipelineOptions subclass to `parser`."""
    options_class._add_argparse_args(parser)


class _ViewCachingOptions(PipelineOptions):
    """PipelineOptions whose `view_as(cls)` answers from a cache.

    Beam's view_as builds an argparse parser for `cls` and parses the flags again on every
    call, and applying a transform calls it several times (TypeOptions alone ~400 times in
    wordcount2's build): about half of a graph build. A view holds no values of its own: it
    reads and writes the `_all_options` dict it shares with the options it came from, and its
    `_visible_options` depend only on `cls` and `_flags`. So one view per class is the same
    view every later call would build, as long as `_flags` and `_all_options` are the same
    objects (checked on each call, so a replaced one gives a fresh view).

    Pipeline deep-copies the options it is given; the copy is of this class again, with an
    empty cache. Pickled (by a transform that keeps the options), it is a plain
    PipelineOptions, so no pickle names this class.
    """

    def view_as(self, cls):
        views = self.__dict__.setdefault("_views", {})
        view = views.get(cls)
        stale = view is None or view._flags is not self._flags
        if stale or view._all_options is not self._all_options:
            view = views[cls] = super().view_as(cls)
        return view

    def _state(self) -> dict:
        # Beam's own state (its __getstate__ drops one option from copies), without the cache.
        return {k: v for k, v in self.__getstate__().items() if k != "_views"}

    def __deepcopy__(self, memo):
        twin = object.__new__(type(self))
        memo[id(self)] = twin
        twin.__dict__.update(copy.deepcopy(self._state(), memo))
        return twin

    def __reduce_ex__(self, protocol):
        # copyreg's own reconstructor (the one protocols 0 and 1 use): object.__new__ of the
        # class named, then the state; unlike __newobj__ it may name another class.
        return copyreg._reconstructor, (PipelineOptions, object, None), self._state()


def view_caching_options(flags) -> PipelineOptions:
    """`PipelineOptions(flags)`, with each `view_as(cls)` built once (_ViewCachingOptions)."""
    return _ViewCachingOptions(flags)


def in_process_direct_runner():
    """Beam's DirectRunner that runs in this process and never tries its PrismRunner.

    Beam 2.77's DirectRunner (SwitchingDirectRunner) first tries PrismRunner, which it
    downloads from GitHub at run time, and falls back to the in-process runners only when
    that fails. The only switch it has is `is_interactive()` (meant for the interactive
    runner): it makes `run_pipeline` skip Prism and choose as before between the FnApiRunner
    (batch) and the BundleBasedDirectRunner (streaming, Pub/Sub)."""
    from apache_beam.runners.direct.direct_runner import SwitchingDirectRunner

    shorten_state_sampling(LOCAL_STATE_SAMPLING_MS)
    runner = SwitchingDirectRunner()
    runner.is_interactive()
    return runner


# The longest the end of a local bundle waits for Beam's state sampler. Each bundle starts a
# thread that samples which step is running, sleeping from 1/100 of its period up to the
# period itself (Beam's default 200 ms) between samples, and the bundle's end joins it: a
# bundle that ran a second or more waited 0-200 ms more, idle. On 10k rows of mnist_batch,
# 0.2 s of a 1.3 s run, 20 us a row of wall time. Sampling more often costs a lock and a
# clock read per sample.
LOCAL_STATE_SAMPLING_MS = 10


def shorten_state_sampling(period_ms: int) -> None:
    """Every StateSampler made without a period from now on, in this process (the bundle
    processors of the in-process runners make theirs so), samples at least every
    `period_ms`. Beam has no option for it: its period is `StateSampler.__init__`'s
    default."""
    from apache_beam.runners.worker import statesampler

    statesampler.StateSampler.__init__.__defaults__ = (period_ms,)
