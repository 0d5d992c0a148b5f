"""Preflight checks shared by the jobs: fail fast, before any pipeline is built."""

from __future__ import annotations

import re

from pipelines.params import ParameterError

# Cloud Storage bucket names: 3-222 characters of lower-case letters, digits, '-', '_', '.'.
_GCS_PREFIX = re.compile(r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]/[^\n\r]+$")


def is_gcs(value: str) -> bool:
    return value.startswith("gs://")


def check_output_prefix(name: str, value: str, *, on_dataflow: bool) -> None:
    """An output prefix is `gs://BUCKET/path/name` (or, locally, a file path)."""
    example = "e.g. gs://BUCKET/result/out"
    if "://" in value and not is_gcs(value):
        raise ParameterError(name, f"expected a gs:// path ({example}), got {value!r}")
    if is_gcs(value) and not _GCS_PREFIX.match(value):
        raise ParameterError(
            name, f"expected gs://BUCKET/path with a valid bucket name ({example}), got {value!r}")
    if on_dataflow and not is_gcs(value):
        raise ParameterError(
            name, f"expected a gs:// path: Dataflow workers cannot write to a local path "
                  f"({example}), got {value!r}")
    if value.endswith("/"):
        raise ParameterError(
            name, f"expected a file prefix, not a folder ({example}), got {value!r}")


def check_input_exists(name: str, pattern: str) -> None:
    """The input file (or glob) matches at least one file, locally or in Cloud Storage."""
    from apache_beam.io.filesystems import FileSystems

    try:
        matched = FileSystems.match([pattern])[0].metadata_list
    except Exception as error:  # noqa: BLE001 - any failure to list is the user's answer
        raise ParameterError(name, f"cannot read {pattern!r}: {error}") from error
    if not matched:
        raise ParameterError(name, f"expected an existing file or pattern, no file matches {pattern!r}")
