"""The MNIST model behind both MNIST jobs, as a Beam RunInference `ModelHandler`.

One example is a float32 numpy array of NUM_PIXELS pixels; its inference is a float32 array
of NUM_CLASSES probabilities (P0..P9) summing to 1. What a model folder holds, and the
signature, are the contract in `pipelines/mnist/contract.py`.

We do not use Beam's TFModelHandlerNumpy: it imports tensorflow_hub, which the image does
not ship, and it cannot read the lab's checkpoint. TensorFlow is imported only when a
model loads, so building or launching a pipeline never pays for (or needs) it.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from pipelines.core.models import keep_loaded
from pipelines.mnist.contract import (
    CHECKPOINT_INDEX,
    CHECKPOINT_META,
    CHECKPOINT_PREFIX,
    INPUT_NAME,
    NUM_PIXELS,
    OUTPUT_NAME,
    SAVED_MODEL_FILE,
    SIGNATURE_KEY,
)
from pipelines.mnist.contract import EXPECTED as _EXPECTED
from pipelines.mnist.location import matched_models, model_files, model_problem

# The MNIST composites batch before parsing (pipelines/mnist/transforms.py, where the bounds
# are): each example is then already a batch [N, 784], and one example is one model call.
DEFAULT_MIN_BATCH_SIZE = 1
DEFAULT_MAX_BATCH_SIZE = 1

_log = logging.getLogger(__name__)

LOOKED_AT_AGAIN = "looked at again when any of its files changes"


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


class SavedModelMnist:
    """Our own export: a SavedModel with the `serving_default` signature."""

    def __init__(self, path: str):
        tf = _tf()
        # Keep the loaded object: a signature alone does not keep its variables alive.
        self._loaded = tf.saved_model.load(path)
        signature = self._loaded.signatures.get(SIGNATURE_KEY)
        if signature is None:
            raise ValueError(
                f"{path}: the SavedModel has no '{SIGNATURE_KEY}' signature "
                f"(it has {sorted(self._loaded.signatures)}); expected {_EXPECTED}"
            )
        inputs = signature.structured_input_signature[1]
        outputs = signature.structured_outputs
        if set(inputs) != {INPUT_NAME} or OUTPUT_NAME not in outputs:
            raise ValueError(
                f"{path}: signature '{SIGNATURE_KEY}' takes {sorted(inputs)} and returns "
                f"{sorted(outputs)}; expected {_EXPECTED}"
            )
        self._signature = signature
        self._tf = tf

    def predict(self, images: np.ndarray) -> np.ndarray:
        result = self._signature(**{INPUT_NAME: self._tf.constant(images)})
        return result[OUTPUT_NAME].numpy().astype(np.float32, copy=False)


class LabCheckpointMnist:
    """The lab's TF1 checkpoint, run in a tf.compat.v1 Session on its own graph."""

    def __init__(self, folder: str, source: str | None = None):
        tf = _tf()
        v1 = tf.compat.v1
        source = source or folder  # where the user's files are, for messages
        prefix = os.path.join(folder, CHECKPOINT_PREFIX)
        self._graph = tf.Graph()
        with self._graph.as_default():
            # The lab trained on other machines; their device placements mean nothing here.
            saver = v1.train.import_meta_graph(prefix + ".meta", clear_devices=True)
            inputs = self._collection("inputs", source)
            outputs = self._collection("outputs", source)
            for name, names in ((INPUT_NAME, inputs), (OUTPUT_NAME, outputs)):
                if name not in names:
                    raise ValueError(
                        f"{source}: the checkpoint's collection names {sorted(names)}, "
                        f"not '{name}'; expected {_EXPECTED}"
                    )
            self._image = self._graph.get_tensor_by_name(inputs[INPUT_NAME])
            self._key = self._graph.get_tensor_by_name(inputs["key"]) if "key" in inputs else None
            self._scores = self._graph.get_tensor_by_name(outputs[OUTPUT_NAME])
            self._session = v1.Session(graph=self._graph)
            if saver is not None:  # None: the graph has no variables to restore
                saver.restore(self._session, prefix)
        self._apply_softmax = not _is_softmax(self._scores)
        if self._apply_softmax:
            _log.warning(
                "%s: output 'scores' (%s) is not a softmax; treating it as logits",
                source,
                self._scores.op.type,
            )

    def _collection(self, name: str, source: str) -> dict:
        merged = {}
        for entry in self._graph.get_collection(name):
            merged.update(json.loads(entry))
        if not merged:
            raise ValueError(f"{source}: the checkpoint's graph has no '{name}' collection")
        return merged

    def predict(self, images: np.ndarray) -> np.ndarray:
        feed = {self._image: images.astype(self._image.dtype.as_numpy_dtype, copy=False)}
        if self._key is not None:
            # The lab's `scores` do not depend on `key` (its graph only echoes it back);
            # feeding it anyway costs nothing and keeps a graph whose scores do need it working.
            keys = np.arange(len(images))
            if self._key.dtype.is_integer:
                feed[self._key] = keys.astype(self._key.dtype.as_numpy_dtype)
            else:
                feed[self._key] = np.array([str(k).encode() for k in keys], dtype=object)
        scores = np.asarray(self._session.run(self._scores, feed_dict=feed), np.float32)
        return _softmax(scores) if self._apply_softmax else scores


def _is_softmax(tensor) -> bool:
    """Whether `tensor` is a softmax, looking through the identities that exporters add.

    The lab's exporter sets outputs['scores'] to the result of tf.nn.softmax over the
    network's logits (its training loss is -sum(t * log(p)) on that same tensor), so the
    lab's `scores` are already probabilities and must not be normalised again. A graph
    whose `scores` come from anything else is taken to give logits.
    """
    op = tensor.op
    while op.type in ("Identity", "StopGradient", "Snapshot") and op.inputs:
        op = op.inputs[0].op
    return op.type == "Softmax"


def _is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def load_model(path: str):
    """Load the model at `path` (local or gs://), whichever of the two formats it holds.

    Returns an object whose `predict(float32 [N, 784]) -> float32 [N, 10]` gives
    probabilities. Raises ValueError naming `path` if it holds neither format.
    """
    tf = _tf()
    gfile = tf.io.gfile
    if not gfile.isdir(path):
        raise ValueError(f"{path}: model folder not found; expected a folder with {_EXPECTED}")
    if gfile.exists(os.path.join(path, SAVED_MODEL_FILE)):
        return SavedModelMnist(path)

    prefix = os.path.join(path, CHECKPOINT_PREFIX)
    if gfile.exists(os.path.join(path, CHECKPOINT_META)) and gfile.exists(
        os.path.join(path, CHECKPOINT_INDEX)
    ):
        shards = gfile.glob(prefix + ".data-*")
        if not shards:
            raise ValueError(f"{path}: checkpoint has no {CHECKPOINT_PREFIX}.data-* file")
        if not _is_remote(path):
            return LabCheckpointMnist(path)
        # TF1's Saver wants a local prefix; once restored, the weights live in the
        # session, so the copies can go.
        with tempfile.TemporaryDirectory(prefix="mnist-checkpoint-") as local:
            for source in [prefix + ".meta", prefix + ".index", *shards]:
                gfile.copy(source, os.path.join(local, os.path.basename(source)))
            return LabCheckpointMnist(local, source=path)

    raise ValueError(f"{path}: no model found; expected {_EXPECTED}")


def _load_logged(path: str):
    # One line per load, with the process: how an operator (and tests/system/image) sees that
    # each worker process loads its model once, and from where.
    started = time.monotonic()
    model = load_model(path)
    _warm_up(model)
    _log.info(
        "MNIST model loaded from %s in %.1f s (pid %d)",
        path,
        time.monotonic() - started,
        os.getpid(),
    )
    return model


def _warm_up(model) -> None:
    # A loaded model's first call builds its kernels: ~140 ms against ~20 ms for a batch of
    # 256 afterwards. Paid here, with the load, rather than by the first batch (or, for a
    # model swapped in by the watch, by the first batch after the swap).
    try:
        model.predict(np.zeros((1, NUM_PIXELS), dtype=np.float32))
    except Exception as error:  # noqa: BLE001 - the batches will say so, as dead letters
        _log.warning("MNIST model warm-up failed: %s", error)


class WatchedModel:
    """The newest valid model of a file pattern, replaced while it runs.

    Loaded with the newest valid match; then a thread of this process looks every
    `check_seconds` and, when a match newer than the current model is valid and loads, swaps
    it in (one reference assignment: a batch runs whole on the model it started with, and
    its results name that model). A newer match that is not a valid model, or does not load,
    is logged once with its reason and ignored until any of its files changes: the current
    model stays. Every worker process watches for itself, so all of them switch within
    `check_seconds` plus the load time.
    """

    def __init__(self, pattern: str, check_seconds: float, load=_load_logged):
        self._pattern = pattern
        self._load = load
        self._refused: dict = {}  # folder: its match and files when it was refused
        self._current = None  # (ModelFile, model)
        for found in matched_models(pattern):
            if self._try(found):
                break
        if self._current is None:
            raise ValueError(f"{pattern}: no valid model matches; expected {_EXPECTED}")
        thread = threading.Thread(
            target=_watch,
            args=(weakref.ref(self), check_seconds),
            name="mnist-model-watch",
            daemon=True,
        )
        thread.start()

    @property
    def folder(self) -> str:
        return self._current[0].folder

    def current(self):
        """(model, its folder): one read, so that the two always agree."""
        found, model = self._current
        return model, found.folder

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self._current[1].predict(images)

    def _try(self, found) -> bool:
        # A refusal holds for the folder as it was: an upload that put the matched file
        # before the others is looked at again once any of its files changes.
        seen = (found, model_files(found.folder))
        if self._refused.get(found.folder) == seen:
            return False
        problem = model_problem(found.folder)
        if problem is None:
            try:
                model = self._load(found.folder)
            except Exception as error:  # noqa: BLE001 - a bad upload must not stop the job
                problem = f"cannot load {found.folder!r}: {error}"
        if problem is not None:
            self._refused[found.folder] = seen
            keeping = f"; keeping {self.folder}" if self._current else ""
            _log.warning(
                "MNIST model %s ignored: %s%s; %s",
                found.folder,
                problem,
                keeping,
                LOOKED_AT_AGAIN,
            )
            return False
        previous, self._current = self._current, (found, model)
        if previous is not None:
            _log.info("MNIST model switched from %s to %s", previous[0].folder, found.folder)
        return True

    def look(self) -> None:
        """Swap in the newest valid match newer than the current model, if any."""
        newest = self._current[0].updated
        for found in matched_models(self._pattern):
            if found.updated <= newest or self._try(found):
                return


def _watch(model_ref, check_seconds: float) -> None:
    # A weak reference: the thread ends once nothing holds the model (RunInference let go,
    # and keep_loaded keeps a newer one).
    while True:
        time.sleep(check_seconds)
        model = model_ref()
        if model is None:
            return
        try:
            model.look()
        except Exception as error:  # noqa: BLE001 - an unreadable bucket for a moment
            _log.warning("MNIST model watch: cannot look at %s: %s", model._pattern, error)
        del model


def model_folder(model) -> tuple[Any, str | None]:
    """(the model to predict with, the folder it came from) of what load_model returned."""
    if isinstance(model, WatchedModel):
        return model.current()
    return model, getattr(model, "folder", None)


class MnistModelHandler(ModelHandler[np.ndarray, PredictionResult, Any]):
    """RunInference handler: float32 [784] pixels (or a batch [N, 784]) ->
    PredictionResult(pixels, float32 [10] (or [N, 10]), model_id=the model's folder).

    The model is `model_path`, or with `model_pattern` a WatchedModel of that pattern that
    looks for a newer model every `model_check_seconds`. Batching bounds go to
    beam.BatchElements. The model is loaded once per worker process (it is small), not
    shared across them, and kept between bundles (pipelines/core/models.py, keep_loaded).
    """

    def __init__(
        self,
        model_path: str | None,
        *,
        model_pattern: str | None = None,
        model_check_seconds: float = 60,
        min_batch_size: int = DEFAULT_MIN_BATCH_SIZE,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_batch_duration_secs: int | None = None,
        large_model: bool = False,
        model_copies: int | None = None,
        **kwargs,
    ):
        super().__init__(
            # A caller who only lowers the maximum means "smaller batches", not an error.
            min_batch_size=min(min_batch_size, max_batch_size),
            max_batch_size=max_batch_size,
            max_batch_duration_secs=max_batch_duration_secs,
            large_model=large_model,
            model_copies=model_copies,
            **kwargs,
        )
        self._model_path = model_path
        self._model_pattern = model_pattern
        self._model_check_seconds = model_check_seconds

    @property
    def model_path(self) -> str | None:
        return self._model_path

    def load_model(self):
        if self._model_pattern:
            model = WatchedModel(self._model_pattern, self._model_check_seconds)
        else:
            model = _load_logged(self._model_path)
            model.folder = self._model_path
        source = ("mnist", self._model_path, self._model_pattern, self._model_check_seconds)
        return keep_loaded(source, model)

    def run_inference(
        self,
        batch: Sequence[np.ndarray],
        model,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        if not batch:
            return []
        model, folder = model_folder(model)
        # An example is one image [NUM_PIXELS] or a batch of them [N, NUM_PIXELS] (the batch
        # job batches before parsing); either way the model sees one array.
        arrays = [np.asarray(x, dtype=np.float32) for x in batch]
        for array in arrays:
            if array.ndim not in (1, 2) or array.shape[-1] != NUM_PIXELS:
                raise ValueError(
                    f"each example must be {NUM_PIXELS} pixels or a batch "
                    f"[N, {NUM_PIXELS}]; got shape {array.shape}"
                )
        images = (
            arrays[0]
            if len(arrays) == 1 and arrays[0].ndim == 2
            else np.concatenate([a.reshape(-1, NUM_PIXELS) for a in arrays])
        )
        probabilities = model.predict(images)
        results, start = [], 0
        for example, array in zip(batch, arrays):
            rows = 1 if array.ndim == 1 else len(array)
            inference = (
                probabilities[start] if array.ndim == 1 else probabilities[start : start + rows]
            )
            results.append(PredictionResult(example, inference, folder))
            start += rows
        return results

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return sum(np.asarray(x).nbytes for x in batch)

    def get_metrics_namespace(self) -> str:
        return "BeamML_MNIST"

    def validate_inference_args(self, inference_args: dict[str, Any] | None):
        if inference_args:
            raise ValueError(f"MnistModelHandler takes no inference_args: {inference_args}")

    def update_model_path(self, model_path: str | None = None):
        if model_path:
            self._model_path = model_path
            self._model_pattern = None
