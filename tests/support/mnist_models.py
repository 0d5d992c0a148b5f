"""Real TensorFlow model folders for tests of the model check: the lab's TF1 checkpoint with a
chosen input and output width, and hostile variants of it and of the bundled SavedModel.

TensorFlow only makes these fixtures; the check under test never imports it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from tests.support.processes import REPO

BUNDLED = REPO / "models" / "mnist"
LAB_FILES = ("export.meta", "export.index", "export.data-00000-of-00001")


def write_lab_checkpoint(
    tf,
    folder,
    *,
    key_dtype="int64",
    use_resource=False,
    softmax=True,
    pixels=784,
    classes=10,
):
    """A tiny checkpoint shaped like the lab's export: placeholders `key` and `image`,
    `scores`, and the JSON `inputs` / `outputs` collections, saved as `export`."""
    v1 = tf.compat.v1
    rng = np.random.default_rng(0)
    graph = tf.Graph()
    with graph.as_default():
        image = v1.placeholder(tf.float32, [None, pixels], name="image")
        key = v1.placeholder(tf.int64 if key_dtype == "int64" else tf.string, [None], name="key")
        weights = v1.Variable(
            rng.normal(0, 0.5, (pixels, classes)).astype(np.float32),
            name="w",
            use_resource=use_resource,
        )
        bias = v1.Variable(
            rng.normal(0, 0.5, classes).astype(np.float32), name="b", use_resource=use_resource
        )
        logits = tf.matmul(image, weights) + bias
        scores = tf.nn.softmax(logits) if softmax else tf.identity(logits)
        graph.add_to_collection("inputs", json.dumps({"key": key.name, "image": image.name}))
        graph.add_to_collection(
            "outputs", json.dumps({"key": tf.identity(key).name, "scores": scores.name})
        )
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            v1.train.Saver().save(session, str(Path(folder) / "export"))
            w, b = session.run([weights, bias])
    return w, b


def write_saved_model(tf, folder, *, classes=10) -> None:
    """A one-layer SavedModel with the contract's signature over `classes` classes."""
    module = tf.Module()
    module.w = tf.Variable(np.full((784, classes), 0.01, np.float32), name="w")

    @tf.function(input_signature=[tf.TensorSpec([None, 784], tf.float32, name="image")])
    def serve(image):
        return {"scores": tf.nn.softmax(tf.matmul(image, module.w))}

    tf.saved_model.save(module, str(folder), signatures={"serving_default": serve})


def noise(size: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def hostile_folders(tf, root: Path) -> dict[str, Path]:
    """{case: model folder}: a valid lab checkpoint ('lab', 'lab_resource') and each way the
    issue found a folder that passed the launch check and then failed on every row."""
    folders: dict[str, Path] = {}

    def lab(name: str, **options) -> Path:
        folder = root / name
        folder.mkdir(parents=True)
        write_lab_checkpoint(tf, folder, **options)
        (folder / "checkpoint").unlink()  # the Saver's bookkeeping, not part of the model
        folders[name] = folder
        return folder

    lab("lab")
    lab("lab_resource", use_resource=True)
    lab("lab_1024_pixels", pixels=1024)
    lab("lab_3_classes", classes=3)
    # The graph of one checkpoint with the weights of another: [784, 3] where it wants 10.
    other = lab("other_3_classes", classes=3)
    mixed = lab("lab_weights_of_another_shape")
    for name in LAB_FILES[1:]:
        shutil.copy(other / name, mixed / name)
    random_lab = lab("lab_random_index_and_data")
    for name in LAB_FILES[1:]:
        (random_lab / name).write_bytes(noise((random_lab / name).stat().st_size))
    truncated = lab("lab_truncated_data")
    with open(truncated / LAB_FILES[2], "r+b") as data:
        data.truncate(data.seek(0, os.SEEK_END) - 4)

    saved = root / "saved_model"
    write_saved_model(tf, saved)
    folders["saved_model"] = saved
    other_saved = root / "other_saved_model_3_classes"
    write_saved_model(tf, other_saved, classes=3)
    mixed_saved = root / "saved_model_weights_of_another_shape"
    shutil.copytree(saved, mixed_saved)
    shutil.rmtree(mixed_saved / "variables")
    shutil.copytree(other_saved / "variables", mixed_saved / "variables")
    folders[mixed_saved.name] = mixed_saved

    random_saved = root / "saved_model_random_variables"
    shutil.copytree(BUNDLED, random_saved)
    for path in (random_saved / "variables").iterdir():
        path.write_bytes(noise(path.stat().st_size, seed=1))
    folders[random_saved.name] = random_saved
    truncated_saved = root / "saved_model_truncated_data"
    shutil.copytree(BUNDLED, truncated_saved)
    (truncated_saved / "variables" / "variables.data-00000-of-00001").write_bytes(b"\0" * 1000)
    folders[truncated_saved.name] = truncated_saved
    return folders
