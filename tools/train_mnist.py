"""Train the small MNIST CNN that the MNIST jobs ship, and export it as a SavedModel.

    python -m tools.train_mnist [--epochs 12] [--seed 42] [--output models/mnist]

Reproducible on CPU: fixed seeds and TensorFlow's op determinism, trained on the 50k
train split, the epoch kept is the one with the best validation accuracy, and the
accuracy reported is on the official 10k test split (never used for choices).

The export is a plain `tf.Module` whose variables are copied out of the Keras model, so
loading needs only `tf.saved_model.load` (no Keras). Signature `serving_default`:
input `image` float32 [None, 784] (the CSV's row-major 28x28 in [0, 1]) -> output
`scores` float32 [None, 10] (softmax probabilities).
"""

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tools.mnist_data import NotMnistData, load_mnist

SIGNATURE_KEY = "serving_default"
INPUT_NAME = "image"
OUTPUT_NAME = "scores"


def build_keras_model(tf):
    layers = tf.keras.layers
    return tf.keras.Sequential(
        [
            tf.keras.Input(shape=(784,), name=INPUT_NAME),
            layers.Reshape((28, 28, 1)),
            layers.Conv2D(32, 3, activation="relu", name="conv1"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu", name="conv2"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(128, activation="relu", name="hidden"),
            layers.Dropout(0.5),
            layers.Dense(10, name="logits"),
        ]
    )


def make_serving_module(tf, keras_model):
    """A Keras-free copy of the trained network (dropout is a no-op at inference)."""
    conv1 = keras_model.get_layer("conv1")
    conv2 = keras_model.get_layer("conv2")
    hidden = keras_model.get_layer("hidden")
    logits = keras_model.get_layer("logits")

    module = tf.Module(name="mnist_cnn")
    module.conv1_w = tf.Variable(conv1.kernel.numpy(), trainable=False, name="conv1_w")
    module.conv1_b = tf.Variable(conv1.bias.numpy(), trainable=False, name="conv1_b")
    module.conv2_w = tf.Variable(conv2.kernel.numpy(), trainable=False, name="conv2_w")
    module.conv2_b = tf.Variable(conv2.bias.numpy(), trainable=False, name="conv2_b")
    module.hidden_w = tf.Variable(hidden.kernel.numpy(), trainable=False, name="hidden_w")
    module.hidden_b = tf.Variable(hidden.bias.numpy(), trainable=False, name="hidden_b")
    module.logits_w = tf.Variable(logits.kernel.numpy(), trainable=False, name="logits_w")
    module.logits_b = tf.Variable(logits.bias.numpy(), trainable=False, name="logits_b")

    @tf.function(input_signature=[tf.TensorSpec([None, 784], tf.float32, name=INPUT_NAME)])
    def serve(image):
        x = tf.reshape(image, [-1, 28, 28, 1])
        x = tf.nn.relu(tf.nn.conv2d(x, module.conv1_w, 1, "VALID") + module.conv1_b)
        x = tf.nn.max_pool2d(x, 2, 2, "VALID")
        x = tf.nn.relu(tf.nn.conv2d(x, module.conv2_w, 1, "VALID") + module.conv2_b)
        x = tf.nn.max_pool2d(x, 2, 2, "VALID")
        # Keras Flatten is row-major over (h, w, c), the same as tf.reshape here.
        x = tf.reshape(x, [-1, 5 * 5 * 64])
        x = tf.nn.relu(tf.matmul(x, module.hidden_w) + module.hidden_b)
        return {OUTPUT_NAME: tf.nn.softmax(tf.matmul(x, module.logits_w) + module.logits_b)}

    module.serve = serve
    return module


def accuracy(probabilities, labels):
    return float(np.mean(np.argmax(probabilities, axis=1) == labels))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", default="models/mnist")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.keras.utils.set_random_seed(args.seed)  # Python, numpy and TF seeds at once
    tf.config.experimental.enable_op_determinism()

    try:
        data = load_mnist()
    except (FileNotFoundError, NotMnistData) as error:
        sys.exit(f"train_mnist: {error}")
    print(
        f"data: train {len(data.train.labels)}, validation {len(data.validation.labels)}, "
        f"test {len(data.test.labels)}",
        flush=True,
    )

    model = build_keras_model(tf)
    # Cosine decay to zero: the last epochs fine-tune, which is worth a few tenths of a
    # percent on MNIST at no cost.
    steps = args.epochs * -(-len(data.train.labels) // args.batch_size)
    schedule = tf.keras.optimizers.schedules.CosineDecay(args.learning_rate, steps)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(schedule),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.summary()

    # Keep the epoch with the best validation accuracy; the test split stays unseen.
    best = tf.keras.callbacks.EarlyStopping(
        monitor="val_accuracy", patience=args.epochs, restore_best_weights=True
    )
    start = time.perf_counter()
    history = model.fit(
        data.train.images,
        data.train.labels,
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_data=(data.validation.images, data.validation.labels),
        shuffle=True,
        callbacks=[best],
        verbose=2,
    )
    train_seconds = time.perf_counter() - start
    val_acc = history.history["val_accuracy"]
    best_epoch = int(np.argmax(val_acc)) + 1

    module = make_serving_module(tf, model)
    serve_fn = module.serve.get_concrete_function()

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    # Write next to the target, then swap, so a failed export never leaves half a model.
    staging = Path(tempfile.mkdtemp(prefix=".mnist-export-", dir=output.parent))
    try:
        export_dir = staging / "model"
        tf.saved_model.save(module, str(export_dir), signatures={SIGNATURE_KEY: serve_fn})

        # Score what was written, through the same path the pipelines use.
        loaded = tf.saved_model.load(str(export_dir))
        signature = loaded.signatures[SIGNATURE_KEY]
        test_probs = np.concatenate(
            [
                signature(**{INPUT_NAME: tf.constant(chunk)})[OUTPUT_NAME].numpy()
                for chunk in np.array_split(data.test.images, 10)
            ]
        )
        keras_probs = tf.nn.softmax(model.predict(data.test.images, verbose=0)).numpy()
        max_diff = float(np.max(np.abs(test_probs - keras_probs)))
        if max_diff > 1e-4:
            raise RuntimeError(f"export differs from the Keras model by {max_diff}")

        metrics = {
            "test_accuracy": accuracy(test_probs, data.test.labels),
            "test_examples": int(len(data.test.labels)),
            "validation_accuracy": float(val_acc[best_epoch - 1]),
            "train_examples": int(len(data.train.labels)),
            "seed": args.seed,
            "epochs": args.epochs,
            "best_epoch": best_epoch,
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
            "train_seconds": round(train_seconds, 1),
            "tensorflow_version": tf.__version__,
            "keras_version": tf.keras.__version__,
            "python_version": platform.python_version(),
            "parameters": int(model.count_params()),
            "signature": {
                "name": SIGNATURE_KEY,
                "inputs": {INPUT_NAME: "float32 [None, 784], row-major 28x28 in [0, 1]"},
                "outputs": {OUTPUT_NAME: "float32 [None, 10], softmax probabilities"},
            },
        }
        (export_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        assets = export_dir / "assets"
        if assets.is_dir() and not any(assets.iterdir()):
            assets.rmdir()  # git keeps no empty folder; keep the tree what a clone has
        if output.exists():
            shutil.rmtree(output)
        export_dir.rename(output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    size = sum(p.stat().st_size for p in output.rglob("*") if p.is_file())
    print(
        f"test accuracy {metrics['test_accuracy']:.4f} (best epoch {best_epoch}, "
        f"val {metrics['validation_accuracy']:.4f}), trained in {train_seconds:.0f}s, "
        f"exported to {output} ({size / 1024:.0f} KiB)",
        flush=True,
    )
    return metrics


if __name__ == "__main__":
    main()
