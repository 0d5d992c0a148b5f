"""Where the MNIST model comes from: the `model` parameter, its default and its checks."""

from __future__ import annotations

import os
from pathlib import Path

from pipelines.params import Parameter, ParameterError

# The image sets PIPELINES_MODELS_DIR=/opt/models; a source checkout uses its models/ folder.
MODELS_DIR_ENV = "PIPELINES_MODELS_DIR"
IMAGE_MODEL_DIR = "/opt/models/mnist"
MODEL_FILES = ("saved_model.pb", "export.meta")

MODEL = Parameter(
    name="model",
    label="Model folder",
    help_text=(f"The TensorFlow model to classify with. Leave empty for the model baked into "
               f"the image at {IMAGE_MODEL_DIR} (a Keras CNN, 99.2% on the MNIST test set). "
               f"Otherwise a folder, e.g. gs://PROJECT-bucket/model, holding a SavedModel "
               f"(signature serving_default: image float32[None,784] -> scores[None,10]) or "
               f"the lab's TF1 checkpoint (export.meta, export.index, export.data-*)."),
    param_type="TEXT",
    optional=True,
)


def models_dir() -> Path:
    default = Path(__file__).resolve().parents[2] / "models"
    return Path(os.environ.get(MODELS_DIR_ENV) or default)


def resolve_model(value: str | None) -> str:
    return value or str(models_dir() / "mnist")


def check_model(value: str | None, *, on_dataflow: bool) -> None:
    """The folder holds one of the two model formats (checked without TensorFlow)."""
    from apache_beam.io.filesystems import FileSystems

    path = resolve_model(value)
    try:
        found = any(FileSystems.exists(FileSystems.join(path, name)) for name in MODEL_FILES)
    except Exception as error:  # noqa: BLE001 - an unreadable location is the user's answer
        raise ParameterError("model", f"cannot read {path!r}: {error}") from error
    if not found:
        what = "the default model" if not value else "no model"
        raise ParameterError(
            "model", f"{what} at {path!r}: expected a folder with saved_model.pb or the lab's "
                     f"export.meta checkpoint")
