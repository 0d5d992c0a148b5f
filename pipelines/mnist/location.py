"""Where the MNIST model comes from: the `model` parameter, its default and its checks."""

from __future__ import annotations

import os

from pipelines.core.checks import check_credentials, is_gcs
from pipelines.core.models import models_dir
from pipelines.core.params import Parameter, ParameterError
from pipelines.mnist import contract

IMAGE_MODEL_DIR = "/opt/models/mnist"

MODEL = Parameter(
    name="model",
    label="Model folder",
    help_text=(
        f"The TensorFlow model to classify with. Leave empty for the model baked into "
        f"the image at {IMAGE_MODEL_DIR} (a Keras CNN, 99.2% on the MNIST test set). "
        f"Otherwise a folder, e.g. gs://PROJECT-bucket/model, holding "
        f"{contract.EXPECTED}."
    ),
    # The console's folder picker: a form user can only name a gs:// folder anyway.
    param_type="GCS_READ_FOLDER",
    optional=True,
)


def resolve_model(value: str | None) -> str:
    return value or str(models_dir() / "mnist")


def check_model(value: str | None, *, on_dataflow: bool) -> None:
    """The folder holds a model of the contract (read and checked without TensorFlow), so a
    wrong folder is one line at launch rather than a crash on the first row."""
    from apache_beam.io.filesystems import FileSystems

    path = resolve_model(value)
    if is_gcs(path):
        check_credentials("model", path)
    elif os.path.isfile(path):
        raise ParameterError("model", f"{path!r} is a file; expected the folder that holds it")
    try:
        if FileSystems.exists(FileSystems.join(path, contract.SAVED_MODEL_FILE)):
            contract.check_saved_model(_read(FileSystems, path, contract.SAVED_MODEL_FILE))
            _require(FileSystems, path, contract.SAVED_MODEL_VARIABLES, "the SavedModel")
        elif FileSystems.exists(FileSystems.join(path, contract.CHECKPOINT_META)):
            _require(FileSystems, path, contract.CHECKPOINT_FILES, "the checkpoint")
            contract.check_checkpoint_meta(_read(FileSystems, path, contract.CHECKPOINT_META))
        else:
            what = "the default model is not" if not value else "no model"
            raise contract.ModelFormatError(f"{what} there")
    except contract.ModelFormatError as error:
        raise ParameterError("model", f"{path!r}: {error}; expected {contract.EXPECTED}") from None
    except Exception as error:  # noqa: BLE001 - an unreadable location is the user's answer
        raise ParameterError("model", f"cannot read {path!r}: {error}") from None


def _require(filesystems, folder: str, patterns: tuple[str, ...], what: str) -> None:
    # The weights: without them the graph checks out and loading fails on the workers, after
    # the work has started, with a long TensorFlow traceback.
    for pattern in patterns:
        if not filesystems.match([filesystems.join(folder, pattern)])[0].metadata_list:
            raise contract.ModelFormatError(f"{what} has no {pattern}")


def _read(filesystems, folder: str, name: str) -> bytes:
    with filesystems.open(filesystems.join(folder, name)) as handle:
        return handle.read()
