"""The MNIST templates' parameters: where images come from and predictions go, for the
batch job (tables or files) and the stream job (Pub/Sub), and where the model comes from.
What each value means at run time and its checks are pipelines/mnist/location.py (the
model) and pipelines/core/checks.py (locations)."""

from __future__ import annotations

from pipelines.core.checks import LOCATION, LOCATION_RULE
from pipelines.core.grammar import GCS_FOLDER, GCS_PATTERN, enum_kind, local_or
from pipelines.core.params import Parameter, number_parameter
from pipelines.io.parameters import (
    dead_letter_topic_parameter,
    input_source_parameters,
    output_topic_parameter,
)
from pipelines.mnist import contract

# ---- the model (both jobs) ---------------------------------------------------------------

IMAGE_MODEL_DIR = "/opt/models/mnist"

MODEL = Parameter(
    name="model",
    label="Model folder",
    help_text=(
        f"The TensorFlow model to classify with. Leave empty for the model baked into "
        f"the image at {IMAGE_MODEL_DIR} (a Keras CNN, 99.2% on the MNIST test set). "
        f"Otherwise a folder, e.g. gs://PROJECT-bucket/model, holding "
        f"{contract.EXPECTED}."
    ),
    # The console's folder picker: a form user can only name a gs:// folder anyway.
    param_type="GCS_READ_FOLDER",
    optional=True,
    kind=local_or(GCS_FOLDER),
)


def model_pattern_parameter(*, watched: bool) -> Parameter:
    """`model_pattern`; `watched`: the job keeps looking for a newer model while it runs."""
    when = (
        "is used, and the job switches to a newer valid one within model_check_seconds, "
        "without a restart (upload the folder's other files first, the matched file last). "
        "Each prediction message names its model folder in the attribute model."
        if watched
        else "when the job starts is used."
    )
    return Parameter(
        name="model_pattern",
        label="Model file pattern (instead of a model folder)",
        help_text=(
            "Instead of model: a file pattern of model files, e.g. "
            "gs://PROJECT-bucket/models/mnist/*/saved_model.pb (or .../export.meta for the "
            "lab's checkpoints); a model is the folder of a matched file. The newest valid "
            f"one (by the matched file's update time) {when}"
        ),
        optional=True,
        kind=local_or(GCS_PATTERN),
    )


# A batch job uses the newest valid model at launch; the stream keeps watching for newer ones.
MODEL_PATTERN_AT_START = model_pattern_parameter(watched=False)
MODEL_PATTERN_WATCHED = model_pattern_parameter(watched=True)

CHECK_SECONDS_RANGE = (1, 86_400)
MODEL_CHECK_SECONDS = number_parameter(
    "model_check_seconds",
    "Seconds between looks for a newer model",
    "With model_pattern: how often each worker looks for a newer model, in seconds "
    "({low} to {high}). Default: {default}.",
    60,
    *CHECK_SECONDS_RANGE,
    type=int,
)


# ---- mnist_batch: tables or files --------------------------------------------------------

READ_METHODS = ("DIRECT_READ", "EXPORT")

BATCH_INPUT = Parameter(
    name="input",
    label="Input table (or CSV file)",
    help_text=(
        f"The images: a BigQuery table PROJECT:MNIST.Images (or PROJECT.MNIST.Images) "
        "with columns ID (INTEGER, or STRING holding integers) and Image (STRING of 784 "
        "comma-separated numbers in [0, 1]), or a CSV file or pattern in Cloud Storage "
        "with the header ID,Image, "
        "e.g. gs://PROJECT-bucket/mnist.csv. Lines that are exactly ID,Image are headers; "
        f"every other line is a row. Which is which: {LOCATION_RULE}."
    ),
    param_type="TEXT",
    kind=LOCATION,
    lab="{project}:{dataset}.{images_table}",
)
BATCH_OUTPUT = Parameter(
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
BATCH_DEAD_LETTER = Parameter(
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


# ---- mnist_stream: Pub/Sub ---------------------------------------------------------------

STREAM_INPUTS = input_source_parameters(
    "images", "mnist_image", 'Each message is UTF-8 JSON {"ID": 7, "Image": "..."}.'
)
STREAM_OUTPUT = output_topic_parameter(
    "Output topic",
    "Where the predictions go, e.g. projects/PROJECT/topics/mnist_predict: one UTF-8 JSON "
    'message {"ID": 7, "P0": ..., "P9": ...} per image, with the ID also as attribute.',
    lab="projects/{project}/topics/mnist_predict",
)

STREAM_DEAD_LETTER = dead_letter_topic_parameter("mnist_dead_letter")
