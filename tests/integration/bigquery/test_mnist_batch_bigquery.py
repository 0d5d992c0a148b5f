"""The MNIST batch job end to end on BigQuery: ``templates/mnist_batch.py`` against bqemulator.

The bundled sample (``data/mnist_sample.csv``, 200 images) plus a few bad rows is loaded into
``MNIST.Images`` (the lab's schema: ``ID`` INTEGER, ``Image`` STRING) on the local server.
The template then runs, unchanged, in a subprocess with BigQuery input (DIRECT_READ, the
default) and output; only ``tests/support/bq_redirect`` on its PYTHONPATH points Beam's clients at
the emulator.  Checked:

* ``MNIST.Predict`` has exactly the job's ``PREDICTION_SCHEMA`` (ID + P0..P9, REQUIRED),
  one row per good image with its ID, probabilities that sum to 1, accuracy >= 0.98
  against ``data/mnist_sample_labels.csv``;
* the bad rows land in ``MNIST.Predict_errors`` (``DEAD_LETTER_SCHEMA``: Error, Row) with
  the reason and the original row, and predictions + dead letters = input rows;
* a second run on different input (a subset, other bad rows) replaces both tables' content
  (WRITE_TRUNCATE) instead of appending to it.

A second test pins down what Beam alone gets wrong: a run with no bad rows must still empty
the dead-letter table (Beam starts no load job for an empty PCollection, on real BigQuery
too), so the job replaces an empty output itself.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from pipelines.mnist.records import DEAD_LETTER_SCHEMA, PREDICTION_SCHEMA
from tests.support import bigquery_emulator as bqe
from tests.support.markers import missing

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
TEMPLATE = REPO / "templates" / "mnist_batch.py"
SAMPLE = REPO / "data" / "mnist_sample.csv"
LABELS = REPO / "data" / "mnist_sample_labels.csv"

JOB_TIMEOUT_S = 150  # one run of the template; normally well under a minute
DATASET = "MNIST"
IMAGES_SCHEMA = [("ID", "INTEGER"), ("Image", "STRING")]  # the lab's MNIST.Images
PROBABILITIES = [f"P{digit}" for digit in range(10)]

ZEROS = ["0.0"] * 784


def image(values) -> str:
    return ",".join(values)


# Bad rows of the first run: ID -> (Image, part of the expected reason).  IDs stay clear
# of the sample's (0..199) so every dead letter can be matched to the row it came from.
BAD_ROWS_RUN1 = {
    1001: (image(ZEROS[:783]), "Image must have 784 values, got 783"),
    1002: (image(ZEROS[:300] + ["1.5"] + ZEROS[301:]), "Image value 300 is 1.5, outside [0, 1]"),
    1003: (None, "missing Image"),
    1004: (image(ZEROS[:10] + ["abc"] + ZEROS[11:]), "Image value 10 is not a number: 'abc'"),
    1005: ("", "missing Image"),
}
# A row with a NULL ID (and a valid image) cannot be matched by ID; checked separately.
NULL_ID_REASON = "missing ID"
# Bad rows of the second run: other IDs, so stale dead letters would show.
BAD_ROWS_RUN2 = {
    2001: (image(ZEROS[:100] + ["-0.5"] + ZEROS[101:]), "Image value 100 is -0.5, outside [0, 1]"),
}
SECOND_RUN_SAMPLE_IDS = range(0, 200, 4)  # 50 of the 200 sample images


def schema_tuples(schema: dict) -> list[tuple[str, str, str]]:
    return [(f["name"], f["type"], f.get("mode", "NULLABLE")) for f in schema["fields"]]


def sample_rows() -> dict[int, str]:
    csv.field_size_limit(1 << 20)
    with open(SAMPLE, newline="") as handle:
        return {int(r["ID"]): r["Image"] for r in csv.DictReader(handle)}


def sample_labels() -> dict[int, int]:
    with open(LABELS, newline="") as handle:
        return {int(r["ID"]): int(r["Label"]) for r in csv.DictReader(handle)}


def run_template(emulator, args: list[str], workdir: Path) -> tuple[float, str]:
    """``templates/mnist_batch.py ARGS`` in a fresh interpreter; (seconds, output). Never hangs."""
    env = emulator.subprocess_env()  # PYTHONPATH names this checkout (tests/conftest.py)
    return bqe.run_script(env, TEMPLATE, args, REPO, JOB_TIMEOUT_S, "mnist_batch", log_dir=workdir)


def argmax(row: dict) -> int:
    return max(range(10), key=lambda digit: row[f"P{digit}"])


def check_dead_letters(dead: list[dict], bad_rows: dict, null_id_image: str | None) -> None:
    """Each bad row is one dead letter: the reason, and the original row as JSON."""
    by_id = {}
    null_id = []
    for letter in dead:
        assert set(letter) == {"Error", "Row"}
        original = json.loads(letter["Row"])
        assert set(original) == {"ID", "Image"}, letter
        if original["ID"] is None:
            null_id.append((original, letter["Error"]))
            continue
        assert original["ID"] not in by_id, f"dead letter twice for {original['ID']}"
        by_id[original["ID"]] = (original, letter["Error"])
    assert sorted(by_id) == sorted(bad_rows)
    for image_id, (original, error) in by_id.items():
        image_value, reason = bad_rows[image_id]
        assert original == {"ID": image_id, "Image": image_value}  # verbatim
        assert reason in error, (image_id, error)
    if null_id_image is None:
        assert null_id == []
    else:
        assert null_id == [({"ID": None, "Image": null_id_image}, NULL_ID_REASON)]


def check_predictions(rows: list[dict], expected_ids, labels: dict[int, int]) -> float:
    ids = [r["ID"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate IDs in the output"
    assert sorted(ids) == sorted(expected_ids)  # the input's IDs, none renumbered or lost
    for row in rows:
        assert list(row) == ["ID", *PROBABILITIES]
        assert all(0.0 <= row[p] <= 1.0 for p in PROBABILITIES), row
        assert math.isclose(sum(row[p] for p in PROBABILITIES), 1.0, abs_tol=1e-4), row
    accuracy = sum(argmax(r) == labels[r["ID"]] for r in rows) / len(rows)
    assert accuracy >= 0.98, f"accuracy {accuracy:.3f}"
    return accuracy


def test_mnist_batch_template_bigquery_in_and_out(bigquery_emulator, bq_client, tmp_path):
    if bigquery_emulator.gcs is None:
        missing("gcp-storage-emulator not installed: FILE_LOADS needs gs:// temp files")
    project = bigquery_emulator.project
    images = f"{project}:{DATASET}.Images"  # the lab's P:D.T form ...
    predict = f"{project}.{DATASET}.Predict"  # ... and P.D.T
    errors = f"{project}.{DATASET}.Predict_errors"  # the job's default dead-letter table

    # A clean MNIST dataset: created first, outputs absent (Beam creates them).
    bq_client.delete_dataset(f"{project}.{DATASET}", delete_contents=True, not_found_ok=True)
    bqe.create_dataset(bq_client, DATASET)
    assert not bqe.table_exists(bq_client, predict)
    assert not bqe.table_exists(bq_client, errors)

    samples = sample_rows()
    labels = sample_labels()
    assert len(samples) == 200 and samples.keys() == labels.keys()
    null_id_image = samples[0]

    # --- first run: the whole sample plus bad rows ------------------------------------
    rows1 = [{"ID": i, "Image": samples[i]} for i in sorted(samples)]
    rows1 += [{"ID": i, "Image": img} for i, (img, _) in BAD_ROWS_RUN1.items()]
    rows1.append({"ID": None, "Image": null_id_image})
    bqe.create_table(bq_client, images, IMAGES_SCHEMA, rows1)
    assert len(bqe.read_rows(bq_client, images)) == len(rows1)
    assert bqe.table_schema(bq_client, images) == [
        ("ID", "INTEGER", "NULLABLE"),
        ("Image", "STRING", "NULLABLE"),
    ]

    args = [
        "--input", images,
        "--output", predict,
        # --dead_letter left out: the default is <output>_errors
        "--project", project,
        "--temp_location", f"gs://{bigquery_emulator.gcs.bucket}/mnist-batch/tmp",
    ]  # fmt: skip
    t1, log1 = run_template(bigquery_emulator, args, tmp_path)
    assert "Beam BigQuery redirected to" in log1  # the emulator, never real GCP

    assert bqe.table_schema(bq_client, predict) == schema_tuples(PREDICTION_SCHEMA)
    assert bqe.table_schema(bq_client, errors) == schema_tuples(DEAD_LETTER_SCHEMA)
    predictions1 = bqe.read_rows(bq_client, predict, order_by="ID")
    dead1 = bqe.read_rows(bq_client, errors)
    accuracy1 = check_predictions(predictions1, samples.keys(), labels)
    check_dead_letters(dead1, BAD_ROWS_RUN1, null_id_image)
    assert len(predictions1) + len(dead1) == len(rows1)

    # --- second run: other input; both tables must be replaced, not appended to -------
    rows2 = [{"ID": i, "Image": samples[i]} for i in SECOND_RUN_SAMPLE_IDS]
    rows2 += [{"ID": i, "Image": img} for i, (img, _) in BAD_ROWS_RUN2.items()]
    bqe.create_table(bq_client, images, IMAGES_SCHEMA, rows2)
    t2, _ = run_template(bigquery_emulator, args, tmp_path)

    assert bqe.table_schema(bq_client, predict) == schema_tuples(PREDICTION_SCHEMA)
    assert bqe.table_schema(bq_client, errors) == schema_tuples(DEAD_LETTER_SCHEMA)
    predictions2 = bqe.read_rows(bq_client, predict, order_by="ID")
    dead2 = bqe.read_rows(bq_client, errors)
    accuracy2 = check_predictions(predictions2, SECOND_RUN_SAMPLE_IDS, labels)
    check_dead_letters(dead2, BAD_ROWS_RUN2, None)
    assert len(predictions2) + len(dead2) == len(rows2)
    # Same image, same model: the second run's scores equal the first run's.
    first = {r["ID"]: r for r in predictions1}
    for row in predictions2:
        assert all(math.isclose(row[p], first[row["ID"]][p], abs_tol=1e-6) for p in PROBABILITIES)

    # The DIRECT_READ clean-up must not have taken the source dataset with it.
    assert DATASET in bqe.list_datasets(bq_client)
    print(
        f"mnist_batch on BigQuery: runs {t1:.1f}s + {t2:.1f}s, "
        f"accuracy {accuracy1:.3f} / {accuracy2:.3f}"
    )


class StaleTable(AssertionError):
    """An output table still holds rows of an earlier run."""


def test_a_clean_run_leaves_no_stale_dead_letters(
    bigquery_emulator, bq_client, bq_dataset, tmp_path
):
    if bigquery_emulator.gcs is None:
        missing("gcp-storage-emulator not installed: FILE_LOADS needs gs:// temp files")
    project = bigquery_emulator.project
    images = f"{project}:{bq_dataset}.Images"
    predict = f"{project}:{bq_dataset}.Predict"
    errors = f"{project}:{bq_dataset}.Predict_errors"
    samples = sample_rows()
    labels = sample_labels()
    # What an earlier run left behind.
    bqe.create_table(
        bq_client,
        predict,
        PREDICTION_SCHEMA["fields"],
        [{"ID": 999, **{p: 0.1 for p in PROBABILITIES}}],
    )
    stale = {"Error": "missing Image", "Row": json.dumps({"ID": 998, "Image": None})}
    bqe.create_table(bq_client, errors, DEAD_LETTER_SCHEMA["fields"], [stale])
    # This run: good rows only.
    good_ids = range(10)
    bqe.create_table(
        bq_client, images, IMAGES_SCHEMA, [{"ID": i, "Image": samples[i]} for i in good_ids]
    )
    run_template(bigquery_emulator, [
        "--input", images, "--output", predict,
        "--project", project,
        "--temp_location", f"gs://{bigquery_emulator.gcs.bucket}/mnist-clean/tmp",
    ], tmp_path)  # fmt: skip

    check_predictions(bqe.read_rows(bq_client, predict), good_ids, labels)  # truncated
    dead = bqe.read_rows(bq_client, errors) if bqe.table_exists(bq_client, errors) else []
    if dead:
        raise StaleTable(f"{errors} still holds the previous run's dead letters: {dead}")
