"""The text input both word-count templates take."""

from __future__ import annotations

from pipelines.core.params import GCS_PATH_REGEX, Parameter

DEFAULT_INPUT = "gs://dataflow-samples/shakespeare/kinglear.txt"

INPUT = Parameter(
    name="input",
    label="Input text file",
    help_text=(
        "The text to count, a Cloud Storage file or pattern, e.g. "
        "gs://dataflow-samples/shakespeare/kinglear.txt (the default)."
    ),
    param_type="GCS_READ_FILE",
    optional=True,
    default=DEFAULT_INPUT,
    regexes=(GCS_PATH_REGEX,),
    lab=DEFAULT_INPUT,
)
