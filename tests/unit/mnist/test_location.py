"""Where the MNIST model comes from: the `model` launch check (a folder passes only if it
holds everything loading needs), `model` or `model_pattern` checked at launch, and the watch
that replaces a running model by a newer valid one (no TensorFlow: models are faked, their
folders real enough for the launch check)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

from pipelines.core.params import ParameterError
from pipelines.mnist import contract
from pipelines.mnist.handler import LOOKED_AT_AGAIN, MnistModelHandler, WatchedModel
from pipelines.mnist.location import (
    check_model,
    check_model_source,
    matched_models,
    newest_valid_model,
)
from tests.support.mnist_models import hostile_folders
from tests.support.processes import REPO

MODEL = REPO / "models" / "mnist"
NOW = time.time()


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


def model_folder(root, name: str, updated: float, *, valid: bool = True) -> str:
    folder = root / name
    if valid:
        shutil.copytree(MODEL, folder)
    else:
        folder.mkdir(parents=True)
        (folder / "saved_model.pb").write_bytes(b"\x0f\xff not a SavedModel")
    os.utime(folder / "saved_model.pb", (updated, updated))
    return str(folder)


def args(**values):
    return SimpleNamespace(**{"model": None, "model_pattern": None, **values})


class FakeModel:
    def __init__(self, folder: str):
        self.folder = folder

    def predict(self, images):
        return np.full((len(images), 10), 0.1, np.float32)


def test_the_newest_valid_match_wins_and_newer_invalid_ones_say_why(tmp_path):
    old = model_folder(tmp_path, "a", NOW - 300)
    new = model_folder(tmp_path, "b", NOW - 200)
    model_folder(tmp_path, "c", NOW - 100, valid=False)
    pattern = f"{tmp_path}/*/saved_model.pb"
    assert [m.folder for m in matched_models(pattern)] == [str(tmp_path / "c"), new, old]
    found, refused = newest_valid_model(pattern)
    assert found.folder == new
    assert list(refused) == [str(tmp_path / "c")]
    assert "corrupt protobuf" in refused[str(tmp_path / "c")]
    assert check_model_source(args(model_pattern=pattern), on_dataflow=False).folder == new
    assert newest_valid_model(pattern, newer_than=NOW - 200) == (None, refused)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"model": "M", "model_pattern": "P"}, "--model_pattern: give model or model_pattern"),
        ({"model_pattern": "NONE"}, "matches no valid model: it matches no file"),
        ({"model_pattern": "P"}, "matches no valid model: 'TMP/bad': corrupt protobuf"),
        (
            {"model_pattern": "P", "model_check_seconds": 0},
            "--model_check_seconds: expected 1 to 86400, got 0",
        ),
    ],
)
def test_bad_model_sources_are_one_line_naming_the_parameter(tmp_path, values, message):
    model_folder(tmp_path, "bad", NOW, valid=False)
    swap = {"P": f"{tmp_path}/*/saved_model.pb", "NONE": f"{tmp_path}/*/nothing.pb", "M": "m"}
    values = {k: swap.get(v, v) for k, v in values.items()}
    with pytest.raises(ParameterError) as raised:
        check_model_source(args(**values), on_dataflow=False)
    assert message.replace("TMP", str(tmp_path)) in str(raised.value)


def test_the_watch_switches_to_a_newer_valid_model_and_ignores_the_rest(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pipelines.mnist.handler")
    first = model_folder(tmp_path, "v1", NOW - 100)
    loaded = []

    def load(folder):
        loaded.append(folder)
        if folder.endswith("unloadable"):
            raise OSError("variables/ missing")
        return FakeModel(folder)

    watched = WatchedModel(f"{tmp_path}/*/saved_model.pb", 3600, load=load)
    handler = MnistModelHandler(None)
    images = [np.zeros((3, 784), np.float32)]
    assert [r.model_id for r in handler.run_inference(images, watched)] == [first]

    model_folder(tmp_path, "older", NOW - 200)  # valid, but not newer: never loaded
    bad = model_folder(tmp_path, "bad", NOW - 50, valid=False)
    unloadable = model_folder(tmp_path, "unloadable", NOW - 40)
    watched.look()
    watched.look()  # each refusal is logged once, not at every look
    assert watched.folder == first and loaded == [first, unloadable]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # newest first
    assert f"MNIST model {unloadable} ignored: cannot load" in warnings[0]
    assert f"MNIST model {bad} ignored: '{bad}': corrupt protobuf" in warnings[1]
    assert all(w.endswith(f"; keeping {first}; {LOOKED_AT_AGAIN}") for w in warnings)

    second = model_folder(tmp_path, "v2", NOW - 10)
    watched.look()
    assert watched.folder == second
    assert [r.model_id for r in handler.run_inference(images, watched)] == [second]
    assert f"MNIST model switched from {first} to {second}" in caplog.text


def test_the_watch_looks_by_itself_every_check_seconds(tmp_path):
    first = model_folder(tmp_path, "v1", NOW - 100)
    watched = WatchedModel(f"{tmp_path}/*/saved_model.pb", 0.2, load=FakeModel)
    assert watched.folder == first
    second = model_folder(tmp_path, "v2", NOW)
    deadline = time.monotonic() + 10
    while watched.folder != second and time.monotonic() < deadline:
        time.sleep(0.05)
    assert watched.folder == second


def test_a_baked_model_names_its_folder(tmp_path):
    handler = MnistModelHandler(str(MODEL))
    model = FakeModel(str(MODEL))
    results = handler.run_inference([np.zeros(784, np.float32)], model)
    assert [r.model_id for r in results] == [str(MODEL)]


# --- real model folders, made with TensorFlow, checked without it ---------------------------


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    import tensorflow as tf

    return hostile_folders(tf, tmp_path_factory.mktemp("models"))


@pytest.mark.parametrize("case", ["lab", "lab_resource", "saved_model"])
def test_real_models_of_the_contract_pass(folders, case):
    check_model(str(folders[case]), on_dataflow=False)


@pytest.mark.parametrize(
    "case, reason",
    [
        ("lab_1024_pixels", "'image' has shape [-1, 1024]; expected [None, 784]"),
        ("lab_3_classes", "'scores' has shape [-1, 3]; expected [None, 10]"),
        (
            "lab_weights_of_another_shape",
            "export.index holds 'b' as float32 [3]; the graph's variable is float32 [10]",
        ),
        ("lab_random_index_and_data", "export.index: not a tensor bundle index"),
        (
            "lab_truncated_data",
            r"export.data-00000-of-00001 is {short} bytes; its index says {full}",
        ),
        (
            "saved_model_weights_of_another_shape",
            "variables/variables.index holds 'w/.ATTRIBUTES/VARIABLE_VALUE' as float32 "
            "[784, 3]; the graph's variable is float32 [784, 10]",
        ),
        ("saved_model_random_variables", "variables/variables.index: not a tensor bundle index"),
        (
            "saved_model_truncated_data",
            "variables/variables.data-00000-of-00001 is 1000 bytes; its index says 900894",
        ),
    ],
)
def test_a_folder_that_would_fail_every_row_is_one_line_at_launch(folders, case, reason):
    full = (folders["lab"] / "export.data-00000-of-00001").stat().st_size
    with pytest.raises(ParameterError) as refused:
        check_model(str(folders[case]), on_dataflow=False)
    assert refused.value.name == "model"
    assert reason.format(short=full - 4, full=full) in str(refused.value)
    assert "\n" not in str(refused.value)


def lab_copy(folders, case: str, root, name: str, updated: float) -> str:
    folder = root / name
    shutil.copytree(folders[case], folder)
    os.utime(folder / contract.CHECKPOINT_META, (updated, updated))
    return str(folder)


def test_the_watch_refuses_a_checkpoint_the_launch_would_refuse(folders, tmp_path, caplog):
    first = lab_copy(folders, "lab", tmp_path, "v1", NOW - 100)
    watched = WatchedModel(f"{tmp_path}/*/{contract.CHECKPOINT_META}", 3600, load=FakeModel)
    for case, reason in [
        ("lab_3_classes", "'scores' has shape [-1, 3]"),
        ("lab_weights_of_another_shape", "export.index holds 'b' as float32 [3]"),
        ("lab_random_index_and_data", "export.index: not a tensor bundle index"),
    ]:
        refused = lab_copy(folders, case, tmp_path, f"v2_{case}", NOW)
        watched.look()
        assert watched.folder == first
        assert f"MNIST model {refused} ignored: '{refused}': {reason}" in caplog.text
        shutil.rmtree(refused)


def test_the_watch_looks_again_at_a_refused_folder_once_its_files_change(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pipelines.mnist.handler")
    first = model_folder(tmp_path, "v1", NOW - 100)
    watched = WatchedModel(f"{tmp_path}/*/saved_model.pb", 3600, load=FakeModel)
    # An upload that puts saved_model.pb first: refused while its variables/ are missing.
    second = tmp_path / "v2"
    second.mkdir()
    shutil.copy(MODEL / "saved_model.pb", second / "saved_model.pb")
    watched.look()
    watched.look()
    assert watched.folder == first
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "the SavedModel has no variables/variables.index" in warning
    assert warning.endswith(LOOKED_AT_AGAIN)
    shutil.copytree(MODEL / "variables", second / "variables")
    watched.look()
    assert watched.folder == str(second)
    assert f"MNIST model switched from {first} to {second}" in caplog.text


def test_the_check_reads_every_model_file_without_tensorflow(folders):
    code = (
        "import sys\n"
        "from pipelines.mnist.location import model_problem\n"
        "problems = [model_problem(path) for path in sys.argv[1:]]\n"
        "assert problems[:2] == [None, None], problems\n"
        "assert 'not a tensor bundle index' in problems[2], problems\n"
        "sys.exit('tensorflow' in sys.modules)\n"
    )
    paths = [folders["lab"], MODEL, folders["lab_random_index_and_data"]]
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, paths)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
