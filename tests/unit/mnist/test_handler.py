"""pipelines.mnist.handler: the handler over our SavedModel and over the lab's TF1 checkpoint."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from pipelines.mnist import handler as mnist_model
from pipelines.mnist.handler import MnistModelHandler
from tests.support.mnist_models import write_lab_checkpoint

ROOT = Path(__file__).resolve().parents[3]
MODEL_DIR = ROOT / "models" / "mnist"
SAMPLE = ROOT / "data" / "mnist_sample.csv"
SAMPLE_LABELS = ROOT / "data" / "mnist_sample_labels.csv"


@pytest.fixture(scope="module")
def tf():
    import tensorflow

    return tensorflow


@pytest.fixture(scope="module")
def sample():
    with open(SAMPLE, newline="") as f:
        images = [np.array(row["Image"].split(","), dtype=np.float32) for row in csv.DictReader(f)]
    with open(SAMPLE_LABELS, newline="") as f:
        labels = np.array([int(row["Label"]) for row in csv.DictReader(f)])
    return images, labels


def test_handler_contract():
    handler = MnistModelHandler(str(MODEL_DIR))
    # The composites batch before parsing: one example is one batch, one model call.
    assert handler.batch_elements_kwargs() == {"min_batch_size": 1, "max_batch_size": 1}
    assert handler.share_model_across_processes() is False
    assert handler.get_metrics_namespace() == "BeamML_MNIST"
    with pytest.raises(ValueError, match="inference_args"):
        handler.validate_inference_args({"x": 1})
    custom = MnistModelHandler("m", min_batch_size=8, max_batch_size=64, max_batch_duration_secs=1)
    assert custom.batch_elements_kwargs() == {
        "min_batch_size": 8,
        "max_batch_size": 64,
        "max_batch_duration_secs": 1,
    }


def test_committed_savedmodel_is_accurate_on_the_bundled_sample(sample):
    images, labels = sample
    handler = MnistModelHandler(str(MODEL_DIR))
    model = handler.load_model()
    results = list(handler.run_inference(images, model))
    assert len(results) == len(images)
    probabilities = np.stack([r.inference for r in results])
    assert probabilities.shape == (200, 10) and probabilities.dtype == np.float32
    assert all(r.example is x for r, x in zip(results, images))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (probabilities >= 0).all()
    assert np.mean(probabilities.argmax(axis=1) == labels) >= 0.985


def test_committed_savedmodel_metrics():
    metrics = json.loads((MODEL_DIR / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.985 and metrics["test_examples"] == 10_000
    size = sum(p.stat().st_size for p in MODEL_DIR.rglob("*") if p.is_file())
    assert size < 2 * 1024 * 1024


def test_savedmodel_signature_needs_no_keras(tf):
    loaded = tf.saved_model.load(str(MODEL_DIR))
    signature = loaded.signatures["serving_default"]
    (spec,) = signature.structured_input_signature[1].values()
    assert list(signature.structured_input_signature[1]) == ["image"]
    assert spec.dtype == tf.float32 and spec.shape.as_list() == [None, 784]
    out = signature(image=tf.zeros([3, 784]))["scores"]
    assert out.shape == (3, 10) and out.dtype == tf.float32


def test_run_inference_in_a_beam_pipeline(sample):
    import apache_beam as beam
    from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
    from apache_beam.testing.util import assert_that

    images, labels = sample
    count = 40

    def check(predicted):
        got = dict(predicted)
        assert sorted(got) == list(range(count))
        correct = sum(got[i] == labels[i] for i in got)
        assert correct >= count - 1, correct

    handler = KeyedModelHandler(MnistModelHandler(str(MODEL_DIR), max_batch_size=16))
    with beam.Pipeline() as p:
        predicted = (
            p
            | beam.Create([(i, images[i]) for i in range(count)])
            | RunInference(handler)
            | beam.MapTuple(lambda key, result: (key, int(np.argmax(result.inference))))
        )
        assert_that(predicted, check)


# --- the lab's TF1 checkpoint ---------------------------------------------------------


def reference_probabilities(images, w, b):
    logits = np.stack(images).astype(np.float64) @ w + b
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize(
    "key_dtype, use_resource", [("int64", False), ("string", False), ("int64", True)]
)
def test_lab_checkpoint_loads_and_matches_a_direct_session(
    tf, tmp_path, sample, key_dtype, use_resource
):
    w, b = write_lab_checkpoint(tf, tmp_path, key_dtype=key_dtype, use_resource=use_resource)
    assert {p.name for p in tmp_path.iterdir()} >= {
        "export.meta",
        "export.index",
        "export.data-00000-of-00001",
    }
    images = sample[0][:37]

    # A direct session on the saved files, as the lab's own code would run it.
    v1 = tf.compat.v1
    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as session:
        saver = v1.train.import_meta_graph(str(tmp_path / "export.meta"))
        saver.restore(session, str(tmp_path / "export"))
        names = json.loads(graph.get_collection("outputs")[0])
        inputs = json.loads(graph.get_collection("inputs")[0])
        direct = session.run(names["scores"], {inputs["image"]: np.stack(images)})

    handler = MnistModelHandler(str(tmp_path))
    results = list(handler.run_inference(images, handler.load_model()))
    got = np.stack([r.inference for r in results])
    assert all(r.inference.shape == (10,) and r.inference.dtype == np.float32 for r in results)
    np.testing.assert_allclose(got, direct, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, reference_probabilities(images, w, b), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)


def test_lab_checkpoint_scores_that_are_logits_get_a_softmax(tf, tmp_path, sample):
    w, b = write_lab_checkpoint(tf, tmp_path, softmax=False)
    images = sample[0][:5]
    handler = MnistModelHandler(str(tmp_path))
    got = np.stack([r.inference for r in handler.run_inference(images, handler.load_model())])
    np.testing.assert_allclose(got, reference_probabilities(images, w, b), rtol=1e-4, atol=1e-5)


def test_remote_checkpoint_is_copied_to_a_local_folder_first(tf, tmp_path, sample):
    # ram:// stands in for gs://: both are non-local tf.io.gfile filesystems.
    w, b = write_lab_checkpoint(tf, tmp_path)
    remote = "ram://bucket/model"
    tf.io.gfile.makedirs(remote)
    for name in ("export.meta", "export.index", "export.data-00000-of-00001"):
        tf.io.gfile.copy(str(tmp_path / name), f"{remote}/{name}", overwrite=True)
    model = mnist_model.load_model(remote)
    images = sample[0][:4]
    np.testing.assert_allclose(
        model.predict(np.stack(images)),
        reference_probabilities(images, w, b),
        rtol=1e-4,
        atol=1e-5,
    )


def test_folder_with_neither_format_is_a_clear_error(tmp_path):
    (tmp_path / "model.h5").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="no model found") as error:
        mnist_model.load_model(str(tmp_path))
    message = str(error.value)
    assert str(tmp_path) in message
    assert "SavedModel" in message and "export.meta" in message


def test_missing_folder_is_a_clear_error(tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="not found") as error:
        MnistModelHandler(missing).load_model()
    assert missing in str(error.value)


def test_checkpoint_without_weights_is_a_clear_error(tf, tmp_path):
    write_lab_checkpoint(tf, tmp_path)
    (tmp_path / "export.data-00000-of-00001").unlink()
    with pytest.raises(ValueError, match="export.data"):
        mnist_model.load_model(str(tmp_path))


def test_wrong_example_size_is_rejected():
    handler = MnistModelHandler(str(MODEL_DIR))
    with pytest.raises(ValueError, match="784"):
        handler.run_inference([np.zeros(100, np.float32)], model=None)


def test_checkpoint_without_the_lab_collections_is_a_clear_error(tf, tmp_path):
    v1 = tf.compat.v1
    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as session:
        image = v1.placeholder(tf.float32, [None, 784], name="image")
        weights = v1.Variable(np.zeros((784, 10), np.float32), name="w")
        tf.nn.softmax(tf.matmul(image, weights), name="scores")
        session.run(v1.global_variables_initializer())
        v1.train.Saver().save(session, str(tmp_path / "export"))
    with pytest.raises(ValueError, match="no 'inputs' collection") as error:
        mnist_model.load_model(str(tmp_path))
    assert str(tmp_path) in str(error.value)


def test_the_handler_keeps_its_model_between_bundles():
    # RunInference holds the model only weakly between DirectRunner bundles; without
    # keep_loaded (pipelines/core/models.py) it was loaded again every bundle or two.
    import gc
    import weakref

    loaded = weakref.ref(MnistModelHandler(str(MODEL_DIR)).load_model())
    gc.collect()
    assert loaded() is not None
