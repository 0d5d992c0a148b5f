"""Proof that Beam's own BigQuery IO runs against the local emulator.

The pipeline below has the shape of the MNIST batch job: it reads ``ID``
INTEGER + ``Image`` STRING rows with ``ReadFromBigQuery(method=DIRECT_READ)``
and writes ``ID`` INTEGER + ``P0..P9`` FLOAT with ``WriteToBigQuery``
(WRITE_TRUNCATE, CREATE_IF_NEEDED, FILE_LOADS through the GCS emulator).  It
runs as a separate process (the redirect comes from ``tests/support/bq_redirect`` on
PYTHONPATH, the script knows nothing about emulators) and in-process (the
``beam_bigquery_redirect`` fixture).
"""

from __future__ import annotations

import importlib.util
import textwrap
import time
from pathlib import Path

import pytest

from tests.support import bigquery_emulator as bqe
from tests.support.markers import missing

pytestmark = pytest.mark.slow

JOB_TIMEOUT_S = 90  # one subprocess run; a normal run takes a few seconds
SRC_SCHEMA = [("ID", "INTEGER"), ("Image", "STRING")]
OUT_SCHEMA = [("ID", "INTEGER", "REQUIRED")] + [(f"P{k}", "FLOAT", "REQUIRED") for k in range(10)]

PIPELINE_SCRIPT = textwrap.dedent(
    '''
    """Tiny stand-in for the MNIST batch job (no emulator knowledge here)."""
    import argparse
    import logging

    import apache_beam as beam
    from apache_beam.io.gcp.bigquery import BigQueryDisposition, ReadFromBigQuery, WriteToBigQuery
    from apache_beam.options.pipeline_options import PipelineOptions

    OUTPUT_SCHEMA = {
        "fields": [{"name": "ID", "type": "INTEGER", "mode": "REQUIRED"}]
        + [{"name": f"P{k}", "type": "FLOAT", "mode": "REQUIRED"} for k in range(10)]
    }


    def predict(row):
        hot = (row["ID"] + len(row["Image"] or "")) % 10
        return {"ID": row["ID"], **{f"P{k}": (0.91 if k == hot else 0.01) for k in range(10)}}


    def run(argv=None):
        parser = argparse.ArgumentParser()
        parser.add_argument("--input_table", required=True)
        parser.add_argument("--output_table", required=True)
        parser.add_argument("--write_method", default="FILE_LOADS")
        parser.add_argument("--write_disposition", default=BigQueryDisposition.WRITE_TRUNCATE)
        args, beam_args = parser.parse_known_args(argv)
        options = PipelineOptions(beam_args)
        with beam.Pipeline(options=options) as p:
            (
                p
                | "Read" >> ReadFromBigQuery(
                    table=args.input_table, method=ReadFromBigQuery.Method.DIRECT_READ)
                | "Predict" >> beam.Map(predict)
                | "Write" >> WriteToBigQuery(
                    args.output_table,
                    schema=OUTPUT_SCHEMA,
                    write_disposition=args.write_disposition,
                    create_disposition=BigQueryDisposition.CREATE_IF_NEEDED,
                    method=args.write_method,
                )
            )


    if __name__ == "__main__":
        logging.basicConfig(level=logging.INFO)
        run()
    '''
)


def expected_rows(src_rows):
    out = []
    for row in sorted(src_rows, key=lambda r: r["ID"]):
        hot = (row["ID"] + len(row["Image"] or "")) % 10
        out.append({"ID": row["ID"], **{f"P{k}": (0.91 if k == hot else 0.01) for k in range(10)}})
    return out


def images(ids, tag):
    return [{"ID": i, "Image": f"{tag}-{'x' * (i % 7)}"} for i in ids]


@pytest.fixture
def pipeline_script(tmp_path) -> Path:
    path = tmp_path / "tiny_bq_job.py"
    path.write_text(PIPELINE_SCRIPT)
    return path


def beam_args(emulator, temp_root: str) -> list[str]:
    return [
        "--runner", "FnApiRunner",  # DirectRunner would first try to download Prism
        "--project", emulator.project,
        "--temp_location", f"gs://{emulator.gcs.bucket}/{temp_root}",
    ]  # fmt: skip


def run_job_subprocess(emulator, script: Path, args: list[str], cwd: Path) -> tuple[float, str]:
    """Run ``script`` in a fresh interpreter; returns (seconds, output). Never hangs."""
    return bqe.run_script(emulator.subprocess_env(), script, args, cwd, JOB_TIMEOUT_S, "job")


def requires_gcs(emulator):
    if emulator.gcs is None:
        missing("gcp-storage-emulator not installed: FILE_LOADS needs gs:// temp files")


# --------------------------------------------------------------------------


def test_helpers_create_read_describe(bq_client, bq_dataset):
    rows = images(range(3), "a")
    bqe.create_table(bq_client, f"{bq_client.project}:{bq_dataset}.src", SRC_SCHEMA, rows)
    assert bqe.read_rows(bq_client, f"{bq_dataset}.src", order_by="ID") == rows
    assert bqe.table_schema(bq_client, f"{bq_client.project}.{bq_dataset}.src") == [
        ("ID", "INTEGER", "NULLABLE"),
        ("Image", "STRING", "NULLABLE"),
    ]


def test_subprocess_direct_read_file_loads_write_truncate(
    bigquery_emulator, bq_client, bq_dataset, pipeline_script, tmp_path
):
    requires_gcs(bigquery_emulator)
    project = bigquery_emulator.project
    src = f"{project}:{bq_dataset}.images"  # Beam accepts P:D.T ...
    out = f"{project}.{bq_dataset}.predictions"  # ... and P.D.T
    args = ["--input_table", src, "--output_table", out, *beam_args(bigquery_emulator, "t1")]

    first_rows = images(range(1, 8), "first")
    bqe.create_table(bq_client, src, SRC_SCHEMA, first_rows)
    assert not bqe.table_exists(bq_client, out)

    t1, log1 = run_job_subprocess(bigquery_emulator, pipeline_script, args, tmp_path)
    assert "Beam BigQuery redirected to" in log1  # the redirect, not real GCP
    assert bqe.read_rows(bq_client, out, order_by="ID") == expected_rows(first_rows)
    assert bqe.table_schema(bq_client, out) == OUT_SCHEMA

    # Second run with other input: WRITE_TRUNCATE must replace, not append.
    second_rows = images([3, 40, 41], "second")
    bqe.create_table(bq_client, src, SRC_SCHEMA, second_rows)
    t2, _ = run_job_subprocess(bigquery_emulator, pipeline_script, args, tmp_path)
    assert bqe.read_rows(bq_client, out, order_by="ID") == expected_rows(second_rows)
    assert bqe.table_schema(bq_client, out) == OUT_SCHEMA

    # Beam's DIRECT_READ clean-up deletes every listed dataset (the emulator
    # ignores label filters); the redirect must have kept ours.
    assert bq_dataset in bqe.list_datasets(bq_client)
    assert t1 < JOB_TIMEOUT_S and t2 < JOB_TIMEOUT_S
    print(f"subprocess job runs: {t1:.1f}s, {t2:.1f}s")


def _load_script_module(path: Path):
    spec = importlib.util.spec_from_file_location(f"tiny_bq_job_{time.monotonic_ns()}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_in_process_direct_read_file_loads(
    bigquery_emulator, beam_bigquery_redirect, bq_client, bq_dataset, pipeline_script
):
    requires_gcs(bigquery_emulator)
    project = bigquery_emulator.project
    src = f"{project}:{bq_dataset}.images"
    out = f"{project}:{bq_dataset}.predictions"
    rows = images(range(5), "inproc")
    bqe.create_table(bq_client, src, SRC_SCHEMA, rows)
    job = _load_script_module(pipeline_script)
    args = ["--input_table", src, "--output_table", out, *beam_args(bigquery_emulator, "t2")]
    job.run(args)
    job.run(args)  # again: still truncating
    assert bqe.read_rows(bq_client, out, order_by="ID") == expected_rows(rows)
    assert bqe.table_schema(bq_client, out) == OUT_SCHEMA
    assert bq_dataset in bqe.list_datasets(bq_client)

    # Beam (on real BigQuery too) starts no load job for an empty PCollection,
    # so WRITE_TRUNCATE then leaves the previous rows in place.
    empty = f"{project}:{bq_dataset}.no_images"
    bqe.create_table(bq_client, empty, SRC_SCHEMA, [])
    job.run(["--input_table", empty, *args[2:]])
    assert bqe.read_rows(bq_client, out, order_by="ID") == expected_rows(rows)


def test_in_process_streaming_inserts_append(
    bigquery_emulator, beam_bigquery_redirect, bq_client, bq_dataset, pipeline_script
):
    """STREAMING_INSERTS reaches the emulator too, but only with WRITE_APPEND."""
    project = bigquery_emulator.project
    src = f"{project}:{bq_dataset}.images"
    out = f"{project}:{bq_dataset}.predictions"
    rows = images(range(4), "stream")
    bqe.create_table(bq_client, src, SRC_SCHEMA, rows)
    job = _load_script_module(pipeline_script)
    args = [
        "--input_table", src, "--output_table", out,
        "--write_method", "STREAMING_INSERTS", "--write_disposition", "WRITE_APPEND",
        "--runner", "FnApiRunner", "--project", project,
    ]  # fmt: skip
    job.run(args)
    job.run(args)
    got = bqe.read_rows(bq_client, out, order_by="ID")
    assert got == sorted(expected_rows(rows) * 2, key=lambda r: r["ID"])
    assert bqe.table_schema(bq_client, out) == OUT_SCHEMA

    # Beam itself refuses WRITE_TRUNCATE for streaming inserts.
    with pytest.raises(ValueError, match="WRITE_TRUNCATE is not supported for streaming"):
        job.run(args[:6] + ["--write_disposition", "WRITE_TRUNCATE", *args[8:]])


def test_redirect_fails_fast_when_server_is_gone(bigquery_emulator):
    """A dead emulator must fail Beam's REST calls at once, not after minutes of retries."""
    module = bqe.load_redirect_module()
    handle = module.install(rest_url=f"http://127.0.0.1:{bqe.free_port()}", timeout=5)
    try:
        from apache_beam.io.gcp.bigquery_tools import BigQueryWrapper

        started = time.monotonic()
        with pytest.raises(ConnectionError, match="refused the connection"):
            BigQueryWrapper().get_table(bigquery_emulator.project, "d", "t")
        assert time.monotonic() - started < 30
    finally:
        handle.uninstall()
