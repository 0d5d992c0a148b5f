"""Where the MNIST model comes from: the `model` parameter (a folder, by default the baked
model) or `model_pattern` (the newest valid model folder among those a file pattern matches,
watched while a stream runs: pipelines/mnist/handler.py), and their checks, without
TensorFlow."""

from __future__ import annotations

import os
import posixpath
from typing import NamedTuple

from pipelines.core.checks import check_credentials, is_gcs
from pipelines.core.models import models_dir
from pipelines.core.params import ParameterError
from pipelines.mnist import contract
from pipelines.mnist.parameters import CHECK_SECONDS_RANGE


def resolve_model(value: str | None) -> str:
    return value or str(models_dir() / "mnist")


class ModelFile(NamedTuple):
    """A file a model pattern matched: its folder is the model."""

    folder: str
    updated: float  # seconds since the epoch


def matched_models(pattern: str) -> list[ModelFile]:
    """The model folders `pattern` matches, newest first (by the matched file's update
    time; the folder name breaks ties, so every worker orders them alike)."""
    from apache_beam.io.filesystems import FileSystems

    (result,) = FileSystems.match([pattern])
    files = [
        ModelFile(posixpath.dirname(m.path), m.last_updated_in_seconds or 0.0)
        for m in result.metadata_list
    ]
    return sorted(files, key=lambda f: (f.updated, f.folder), reverse=True)


def model_problem(path: str, *, default: bool = False) -> str | None:
    """Why the folder `path` does not hold a model of the contract (read and checked without
    TensorFlow: the graph, the index of its weights, the data files' lengths), or None."""
    from apache_beam.io.filesystems import FileSystems

    try:
        if FileSystems.exists(FileSystems.join(path, contract.SAVED_MODEL_FILE)):
            graph = _read(FileSystems, path, contract.SAVED_MODEL_FILE, contract.MAX_GRAPH_BYTES)
            variables = contract.check_saved_model(graph)
            # A SavedModel restores by the object graph its data file holds: only the
            # variables its index holds under their object paths can be compared here.
            _check_weights(
                FileSystems,
                path,
                contract.SAVED_MODEL_PREFIX,
                variables,
                "the SavedModel",
                every=False,
            )
        elif FileSystems.exists(FileSystems.join(path, contract.CHECKPOINT_META)):
            # Missing weights are named before the graph is read.
            found = _require(FileSystems, path, contract.CHECKPOINT_FILES, "the checkpoint")
            graph = _read(FileSystems, path, contract.CHECKPOINT_META, contract.MAX_GRAPH_BYTES)
            variables = contract.check_checkpoint_meta(graph)
            _check_weights(
                FileSystems,
                path,
                contract.CHECKPOINT_PREFIX,
                variables,
                "the checkpoint",
                every=True,
                found=found,
            )
        else:
            what = "the default model is not" if default else "no model"
            raise contract.ModelFormatError(f"{what} there")
    except contract.ModelFormatError as error:
        return f"{path!r}: {error}; expected {contract.EXPECTED}"
    except Exception as error:  # noqa: BLE001 - an unreadable location is the user's answer
        return f"cannot read {path!r}: {error}"
    return None


def model_files(folder: str) -> tuple[tuple[str, int, float], ...]:
    """(path, bytes, update time) of each model file in `folder`: what has to change before
    a folder once refused is worth another look."""
    from apache_beam.io.filesystems import FileSystems

    patterns = [FileSystems.join(folder, pattern) for pattern in contract.MODEL_FILES]
    return tuple(
        sorted(
            (m.path, m.size_in_bytes, m.last_updated_in_seconds or 0.0)
            for result in FileSystems.match(patterns)
            for m in result.metadata_list
        )
    )


def newest_valid_model(pattern: str, newer_than: float | None = None):
    """(the newest valid model among `pattern`'s matches, updated after `newer_than` if
    given, or None; {folder: reason} of the newer ones that are not valid)."""
    refused = {}
    for found in matched_models(pattern):
        if newer_than is not None and found.updated <= newer_than:
            break
        problem = model_problem(found.folder)
        if problem is None:
            return found, refused
        refused[found.folder] = problem
    return None, refused


def check_model(value: str | None, *, on_dataflow: bool) -> None:
    """The folder holds a model of the contract, so a wrong folder is one line at launch
    rather than a crash on the first row."""
    path = resolve_model(value)
    if is_gcs(path):
        check_credentials("model", path)
    elif os.path.isfile(path):
        raise ParameterError("model", f"{path!r} is a file; expected the folder that holds it")
    problem = model_problem(path, default=not value)
    if problem:
        raise ParameterError("model", problem)


def check_model_source(args, *, on_dataflow: bool) -> ModelFile | None:
    """`model` or `model_pattern`, not both, checked as check_model does; for a pattern, at
    least one match must be a valid model now. Returns the newest valid match, if a pattern."""
    pattern = getattr(args, "model_pattern", None)
    if not pattern:
        check_model(args.model, on_dataflow=on_dataflow)
        return None
    if args.model:
        raise ParameterError("model_pattern", "give model or model_pattern, not both")
    seconds = getattr(args, "model_check_seconds", None)
    low, high = CHECK_SECONDS_RANGE
    if seconds is not None and not low <= seconds <= high:
        raise ParameterError("model_check_seconds", f"expected {low} to {high}, got {seconds}")
    if is_gcs(pattern):
        check_credentials("model_pattern", pattern)
    try:
        found, refused = newest_valid_model(pattern)
    except Exception as error:  # noqa: BLE001 - an unreadable location is the user's answer
        raise ParameterError("model_pattern", f"cannot match {pattern!r}: {error}") from None
    if found is None:
        why = "; ".join(refused.values()) if refused else "it matches no file"
        raise ParameterError("model_pattern", f"{pattern!r} matches no valid model: {why}")
    return found


def _require(filesystems, folder: str, patterns: tuple[str, ...], what: str) -> dict:
    """{pattern: the files it matches in `folder`}, each pattern matching at least one."""
    # The weights: without them the graph checks out and loading fails on the workers, after
    # the work has started, with a long TensorFlow traceback.
    found = {}
    for pattern in patterns:
        found[pattern] = filesystems.match([filesystems.join(folder, pattern)])[0].metadata_list
        if not found[pattern]:
            raise contract.ModelFormatError(f"{what} has no {pattern}")
    return found


def _check_weights(
    filesystems,
    folder: str,
    prefix: str,
    variables: dict,
    what: str,
    *,
    every: bool,
    found: dict | None = None,
) -> None:
    """The index against the graph's `variables`, and the data files' lengths against the
    index; `found`: what _require already matched for the index and the data files."""
    index_name = prefix + ".index"
    data_glob = prefix + ".data-*"
    found = found or _require(filesystems, folder, (index_name, data_glob), what)
    index = _read(filesystems, folder, index_name, contract.MAX_INDEX_BYTES)
    bundle = contract.check_weights(variables, index, index_name, every=every)
    data_dir = posixpath.dirname(prefix)
    lengths = {
        posixpath.join(data_dir, posixpath.basename(m.path)): m.size_in_bytes
        for m in found[data_glob]
    }
    contract.check_data_files(bundle, prefix, lengths)


def _read(filesystems, folder: str, name: str, limit: int) -> bytes:
    with filesystems.open(filesystems.join(folder, name)) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise contract.ModelFormatError(f"{name} is larger than {limit} bytes")
    return data
