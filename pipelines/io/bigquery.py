"""BigQuery through the public google-cloud-bigquery client: the launch's lookups (do the tables
a job names exist, and can its input be read) and the one write the jobs make outside Beam's
sink (an output replaced by an empty table).

What the launch checks, on the tables' metadata only (one tables.get or datasets.get each):
  * the input table exists and has each column the job reads (by its exact name), one value
    per row (not REPEATED), of a type the job parses (`columns`, e.g. ID INTEGER or STRING);
  * each output's dataset exists; the table itself may be absent (the job creates it).
No row is read at launch. An ID column of type STRING is taken on its schema: whether every
value holds an integer is known only by reading the whole table, so a row whose ID is not an
integer is a dead letter with its reason, as any other bad row.

Each lookup takes at most LOOKUP_TIMEOUT_SECONDS of wall time, credentials included. BigQuery
answering 404 (no such dataset or table) or 400 (an invalid name) refuses the launch. No
credentials, no permission to look (403), no answer in time, or an answer that is no schema:
"cannot tell", one log line, and the job starts (as the Pub/Sub lookups, pipelines/io/pubsub.py).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from pipelines.core.grammar import table_parts
from pipelines.core.params import ParameterError
from pipelines.io.lookups import LOOKUP_TIMEOUT_SECONDS, Refused, first_line

WRITE_TIMEOUT_SECONDS = 60
EMULATOR_HOST = "BIGQUERY_EMULATOR_HOST"  # google-cloud-bigquery itself sends requests there

_log = logging.getLogger(__name__)


# --- the schema rules (pure) --------------------------------------------------------------

# Standard SQL spellings the API may report, as the legacy names the rules are written in.
_TYPE_ALIASES = {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN", "STRUCT": "RECORD"}
_MODES = ("NULLABLE", "REQUIRED", "REPEATED")
_NAMES_SHOWN = 10


class UnreadableSchema(ValueError):
    """BigQuery's answer is not a table schema: the launch cannot tell, and refuses nothing."""


def expected_columns(columns: Mapping[str, tuple[str, ...]]) -> str:
    return ", ".join(f"{name} ({' or '.join(types)})" for name, types in columns.items())


def _short(value: Any, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fields(schema: Any) -> dict[str, tuple[str, str]]:
    """{column name: (type, mode)} of the API's schema resource ({"fields": [...]})."""
    if schema is None:
        return {}  # a table created without columns has no schema at all
    if not isinstance(schema, Mapping):
        raise UnreadableSchema(f"schema is a {type(schema).__name__}")
    fields = schema.get("fields", [])
    if not isinstance(fields, list):
        raise UnreadableSchema(f"fields is a {type(fields).__name__}")
    columns: dict[str, tuple[str, str]] = {}
    for field in fields:
        if not isinstance(field, Mapping):
            raise UnreadableSchema(f"a field is a {type(field).__name__}")
        name, kind, mode = field.get("name"), field.get("type"), field.get("mode") or "NULLABLE"
        if not (isinstance(name, str) and name and isinstance(kind, str) and isinstance(mode, str)):
            raise UnreadableSchema(f"a field without a name, type or mode: {_short(field)}")
        mode = mode.upper()
        if mode not in _MODES:
            raise UnreadableSchema(f"column {_short(name)} has the mode {_short(mode)}")
        if name in columns:
            raise UnreadableSchema(f"column {_short(name)} twice")
        kind = kind.upper()
        columns[name] = (_TYPE_ALIASES.get(kind, kind), mode)
    return columns


def columns_problem(schema: Any, columns: Mapping[str, tuple[str, ...]]) -> str | None:
    """Why a table with `schema` (the API's schema resource) cannot be read as `columns`
    (column name -> the types accepted), or None. Other columns are ignored. Raises
    UnreadableSchema when `schema` is no schema."""
    found = _fields(schema)
    for name, types in columns.items():
        if name not in found:
            # Rows carry the column's own spelling, so an `id` column would make every row
            # a dead letter "missing ID".
            same = [other for other in found if other.lower() == name.lower()]
            if same:
                return (
                    f"has no column {name} but {_short(same[0])}: column names are read as "
                    f"written; rename it {name}"
                )
            present = ", ".join(_short(other, 30) for other in list(found)[:_NAMES_SHOWN])
            more = f" and {len(found) - _NAMES_SHOWN} more" if len(found) > _NAMES_SHOWN else ""
            has = f"{present}{more}" if found else "no columns"
            return f"has no column {name}; it has {has} (expected {expected_columns(columns)})"
        kind, mode = found[name]
        if kind not in types:
            return f"has column {name} of type {_short(kind)}; expected {' or '.join(types)}"
        if mode == "REPEATED":
            return (
                f"has column {name} REPEATED (a list in each row); expected one "
                f"{' or '.join(types)} per row"
            )
    return None


# --- talking to BigQuery ------------------------------------------------------------------


class TableName(NamedTuple):
    project: str
    dataset: str
    table: str

    @classmethod
    def of(cls, value: str) -> TableName:
        """PROJECT:DATASET.TABLE or PROJECT.DATASET.TABLE, as the grammar took it."""
        parts = table_parts(value)
        return cls(parts["project"], parts["dataset"], parts["table"])

    @property
    def dataset_path(self) -> str:
        return f"{self.project}:{self.dataset}"

    def dataset_reference(self):
        from google.cloud import bigquery

        return bigquery.DatasetReference(self.project, self.dataset)

    def reference(self):
        return self.dataset_reference().table(self.table)


def client_for(project: str):
    """A google-cloud-bigquery client: anonymous on a local emulator (EMULATOR_HOST, where
    the client sends its requests), else with the application default credentials."""
    from google.cloud import bigquery

    credentials = None
    if os.environ.get(EMULATOR_HOST):
        from google.auth.credentials import AnonymousCredentials

        credentials = AnonymousCredentials()
    return bigquery.Client(project=project, credentials=credentials)


def replace_with_empty(table: str, schema: Mapping, *, client=None) -> None:
    """Makes `table` an empty table with `schema` (the API's resource), whether or not it
    existed, with the client's own retries."""
    from google.cloud import bigquery

    name = TableName.of(table)
    client = client or client_for(name.project)
    reference = name.reference()
    # Delete, then create empty: Beam starts no load job (that would truncate) without rows.
    client.delete_table(reference, not_found_ok=True, timeout=WRITE_TIMEOUT_SECONDS)
    fields = [bigquery.SchemaField.from_api_repr(dict(field)) for field in schema["fields"]]
    client.create_table(
        bigquery.Table(reference, schema=fields), exists_ok=True, timeout=WRITE_TIMEOUT_SECONDS
    )


def _cannot_tell(what: str, why: str) -> None:
    _log.warning("BigQuery launch check of %s skipped, cannot tell: %s", what, why)


class BigQueryLookup:
    """Asks BigQuery about datasets and tables. Raises nothing but an interrupt, and never
    takes longer than `timeout` per question (the client's construction and credentials included, no
    retries). Each answer is the resource (a dict), False (404: it does not exist), Refused
    (400) or None: "cannot tell", logged with why, and never a reason to refuse a launch.
    A Dataflow job never reads an emulator, so with EMULATOR_HOST set a Dataflow launch looks
    nothing up."""

    def __init__(
        self,
        *,
        on_dataflow: bool = False,
        timeout: float = LOOKUP_TIMEOUT_SECONDS,
        client_for: Callable[[str], Any] = client_for,
    ):
        self._timeout = timeout
        self._client_for = client_for
        self._clients: dict[str, Any] = {}
        self.skip_reason = None
        if on_dataflow and os.environ.get(EMULATOR_HOST):
            self.skip_reason = f"{EMULATOR_HOST} is set, but a Dataflow job reads Google's BigQuery"
            _log.warning("BigQuery launch checks skipped: %s", self.skip_reason)

    def _client(self, project: str):
        if project not in self._clients:
            self._clients[project] = self._client_for(project)
        return self._clients[project]

    def _ask(self, what: str, call):
        if self.skip_reason:
            return None
        outcome: list = []

        def run():
            try:
                outcome.append(("answer", call()))
            except BaseException as error:  # noqa: BLE001 - sorted out below, in this thread
                outcome.append(("error", error))

        # A daemon thread: an answer that never comes cannot hold the launch (or its exit).
        thread = threading.Thread(target=run, name="bigquery-lookup", daemon=True)
        thread.start()
        thread.join(self._timeout)
        if not outcome:
            return _cannot_tell(what, f"no answer in {self._timeout:g} s")
        how, value = outcome[0]
        if how == "answer":
            return value
        from google.api_core import exceptions

        if isinstance(value, exceptions.NotFound):
            return False
        if isinstance(value, exceptions.BadRequest):
            return Refused(first_line(value))
        if not isinstance(value, Exception):
            raise value  # KeyboardInterrupt and the like are not answers
        return _cannot_tell(what, f"{type(value).__name__}: {first_line(value)}")

    def table(self, name: TableName) -> dict | bool | Refused | None:
        """The table's resource (its "schema" among it)."""

        def call():
            found = self._client(name.project).get_table(
                name.reference(), retry=None, timeout=self._timeout
            )
            return found.to_api_repr()

        return self._ask(f"table {name.dataset_path}.{name.table}", call)

    def dataset(self, name: TableName) -> dict | bool | Refused | None:
        def call():
            found = self._client(name.project).get_dataset(
                name.dataset_reference(),
                retry=None,
                timeout=self._timeout,
            )
            return found.to_api_repr()

        return self._ask(f"dataset {name.dataset_path}", call)


def _refuse(parameter: str, what: str, answer) -> None:
    if answer is False:
        raise ParameterError(parameter, f"{what} does not exist")
    if isinstance(answer, Refused):
        raise ParameterError(parameter, f"BigQuery refuses {what}: {answer.reason}")


def check_tables(
    input_table: tuple[str, str] | None,
    columns: Mapping[str, tuple[str, ...]],
    outputs: Iterable[tuple[str, str]],
    *,
    on_dataflow: bool,
    lookup: BigQueryLookup | None = None,
) -> None:
    """The launch's BigQuery checks (see the module's docstring). `input_table` is the
    (parameter, table) read as `columns`; `outputs` the (parameter, table)s written, whose
    datasets must exist. A job's last launch check: the only one that asks BigQuery."""
    lookup = lookup or BigQueryLookup(on_dataflow=on_dataflow)
    datasets: dict[tuple[str, str], Any] = {}

    def dataset(name: TableName):
        key = (name.project, name.dataset)
        if key not in datasets:
            datasets[key] = lookup.dataset(name)
        return datasets[key]

    if input_table:
        parameter, value = input_table
        name = TableName.of(value)
        found = lookup.table(name)
        if found is False:  # say which is missing: the dataset or the table in it
            _refuse(parameter, f"dataset {name.dataset_path} (of table {value})", dataset(name))
        _refuse(parameter, f"table {value}", found)
        if isinstance(found, Mapping):
            datasets[(name.project, name.dataset)] = True
            try:
                problem = columns_problem(found.get("schema"), columns)
            except UnreadableSchema as error:
                _cannot_tell(f"table {value}", f"unreadable schema ({error})")
                problem = None
            if problem:
                raise ParameterError(parameter, f"table {value} {problem}")
    for parameter, value in outputs:
        name = TableName.of(value)
        _refuse(
            parameter,
            f"dataset {name.dataset_path} (of table {value}; the table itself is created, "
            f"its dataset must exist)",
            dataset(name),
        )
