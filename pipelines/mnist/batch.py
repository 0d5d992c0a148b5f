"""MNIST batch: classify the lab's images from BigQuery (or CSV) into BigQuery (or JSON lines).

    input   PROJECT:MNIST.Images (ID INTEGER, Image STRING)  or  a CSV file/pattern (ID,Image)
    output  PROJECT:MNIST.Predict (ID, P0..P9; created if needed, truncated if it exists)
            or a file prefix (one JSON object per line)
    dead_letter  where rows that cannot be classified go, with the reason (default:
            <output>_errors, of the same kind as output)

Which values are tables and which are files follows one rule (pipelines/checks.py,
LOCATION_RULE). CSV input is read as bytes and decoded line by line: a line that is not UTF-8
is a dead letter like any other bad row. A line that is exactly the header `ID,Image` is
skipped wherever it stands (counted in mnist/csv_headers); every other line is data, so a file
without a header loses nothing and a wrong header becomes a dead letter that says so.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import apache_beam as beam
from apache_beam.io import WriteToText
from apache_beam.io.gcp.bigquery import BigQueryDisposition, ReadFromBigQuery, WriteToBigQuery
from apache_beam.metrics import Metrics

from pipelines.checks import (
    LOCATION_RULE,
    Kind,
    check_credentials,
    check_distinct,
    check_input_exists,
    check_output_prefix,
    kind_of,
    location_kind,
)
from pipelines.launch import is_dataflow, run_job
from pipelines.mnist.model import MnistModelHandler
from pipelines.mnist.models import MODEL, check_model, resolve_model
from pipelines.mnist.records import (
    CSV_HEADER,
    DEAD_LETTER_SCHEMA,
    PREDICTION_SCHEMA,
    is_csv_header,
    prediction_lines,
    prediction_rows,
    split_csv_line,
    to_json_line,
)
from pipelines.mnist.transforms import METRICS_NAMESPACE, ParseImages, PredictDigits, row_pair
from pipelines.params import BIGQUERY_TABLE_OR_GCS_REGEX, Parameter, ParameterError, Template
from pipelines.textio import ReadLines

READ_METHODS = ("DIRECT_READ", "EXPORT")

INPUT = Parameter(
    name="input",
    label="Input table (or CSV file)",
    help_text=(
        f"The images: a BigQuery table PROJECT:MNIST.Images (or PROJECT.MNIST.Images) "
        "with columns ID (INTEGER) and Image (STRING of 784 comma-separated numbers in "
        "[0, 1]), or a CSV file or pattern in Cloud Storage with the header ID,Image, "
        "e.g. gs://PROJECT-bucket/mnist.csv. Lines that are exactly ID,Image are headers; "
        f"every other line is a row. Which is which: {LOCATION_RULE}."
    ),
    param_type="TEXT",
    regexes=(BIGQUERY_TABLE_OR_GCS_REGEX,),
)
OUTPUT = Parameter(
    name="output",
    label="Output table (or file prefix)",
    help_text=(
        "Where the predictions go: a BigQuery table PROJECT:MNIST.Predict (columns ID, "
        "P0..P9; created if needed, replaced if it exists), or a Cloud Storage prefix "
        "for JSON-lines files, e.g. gs://PROJECT-bucket/result/predict."
    ),
    param_type="TEXT",
    regexes=(BIGQUERY_TABLE_OR_GCS_REGEX,),
)
DEAD_LETTER = Parameter(
    name="dead_letter",
    label="Dead-letter table (or file prefix)",
    help_text=(
        "Where rows that cannot be classified go, each with the reason and the original "
        "row: a BigQuery table (columns Error, Row) or a Cloud Storage prefix. Default: "
        "the output with _errors appended, e.g. PROJECT:MNIST.Predict_errors."
    ),
    param_type="TEXT",
    optional=True,
    regexes=(BIGQUERY_TABLE_OR_GCS_REGEX,),
)
READ_METHOD = Parameter(
    name="read_method",
    label="BigQuery read method",
    help_text=(
        "How a BigQuery input is read. DIRECT_READ (default) streams rows from the "
        "BigQuery Storage Read API straight to the workers: no export job, no temporary "
        "files in Cloud Storage, and reading starts at once. EXPORT first exports the "
        "table to Avro files in the temp location (slower; needs no Storage Read API "
        "permission)."
    ),
    param_type="ENUM",
    optional=True,
    default="DIRECT_READ",
    enum_options=(
        ("DIRECT_READ", "Storage Read API (fast, default)"),
        ("EXPORT", "Export job to Cloud Storage"),
    ),
)

TEMPLATE = Template(
    name="mnist_batch",
    description=(
        "Classifies the lab's handwritten digits (BigQuery table MNIST.Images) with a "
        "TensorFlow model baked into the image, writing P0..P9 per ID to "
        "MNIST.Predict."
    ),
    parameters=(INPUT, OUTPUT, MODEL, DEAD_LETTER, READ_METHOD),
)


def is_table(value: str) -> bool:
    return location_kind(value) is Kind.TABLE


def default_dead_letter(output: str) -> str:
    return f"{output}_errors"


def preflight(args, options) -> None:
    on_dataflow = is_dataflow(options)
    # The one place the default is filled in: build_pipeline reads args.dead_letter.
    args.dead_letter = args.dead_letter or default_dead_letter(args.output)
    locations = (("input", args.input), ("output", args.output), ("dead_letter", args.dead_letter))
    kinds = {name: kind_of(name, value) for name, value in locations}
    if on_dataflow and kinds["input"] is Kind.LOCAL:
        raise ParameterError(
            "input",
            f"expected a BigQuery table PROJECT:DATASET.TABLE or a "
            f"gs:// CSV file, got {args.input!r}",
        )
    check_distinct(*locations)
    for name, value in locations:
        if kinds[name] is Kind.TABLE:
            check_credentials(name, value)
        elif name != "input":
            check_output_prefix(name, value, on_dataflow=on_dataflow)
    if kinds["input"] is not Kind.TABLE:
        check_input_exists("input", args.input)
    check_model(args.model, on_dataflow=on_dataflow)


class ReadRows(beam.PTransform):
    """The input as raw elements: BigQuery rows (dicts) or CSV lines without the header."""

    def __init__(self, source: str, read_method: str = "DIRECT_READ"):
        super().__init__()
        self._source = source
        self._read_method = read_method

    def expand(self, pipeline):
        if is_table(self._source):
            return pipeline | "ReadTable" >> ReadFromBigQuery(
                table=self._source, method=self._read_method, selected_fields=list(CSV_HEADER)
            )
        return (
            pipeline
            | "ReadCsv" >> ReadLines(self._source)
            | "SkipHeaders" >> beam.ParDo(_SkipHeadersFn())
        )


class _SkipHeadersFn(beam.DoFn):
    def __init__(self):
        self._headers = Metrics.counter(METRICS_NAMESPACE, "csv_headers")

    def process(self, line: bytes):
        if is_csv_header(line):
            self._headers.inc()
        else:
            yield line


class WriteRows(beam.PTransform):
    """Rows to a BigQuery table (replacing its content) or to JSON-lines files.

    Elements are dict rows, or anything `rows_of` turns into a list of them and `lines_of`
    into JSON lines (a batch of predictions, formatted at once)."""

    def __init__(
        self,
        destination: str,
        schema: dict,
        rows_of: Callable[[Any], list[dict]] = lambda row: [row],
        lines_of: Callable[[Any], str] = to_json_line,
    ):
        super().__init__()
        self._destination = destination
        self._schema = schema
        self._rows_of = rows_of
        self._lines_of = lines_of

    def expand(self, elements):
        if is_table(self._destination):
            rows = elements | "ToRows" >> beam.FlatMap(self._rows_of)
            # A load job replaces the table, but Beam starts none when there are no rows:
            # then the table is replaced here, so it never shows a previous run's rows.
            (
                rows
                | "CountRows" >> beam.combiners.Count.Globally()
                | "ReplaceIfEmpty"
                >> beam.ParDo(_ReplaceTableIfEmpty(self._destination, self._schema))
            )
            return rows | "WriteTable" >> WriteToBigQuery(
                self._destination,
                schema=self._schema,
                create_disposition=BigQueryDisposition.CREATE_IF_NEEDED,
                write_disposition=BigQueryDisposition.WRITE_TRUNCATE,
            )
        return (
            elements
            | "ToJson" >> beam.Map(self._lines_of)
            | "WriteFiles" >> WriteToText(self._destination, file_name_suffix=".json")
        )


class _ReplaceTableIfEmpty(beam.DoFn):
    def __init__(self, table: str, schema: dict):
        self._table = table
        self._schema = schema

    def process(self, row_count: int):
        if row_count:
            return
        from apache_beam.io.gcp import bigquery_tools

        reference = bigquery_tools.parse_table_reference(self._table)
        client = bigquery_tools.BigQueryWrapper()
        # Delete, then create empty. (get_or_create_table with WRITE_TRUNCATE would do both
        # but then sleeps 150 s, a guard for streaming inserts that this job never makes.)
        client._delete_table(reference.projectId, reference.datasetId, reference.tableId)
        client.get_or_create_table(
            reference.projectId,
            reference.datasetId,
            reference.tableId,
            bigquery_tools.parse_table_schema_from_json(json.dumps(self._schema)),
            BigQueryDisposition.CREATE_IF_NEEDED,
            BigQueryDisposition.WRITE_APPEND,
        )


def build_pipeline(pipeline, args):
    from_csv = not is_table(args.input)
    parsed = (
        pipeline
        | "Read" >> ReadRows(args.input, args.read_method)
        | "ParseImages" >> ParseImages(split_csv_line if from_csv else row_pair)
    )
    # Rows arrive in batches: one batch is one model call, not to be batched again.
    handler = MnistModelHandler(resolve_model(args.model), min_batch_size=1, max_batch_size=1)
    predictions, failed = parsed.valid | "PredictDigits" >> PredictDigits(handler)
    predictions | "WritePredictions" >> WriteRows(
        args.output,
        PREDICTION_SCHEMA,
        rows_of=lambda b: prediction_rows(*b),
        lines_of=lambda b: prediction_lines(*b),
    )
    (
        (parsed.dead_letters, failed)
        | "MergeDeadLetters" >> beam.Flatten()
        | "WriteDeadLetters"
        >> WriteRows(args.dead_letter or default_dead_letter(args.output), DEAD_LETTER_SCHEMA)
    )
    return predictions


def run(argv=None):
    return run_job(sys.modules[__name__], argv)
