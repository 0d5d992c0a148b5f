"""The `model` launch check: a folder passes only if it holds everything loading needs."""

from __future__ import annotations

import shutil

import pytest

from pipelines.core.params import ParameterError
from pipelines.mnist import contract
from pipelines.mnist.location import check_model
from tests.support.processes import REPO

MODEL = REPO / "models" / "mnist"


def saved_model_without(tmp_path, *missing: str):
    folder = tmp_path / "model"
    shutil.copytree(MODEL, folder)
    for name in missing:
        for path in folder.glob(name):
            path.unlink()
    return folder


def test_the_bundled_model_passes():
    check_model(str(MODEL), on_dataflow=False)


@pytest.mark.parametrize(
    "missing, reason",
    [
        (("variables/*",), "the SavedModel has no variables/variables.index"),
        (("variables/variables.index",), "the SavedModel has no variables/variables.index"),
        (("variables/variables.data-*",), "the SavedModel has no variables/variables.data-*"),
    ],
)
def test_a_saved_model_without_its_variables_is_refused(tmp_path, missing, reason):
    folder = saved_model_without(tmp_path, *missing)
    with pytest.raises(ParameterError) as refused:
        check_model(str(folder), on_dataflow=False)
    assert refused.value.name == "model"
    assert reason in str(refused.value)


@pytest.mark.parametrize("missing", contract.CHECKPOINT_FILES)
def test_a_checkpoint_without_its_index_or_data_is_refused(tmp_path, missing):
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    for name in (contract.CHECKPOINT_META, *contract.CHECKPOINT_FILES):
        if name != missing:
            (folder / name.replace("*", "00000-of-00001")).write_bytes(b"x")
    with pytest.raises(ParameterError, match=f"the checkpoint has no {missing}"):
        check_model(str(folder), on_dataflow=False)
