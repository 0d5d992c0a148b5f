"""MNIST batch: classify the lab's images from BigQuery (or CSV) into BigQuery (or JSON lines).

    input   PROJECT:MNIST.Images (ID INTEGER, Image STRING)  or  a CSV file/pattern (ID,Image)
    output  PROJECT:MNIST.Predict (ID, P0..P9; created if needed, truncated if it exists)
            or a file prefix (one JSON object per line)
    dead_letter  where rows that cannot be classified go, with the reason (default:
            <output>_errors, of the same kind as output)

Which values are tables and which are files follows one rule (pipelines/core/checks.py,
LOCATION_RULE). CSV input is read as bytes, record by record (a quoted Image may hold line
breaks; pipelines/io/lines.py), and decoded per record: one that is not UTF-8 is a dead letter
like any other bad row. A line that is exactly the header `ID,Image` is skipped wherever it
stands (counted in mnist/csv_headers); every other line is data, so a file
without a header loses nothing and a wrong header becomes a dead letter that says so.
"""

from __future__ import annotations

import logging

import apache_beam as beam

from pipelines.core.checks import (
    LOCATION,
    LOCATION_RULE,
    Place,
    check_credentials,
    check_distinct,
    check_input_exists,
    check_output_prefix,
    parameter_place,
)
from pipelines.core.deadletters import errors_location
from pipelines.core.grammar import enum_kind
from pipelines.core.params import Parameter, ParameterError, Template
from pipelines.io.bigquery import check_tables
from pipelines.io.tables import ReadRows, WriteRows, is_table
from pipelines.mnist.handler import MnistModelHandler
from pipelines.mnist.location import (
    MODEL,
    check_model_source,
    model_pattern_parameter,
    resolve_model,
)
from pipelines.mnist.records import (
    CSV_HEADER,
    DEAD_LETTER_SCHEMA,
    INPUT_COLUMN_TYPES,
    PREDICTION_SCHEMA,
    is_csv_header,
    prediction_lines,
    prediction_rows,
    row_pair,
    split_csv_line,
)
from pipelines.mnist.transforms import (
    BATCH_ROWS,
    METRICS_NAMESPACE,
    ParseImages,
    PredictDigits,
)

READ_METHODS = ("DIRECT_READ", "EXPORT")
_log = logging.getLogger(__name__)

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
    kind=LOCATION,
    lab="{project}:{dataset}.{images_table}",
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
    kind=LOCATION,
    lab="{project}:{dataset}.{predict_table}",
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
    kind=LOCATION,
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
    kind=enum_kind(READ_METHODS),
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
    parameters=(
        INPUT,
        OUTPUT,
        MODEL,
        DEAD_LETTER,
        READ_METHOD,
        model_pattern_parameter(watched=False),
    ),
)


def preflight(args, options, *, on_dataflow: bool) -> None:
    # The one place the default is filled in: build_pipeline reads args.dead_letter.
    args.dead_letter = args.dead_letter or errors_location(args.output)
    locations = (("input", args.input), ("output", args.output), ("dead_letter", args.dead_letter))
    kinds = {name: parameter_place(name, value) for name, value in locations}
    if on_dataflow and kinds["input"] is Place.LOCAL:
        raise ParameterError(
            "input",
            f"expected a BigQuery table PROJECT:DATASET.TABLE or a "
            f"gs:// CSV file, got {args.input!r}",
        )
    check_distinct(*locations)
    for name, value in locations:
        if kinds[name] is Place.TABLE:
            check_credentials(name, value)
        elif name != "input":
            check_output_prefix(name, value, on_dataflow=on_dataflow)
    if kinds["input"] is not Place.TABLE:
        check_input_exists("input", args.input)
    newest = check_model_source(args, on_dataflow=on_dataflow)
    if newest:  # a batch job uses one model: the newest valid one now
        _log.info(
            "model_pattern %s: using the newest valid model, %s", args.model_pattern, newest.folder
        )
        args.model = newest.folder
    check_tables(
        ("input", args.input) if kinds["input"] is Place.TABLE else None,
        INPUT_COLUMN_TYPES,
        [(name, value) for name, value in locations[1:] if kinds[name] is Place.TABLE],
        on_dataflow=on_dataflow,
    )


def build_pipeline(pipeline, args):
    from_csv = not is_table(args.input)
    parsed = (
        pipeline
        | "Read"
        >> ReadRows(
            args.input,
            fields=CSV_HEADER,
            is_header=is_csv_header,
            namespace=METRICS_NAMESPACE,
            read_method=args.read_method,
            block_records=BATCH_ROWS,
        )
        | "ParseImages" >> ParseImages(split_csv_line if from_csv else row_pair, batched=from_csv)
    )
    handler = MnistModelHandler(resolve_model(args.model))
    # Each batch's predictions leave formatted as the output takes them (rows or JSON lines).
    format_rows = prediction_rows if is_table(args.output) else prediction_lines
    predictions, failed = parsed.valid | "PredictDigits" >> PredictDigits(handler, format_rows)
    predictions | "WritePredictions" >> WriteRows(args.output, PREDICTION_SCHEMA)
    (
        (parsed.dead_letters, failed)
        | "MergeDeadLetters" >> beam.Flatten()
        | "WriteDeadLetters"
        >> WriteRows(args.dead_letter or errors_location(args.output), DEAD_LETTER_SCHEMA)
    )
    return predictions
