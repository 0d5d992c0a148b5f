"""mnist_batch's launch checks on BigQuery (issue 24), against bqemulator: a table or dataset
that is not there, or an input the job cannot read, is one line naming the parameter and
exit 2 before any work, where the job used to classify everything and then fail with a
traceback. And the public client's lookups and table reset (pipelines/io/bigquery.py) on
the server itself."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.io import bigquery
from pipelines.mnist.records import DEAD_LETTER_SCHEMA, INPUT_COLUMN_TYPES
from tests.support import bigquery_emulator as bqe
from tests.support.markers import missing

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
TEMPLATE = REPO / "templates" / "mnist_batch.py"
REFUSAL_TIMEOUT_S = 120  # a refusal comes in seconds; the work it prevents took minutes
LAB_SCHEMA = [("ID", "INTEGER"), ("Image", "STRING")]
ANNOUNCEMENT = "beam_bigquery_redirect:"  # the test redirect's own line, not the job's


def launch(emulator, args: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    env = emulator.subprocess_env()
    # What a real launch gives, so that without the checks the job would run (and fail late).
    args = [*args, "--project", emulator.project]
    if emulator.gcs is not None:
        args += ["--temp_location", f"gs://{emulator.gcs.bucket}/launch/tmp"]
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, str(TEMPLATE), *args],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=REFUSAL_TIMEOUT_S,
    )
    return completed, time.monotonic() - started


def job_lines(stderr: str) -> list[str]:
    return [line for line in stderr.strip().splitlines() if not line.startswith(ANNOUNCEMENT)]


@pytest.fixture
def tables(bigquery_emulator, bq_client, bq_dataset):
    """name -> table in a fresh dataset: Images (the lab's, one row), and names of tables in
    datasets that do not exist."""
    project = bigquery_emulator.project
    images = f"{project}:{bq_dataset}.Images"
    bqe.create_table(bq_client, images, LAB_SCHEMA, [{"ID": 1, "Image": "0.5"}])
    return {
        "images": images,
        "predict": f"{project}:{bq_dataset}.Predict",
        "errors": f"{project}.{bq_dataset}.Errors",
        "dataset": f"{project}:{bq_dataset}",
        "make": lambda name, schema: (
            bqe.create_table(bq_client, f"{project}:{bq_dataset}.{name}", schema)
            and f"{project}:{bq_dataset}.{name}"
        ),
        "absent_dataset": f"{project}:absent_{bq_dataset}",
    }


def assert_refused(emulator, args, parameter: str, *parts: str) -> None:
    completed, seconds = launch(emulator, args)
    lines = job_lines(completed.stderr)
    assert completed.returncode == 2, completed.stderr[-3000:]
    assert len(lines) == 1, completed.stderr[-3000:]
    assert lines[0].startswith(f"mnist_batch: error: --{parameter}: "), lines
    for part in parts:
        assert part in lines[0], lines
    print(f"refused in {seconds:.1f}s: {lines[0]}")


def test_an_output_dataset_that_does_not_exist_is_refused(bigquery_emulator, tables):
    absent = f"{tables['absent_dataset']}.Predict"
    assert_refused(
        bigquery_emulator,
        ["--input", tables["images"], "--output", absent],
        "output",
        f"dataset {tables['absent_dataset']} (of table {absent};",
        "does not exist",
    )


def test_a_dead_letter_dataset_that_does_not_exist_is_refused(bigquery_emulator, tables):
    absent = f"{tables['absent_dataset']}.Errors"
    assert_refused(
        bigquery_emulator,
        ["--input", tables["images"], "--output", tables["predict"], "--dead_letter", absent],
        "dead_letter",
        f"dataset {tables['absent_dataset']} (of table {absent};",
    )


def test_an_input_dataset_that_does_not_exist_is_refused(bigquery_emulator, tables):
    absent = f"{tables['absent_dataset']}.Images"
    assert_refused(
        bigquery_emulator,
        ["--input", absent, "--output", tables["predict"]],
        "input",
        f"dataset {tables['absent_dataset']} (of table {absent}) does not exist",
    )


def test_an_input_table_that_does_not_exist_is_refused(bigquery_emulator, tables):
    absent = f"{tables['dataset']}.Imagez"
    assert_refused(
        bigquery_emulator,
        ["--input", absent, "--output", tables["predict"]],
        "input",
        f"table {absent} does not exist",
    )


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ([("Key", "INTEGER"), ("Image", "STRING")], "has no column ID; it has Key, Image"),
        ([("id", "INTEGER"), ("Image", "STRING")], "has no column ID but id"),
        ([("ID", "FLOAT"), ("Image", "STRING")], "has column ID of type FLOAT"),
        ([("ID", "INTEGER"), ("Image", "BYTES")], "has column Image of type BYTES"),
        ([("ID", "INTEGER", "REPEATED"), ("Image", "STRING")], "has column ID REPEATED"),
        (
            [{"name": "ID", "type": "RECORD", "fields": [{"name": "n", "type": "INTEGER"}]}]
            + [("Image", "STRING")],
            "has column ID of type RECORD",
        ),
    ],
    ids=["no-ID", "lower-case-id", "float-ID", "bytes-Image", "repeated-ID", "record-ID"],
)
def test_an_input_the_job_cannot_read_is_refused(bigquery_emulator, tables, schema, expected):
    table = tables["make"]("Odd", schema)
    assert_refused(
        bigquery_emulator,
        ["--input", table, "--output", tables["predict"]],
        "input",
        f"table {table} {expected}",
    )


# --- the public client on the server itself ----------------------------------------------


@pytest.fixture
def on_emulator(bigquery_emulator, monkeypatch):
    """This process's google-cloud-bigquery clients (pipelines.io.bigquery.client_for) go to
    the emulator."""
    monkeypatch.setenv(bigquery.EMULATOR_HOST, bigquery_emulator.rest_url)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    return bigquery_emulator


def test_the_lookups_answers_from_a_server(on_emulator, tables):
    lookup = bigquery.BigQueryLookup()
    images = bigquery.TableName.of(tables["images"])
    found = lookup.table(images)
    assert bigquery.columns_problem(found["schema"], INPUT_COLUMN_TYPES) is None
    assert lookup.table(bigquery.TableName.of(f"{tables['dataset']}.Imagez")) is False
    assert lookup.dataset(images)["datasetReference"]["datasetId"] == images.dataset
    assert lookup.dataset(bigquery.TableName.of(f"{tables['absent_dataset']}.T")) is False
    string_ids = tables["make"]("Strings", [("ID", "STRING"), ("Image", "STRING")])
    found = lookup.table(bigquery.TableName.of(string_ids))
    assert bigquery.columns_problem(found["schema"], INPUT_COLUMN_TYPES) is None


def test_replace_with_empty_empties_a_table_or_creates_it(on_emulator, bq_client, tables):
    """What the job does to an output that gets no rows (Beam starts no load job then)."""
    errors = tables["errors"]
    bqe.create_table(bq_client, errors, [("Old", "STRING")], [{"Old": "a previous run's row"}])
    bigquery.replace_with_empty(errors, DEAD_LETTER_SCHEMA)
    expected = [(f["name"], f["type"], f["mode"]) for f in DEAD_LETTER_SCHEMA["fields"]]
    assert bqe.table_schema(bq_client, errors) == expected
    assert bqe.read_rows(bq_client, errors) == []
    absent = f"{tables['dataset']}.Fresh"
    assert not bqe.table_exists(bq_client, absent)
    bigquery.replace_with_empty(absent, DEAD_LETTER_SCHEMA)
    assert bqe.table_schema(bq_client, absent) == expected
    assert bqe.read_rows(bq_client, absent) == []


def test_string_ids_pass_the_launch_and_a_non_integer_one_is_a_dead_letter(
    bigquery_emulator, bq_client, tables
):
    """The launch checks the schema only (a STRING ID column is taken); whether each value
    holds an integer is the row's business: a dead letter with its reason, the rest
    classified."""
    if bigquery_emulator.gcs is None:
        missing("gcp-storage-emulator not installed: FILE_LOADS needs gs:// temp files")
    image = ",".join(["0.0"] * 784)
    table = tables["make"]("StringIds", [("ID", "STRING"), ("Image", "STRING")])
    bqe.create_table(
        bq_client, table, [("ID", "STRING"), ("Image", "STRING")],
        [{"ID": "7", "Image": image}, {"ID": " 8 ", "Image": image}, {"ID": "x9", "Image": image}],
    )  # fmt: skip
    completed, _ = launch(
        bigquery_emulator,
        ["--input", table, "--output", tables["predict"], "--dead_letter", tables["errors"]],
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert sorted(r["ID"] for r in bqe.read_rows(bq_client, tables["predict"])) == [7, 8]
    [dead] = bqe.read_rows(bq_client, tables["errors"])
    assert "ID must be an integer, got 'x9'" in dead["Error"]
