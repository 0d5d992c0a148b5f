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
    Place,
    check_credentials,
    check_distinct,
    check_input_exists,
    check_output_prefix,
    parameter_place,
)
from pipelines.core.deadletters import errors_location
from pipelines.core.params import ParameterError, Template
from pipelines.io.bigquery import check_tables
from pipelines.io.tables import ReadRows, WriteRows, is_table
from pipelines.mnist import parameters
from pipelines.mnist.handler import MnistModelHandler
from pipelines.mnist.location import check_model_source, resolve_model
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

_log = logging.getLogger(__name__)

TEMPLATE = Template(
    name="mnist_batch",
    description=(
        "Classifies the lab's handwritten digits (BigQuery table MNIST.Images) with a "
        "TensorFlow model baked into the image, writing P0..P9 per ID to "
        "MNIST.Predict."
    ),
    parameters=(
        parameters.BATCH_INPUT,
        parameters.BATCH_OUTPUT,
        parameters.MODEL,
        parameters.BATCH_DEAD_LETTER,
        parameters.READ_METHOD,
        parameters.MODEL_PATTERN_AT_START,
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
