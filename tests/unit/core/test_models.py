"""pipelines.core.models.keep_loaded: a loaded model outlives the bundle that loaded it."""

import gc
import weakref

from apache_beam.utils import shared

from pipelines.core import models


class Model:
    pass


def test_a_kept_model_outlives_beams_displaced_keepalive():
    # What RunInference does on the DirectRunner: acquire the model through a Shared handle,
    # then (next bundle's setup) acquire its status through another, which takes the cache's
    # only strong reference; the bundle's DoFn copy, and its reference, are gone.
    handle = shared.Shared()
    model = handle.acquire(lambda: models.keep_loaded(("test", "a"), Model()), tag="a")
    kept = weakref.ref(model)
    unkept = weakref.ref(shared.Shared().acquire(Model, tag="b"))
    del model
    shared.Shared().acquire(Model, tag="status")
    gc.collect()
    assert unkept() is None  # what happened to the model without keep_loaded
    assert kept() is not None
    assert handle.acquire(Model, tag="a") is kept()  # found again, not loaded again


def test_a_source_keeps_only_its_last_model_and_few_sources_are_kept():
    first = weakref.ref(models.keep_loaded(("test", "x"), Model()))
    second = models.keep_loaded(("test", "x"), Model())
    gc.collect()
    assert first() is None
    others = [weakref.ref(models.keep_loaded(("test", i), Model())) for i in range(models.MAX_KEPT)]
    del second
    gc.collect()
    assert all(o() is not None for o in others)
    assert ("test", "x") not in models._KEPT
