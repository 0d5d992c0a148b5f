"""The text input both word-count templates take."""

from __future__ import annotations

from pipelines.core.grammar import GCS_PATTERN, local_or
from pipelines.core.params import Parameter

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
    kind=local_or(GCS_PATTERN),
    lab=DEFAULT_INPUT,
)
