"""Preflight checks shared by the jobs: fail fast with one line, before any pipeline is built.

Where a value points is decided by one rule (LOCATION_RULE, quoted in the help texts):
  * `gs://BUCKET/...` is Cloud Storage;
  * a value with a `/`, or ending in a file extension (.csv, .json, ...), is a local path;
  * `PROJECT:DATASET.TABLE` or `PROJECT.DATASET.TABLE`, with a valid project ID, is a BigQuery
    table;
  * anything else with a `:` is refused (it is neither), and the rest are local paths.
So `mnist.v2.csv` and `results.v1.json` are files, `lab-project:MNIST.Images` is a table, and
`./a:b` is how to name a local file with a colon.

Two locations are compared after normalisation: local paths resolved (`/x/./m` is `/x/m`,
`~` expanded, links followed), tables in one spelling (`P.D.T` is `P:D.T`). Cloud Storage
object names are compared as written: `gs://b/x/./m` and `gs://b/x/m` are different objects.
"""

from __future__ import annotations

import enum
import os
import re

from pipelines.core import grammar, names
from pipelines.core.params import ParameterError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
FILE_EXTENSIONS = (".csv", ".json", ".jsonl", ".txt", ".gz", ".avro", ".parquet")

LOCATION_RULE = (
    "gs://... is Cloud Storage; PROJECT:DATASET.TABLE or PROJECT.DATASET.TABLE is a BigQuery "
    "table; a value with a / or ending in .csv or .json is a local file (write ./NAME for a "
    "local file named like a table)"
)

NO_CREDENTIALS = (
    "no Google credentials were found: run `gcloud auth application-default "
    "login`, or use a local path"
)


def _local_location_problem(value: str) -> str | None:
    """Where a local run takes a local path by LOCATION_RULE; None if `value` is one."""
    try:
        return None if place_of(value) is Place.LOCAL else grammar.NOT_LOCAL
    except ValueError as error:
        return str(error)


class Place(enum.Enum):
    """Where a location value points (the parameter syntax is a grammar.Kind, not this)."""

    GCS = "Cloud Storage path"
    TABLE = "BigQuery table"
    LOCAL = "local path"


def is_gcs(value: str) -> bool:
    return value.startswith("gs://")


def place_of(value: str) -> Place:
    """Which kind of location `value` is, by the module's rule; ValueError if none."""
    if _CONTROL.search(value):
        raise ValueError(
            f"{value!r} has a control character (NUL, newline, ...); no path, "
            f"object or table name can"
        )
    if is_gcs(value):
        return Place.GCS
    if "/" in value or value.lower().endswith(FILE_EXTENSIONS):
        return Place.LOCAL
    if grammar.BIGQUERY_TABLE.accepts(value):
        return Place.TABLE
    if ":" in value:
        raise ValueError(
            f"{value!r} is neither a BigQuery table (PROJECT:DATASET.TABLE, "
            f"project IDs have 6-30 characters) nor a path (gs://BUCKET/... or "
            f"./{value} for a local file)"
        )
    return Place.LOCAL


# A table or a Cloud Storage file: the console's syntax (core/grammar.py), and on a local run
# also a local path by LOCATION_RULE.
LOCATION = grammar.local_or(grammar.TABLE_OR_FILE, _local_location_problem)


def parameter_place(name: str, value: str) -> Place:
    try:
        return place_of(value)
    except ValueError as error:
        raise ParameterError(name, str(error)) from None


def canonical_location(value: str) -> str:
    """One spelling per place, to tell whether two parameters name the same thing. A value
    that is no location by the rule is compared as a local path: the rule refuses it where
    tables are allowed, and elsewhere (word counts write files only) a local path it is."""
    try:
        kind = place_of(value)
    except ValueError:
        kind = Place.LOCAL
    if kind is Place.TABLE:
        parts = grammar.table_parts(value)
        return f"bigquery:{parts['project']}:{parts['dataset']}.{parts['table']}"
    if kind is Place.GCS:
        return value
    try:
        return "file:" + os.path.realpath(os.path.expanduser(value))
    except ValueError:  # a NUL: no such file can exist, so it equals only itself
        return "file:" + value


def check_distinct(*named: tuple[str, str]) -> None:
    """Each (parameter name, location) names a different place; refuses the later one."""
    seen: dict[str, str] = {}
    for name, value in named:
        place = canonical_location(value)
        if place in seen:
            raise ParameterError(
                name,
                f"must differ from --{seen[place]}: both name {value!r} "
                f"({place.split(':', 1)[1]}), and one would overwrite the other",
            )
        seen[place] = name


def check_credentials(name: str, value: str) -> None:
    """A Google Cloud location needs credentials; without any, Beam would retry for minutes
    (about 2 minutes on a read, or fail after the work on a write). Local emulators need none."""
    kind = place_of(value)
    if kind is Place.LOCAL:
        return
    emulator = "STORAGE_EMULATOR_HOST" if kind is Place.GCS else "BIGQUERY_EMULATOR_HOST"
    if os.environ.get(emulator):
        return
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        google.auth.default()
    except DefaultCredentialsError:
        raise ParameterError(name, f"{value!r} is a {kind.value}, and {NO_CREDENTIALS}") from None


def check_output_prefix(name: str, value: str, *, on_dataflow: bool) -> None:
    """An output prefix is `gs://BUCKET/path/name` (or, locally, a file path)."""
    example = "e.g. gs://BUCKET/result/out"
    if "://" in value and not is_gcs(value):
        raise ParameterError(name, f"expected a gs:// path ({example}), got {value!r}")
    if is_gcs(value):
        problem = grammar.GCS_PREFIX.problem(value) or names.gcs_problem(value)
        if problem:
            raise ParameterError(name, problem)
    if on_dataflow and not is_gcs(value):
        raise ParameterError(
            name,
            f"expected a gs:// path: Dataflow workers cannot write to a local path "
            f"({example}), got {value!r}",
        )
    if value.endswith("/"):
        raise ParameterError(
            name, f"expected a file prefix, not a folder ({example}), got {value!r}"
        )
    if is_gcs(value):
        check_credentials(name, value)
    else:
        _check_local_output(name, value)


def _check_local_output(name: str, value: str) -> None:
    path = os.path.abspath(os.path.expanduser(value))
    if os.path.isdir(path):
        raise ParameterError(
            name,
            f"{value!r} is a folder; expected a file prefix in it, "
            f"e.g. {os.path.join(value, 'out')}",
        )
    folder = os.path.dirname(path)
    while not os.path.exists(folder):  # Beam creates the missing folders
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise ParameterError(name, f"cannot write {value!r}: {folder!r} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ParameterError(name, f"cannot write {value!r}: no permission to write in {folder!r}")


def check_input_exists(name: str, pattern: str) -> None:
    """The input file (or glob) matches at least one file, locally or in Cloud Storage."""
    from apache_beam.io.filesystems import FileSystems

    if pattern.endswith("/") or (
        not is_gcs(pattern) and os.path.isdir(os.path.expanduser(pattern))
    ):
        raise ParameterError(
            name, f"{pattern!r} is a folder; name its files, e.g. {pattern.rstrip('/')}/*.csv"
        )
    if is_gcs(pattern):
        check_credentials(name, pattern)
    try:
        matched = FileSystems.match([pattern])[0].metadata_list
    except Exception as error:  # noqa: BLE001 - any failure to list is the user's answer
        raise ParameterError(name, f"cannot read {pattern!r}: {_one_line(error)}") from None
    if not matched:
        raise ParameterError(
            name, f"expected an existing file or pattern, no file matches {pattern!r}"
        )


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 300 else text[:297] + "..."
