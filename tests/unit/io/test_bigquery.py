"""The launch's BigQuery checks without BigQuery: the schema rules on hostile schemas, and what
each answer of the client (a table, 404, 400, 403, no credentials, no answer) makes of a
launch. The same checks against a BigQuery server are tests/integration/bigquery/."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from google.api_core import exceptions
from google.auth.exceptions import DefaultCredentialsError

from pipelines.core.params import ParameterError
from pipelines.io import bigquery
from pipelines.io.bigquery import UnreadableSchema, columns_problem
from pipelines.mnist.records import CSV_HEADER, INPUT_COLUMN_TYPES

COLUMNS = INPUT_COLUMN_TYPES
ID, IMAGE = CSV_HEADER


def schema(*fields) -> dict:
    return {"fields": [dict(zip(("name", "type", "mode"), f)) for f in fields]}


LAB = schema((ID, "INTEGER", "NULLABLE"), (IMAGE, "STRING", "NULLABLE"))


def test_the_columns_come_from_the_records_module():
    assert tuple(COLUMNS) == CSV_HEADER
    assert COLUMNS == {"ID": ("INTEGER", "STRING"), "Image": ("STRING",)}


@pytest.mark.parametrize(
    "table_schema",
    [
        LAB,
        schema((ID, "STRING"), (IMAGE, "STRING")),  # STRING IDs: checked per row
        schema((ID, "INT64", "REQUIRED"), (IMAGE, "STRING", "REQUIRED")),  # standard SQL names
        schema((ID, "integer", "nullable"), (IMAGE, "string")),  # case of type and mode
        schema((ID, "INTEGER", None), (IMAGE, "STRING")),  # mode absent: NULLABLE
        schema(("Label", "INTEGER"), (IMAGE, "STRING"), ("Extra", "RECORD"), (ID, "INTEGER")),
    ],
)
def test_a_schema_the_job_can_read_is_no_problem(table_schema):
    assert columns_problem(table_schema, COLUMNS) is None


@pytest.mark.parametrize(
    ("table_schema", "expected"),
    [
        (
            schema(("Key", "INTEGER"), (IMAGE, "STRING")),
            "has no column ID; it has Key, Image (expected ID (INTEGER or STRING), Image (STRING))",
        ),
        (schema((ID, "INTEGER")), "has no column Image; it has ID (expected"),
        ({"fields": []}, "has no column ID; it has no columns (expected ID (INTEGER or STRING)"),
        ({}, "it has no columns"),  # a table without a schema: no "fields"
        (None, "it has no columns"),
        # Rows carry the column's spelling: `id` would make every row "missing ID".
        (schema(("id", "INTEGER"), (IMAGE, "STRING")), "has no column ID but id: column names"),
        (schema(("Id", "INTEGER"), (IMAGE, "STRING")), "rename it ID"),
        (schema((ID, "INTEGER"), ("IMAGE", "STRING")), "has no column Image but IMAGE"),
        (schema((ID, "FLOAT"), (IMAGE, "STRING")), "column ID of type FLOAT; expected INTEGER"),
        (schema((ID, "NUMERIC"), (IMAGE, "STRING")), "column ID of type NUMERIC"),
        (schema((ID, "INTEGER"), (IMAGE, "BYTES")), "column Image of type BYTES; expected STRING"),
        (schema((ID, "RECORD"), (IMAGE, "STRING")), "column ID of type RECORD"),
        (schema((ID, "STRUCT"), (IMAGE, "STRING")), "column ID of type RECORD"),
        (schema((ID, "BANANA"), (IMAGE, "STRING")), "column ID of type BANANA"),
        (schema((ID, "INTEGER", "REPEATED"), (IMAGE, "STRING")), "column ID REPEATED"),
        (schema((ID, "INTEGER"), (IMAGE, "STRING", "repeated")), "column Image REPEATED"),
    ],
)
def test_a_schema_the_job_cannot_read_is_one_problem(table_schema, expected):
    problem = columns_problem(table_schema, COLUMNS)
    assert problem is not None and expected in problem, problem
    assert "\n" not in problem


def test_a_long_list_of_columns_is_cut():
    wide = schema(*[(f"C{i}", "STRING") for i in range(5000)], (IMAGE, "STRING"))
    problem = columns_problem(wide, COLUMNS)
    assert "C8, C9 and 4991 more (expected" in problem and len(problem) < 400


def test_absurd_names_and_types_are_shortened():
    problem = columns_problem(schema((ID, "X" * 10_000), (IMAGE, "STRING")), COLUMNS)
    assert problem.startswith("has column ID of type XXX") and len(problem) < 200


@pytest.mark.parametrize(
    "answer",
    [
        "ID INTEGER",
        ["ID"],
        {"fields": "ID,Image"},
        {"fields": [None]},
        {"fields": [{"name": "ID"}]},  # no type
        {"fields": [{"type": "INTEGER"}]},  # no name
        {"fields": [{"name": "", "type": "INTEGER"}]},
        {"fields": [{"name": 7, "type": "INTEGER"}]},
        {"fields": [{"name": "ID", "type": ["INTEGER"]}]},
        {"fields": [{"name": "ID", "type": "INTEGER", "mode": 1}]},
        {"fields": [{"name": "ID", "type": "INTEGER", "mode": "SOMETIMES"}]},
        schema((ID, "INTEGER"), (ID, "STRING"), (IMAGE, "STRING")),  # one column twice
    ],
)
def test_an_answer_that_is_no_schema_is_unreadable_not_a_problem(answer):
    with pytest.raises(UnreadableSchema):
        columns_problem(answer, COLUMNS)


# --- what the client's answers make of a launch --------------------------------------------

IMAGES = "lab-project:MNIST.Images"
PREDICT = "lab-project:MNIST.Predict"
ERRORS = "lab-project.MNIST.Predict_errors"


class Found:
    def __init__(self, resource):
        self.resource = resource

    def to_api_repr(self):
        return self.resource


class FakeClient:
    """Answers from {(dataset, table or None): resource or exception}; records each call."""

    def __init__(self, answers, calls):
        self.answers, self.calls = answers, calls

    def _answer(self, key, kwargs):
        self.calls.append((key, kwargs))
        answer = self.answers.get(key, exceptions.NotFound("Not found"))
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            return Found(answer())
        return Found(answer)

    def get_table(self, reference, **kwargs):
        return self._answer((reference.dataset_id, reference.table_id), kwargs)

    def get_dataset(self, reference, **kwargs):
        return self._answer((reference.dataset_id, None), kwargs)


def lookup(answers, calls=None, **kwargs):
    calls = [] if calls is None else calls
    return bigquery.BigQueryLookup(client_for=lambda project: FakeClient(answers, calls), **kwargs)


LAB_TABLES = {("MNIST", "Images"): {"schema": LAB}, ("MNIST", None): {"id": "MNIST"}}


def check(answers, outputs=(("output", PREDICT), ("dead_letter", ERRORS)), **kwargs):
    bigquery.check_tables(
        ("input", IMAGES), COLUMNS, outputs, on_dataflow=False, lookup=lookup(answers, **kwargs)
    )


def test_tables_that_exist_and_fit_pass_with_one_call_per_table_and_dataset():
    calls = []
    check(LAB_TABLES, calls=calls)
    # The input's dataset is known to exist from its table: one call for two tables and it.
    assert [key for key, _ in calls] == [("MNIST", "Images")]
    assert all(kwargs == {"retry": None, "timeout": 10} for _, kwargs in calls)
    calls.clear()
    bigquery.check_tables(
        None,
        COLUMNS,
        [("output", PREDICT), ("dead_letter", ERRORS)],
        on_dataflow=False,
        lookup=lookup(LAB_TABLES, calls),
    )
    assert [key for key, _ in calls] == [("MNIST", None)]


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ({}, "--input: dataset lab-project:MNIST (of table lab-project:MNIST.Images) does not"),
        ({("MNIST", None): {}}, "--input: table lab-project:MNIST.Images does not exist"),
        (
            {**LAB_TABLES, ("MNIST", "Images"): {"schema": schema(("Key", "INTEGER"))}},
            "--input: table lab-project:MNIST.Images has no column ID",
        ),
        (
            {("MNIST", "Images"): exceptions.BadRequest("Invalid table ID\nmore")},
            "--input: BigQuery refuses table lab-project:MNIST.Images: 400 Invalid table ID",
        ),
    ],
)
def test_an_input_that_is_missing_or_unfit_is_one_line_naming_input(answers, expected):
    with pytest.raises(ParameterError) as raised:
        check(answers)
    assert str(raised.value).startswith(expected), str(raised.value)
    assert "\n" not in str(raised.value)


def test_an_outputs_dataset_must_exist_and_the_table_need_not():
    answers = {("MNIST", "Images"): {"schema": LAB}}  # MNIST exists; Results does not
    check(answers, outputs=[("output", "lab-project:MNIST.Absent")])
    with pytest.raises(ParameterError) as raised:
        check(answers, outputs=[("output", "lab-project:Results.Predict")])
    assert str(raised.value).startswith(
        "--output: dataset lab-project:Results (of table lab-project:Results.Predict; the "
        "table itself is created, its dataset must exist) does not exist"
    )
    with pytest.raises(ParameterError) as raised:
        check(answers, outputs=[("output", PREDICT), ("dead_letter", "lab-project:Dead.Letters")])
    assert str(raised.value).startswith("--dead_letter: dataset lab-project:Dead ")


@pytest.mark.parametrize(
    "error",
    [
        exceptions.Forbidden("Access Denied: Table lab-project:MNIST.Images"),
        DefaultCredentialsError("Your default credentials were not found"),
        exceptions.ServiceUnavailable("try again"),
        ConnectionError("connection refused"),
    ],
)
def test_no_permission_or_no_credentials_is_cannot_tell_logged_and_the_launch_goes_on(
    error, caplog
):
    caplog.set_level(logging.INFO)

    def refusing(project):
        if isinstance(error, DefaultCredentialsError):
            raise error  # google.auth.default() raises it when the client is made
        return FakeClient({key: error for key in LAB_TABLES}, [])

    bigquery.check_tables(
        ("input", IMAGES),
        COLUMNS,
        [("output", PREDICT)],
        on_dataflow=False,
        lookup=bigquery.BigQueryLookup(client_for=refusing),
    )
    lines = [r.getMessage() for r in caplog.records if r.name == bigquery.__name__]
    assert len(lines) == 2, lines  # the table, then the outputs' dataset
    assert lines[0].startswith("BigQuery launch check of table lab-project:MNIST.Images skipped")
    assert type(error).__name__ in lines[0] and "\n" not in lines[0]


def test_a_lookup_without_an_answer_is_cut_off_at_its_timeout(caplog):
    caplog.set_level(logging.INFO)
    release = threading.Event()

    def hangs():
        release.wait(30)
        return {"schema": LAB}

    started = time.monotonic()
    try:
        check({("MNIST", "Images"): hangs, ("MNIST", None): hangs}, timeout=0.3)
    finally:
        release.set()
    assert time.monotonic() - started < 2  # two lookups of 0.3 s, not 30 s
    assert "no answer in 0.3 s" in caplog.text


def test_an_unreadable_schema_is_cannot_tell(caplog):
    caplog.set_level(logging.INFO)
    check({**LAB_TABLES, ("MNIST", "Images"): {"schema": {"fields": "ID"}}})
    assert "unreadable schema (fields is a str)" in caplog.text


def test_a_dataflow_launch_never_asks_an_emulator(monkeypatch):
    monkeypatch.setenv(bigquery.EMULATOR_HOST, "http://127.0.0.1:9050")
    calls = []
    bigquery.check_tables(
        ("input", IMAGES),
        COLUMNS,
        [("output", PREDICT)],
        on_dataflow=True,
        lookup=lookup({}, calls, on_dataflow=True),
    )
    assert calls == []


def test_an_interrupt_is_not_an_answer():
    with pytest.raises(KeyboardInterrupt):
        check({("MNIST", "Images"): KeyboardInterrupt()})
