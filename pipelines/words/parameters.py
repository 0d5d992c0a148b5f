"""The parameters of the word-count templates: the text input both take, and their output
prefixes."""

from __future__ import annotations

from pipelines.core.grammar import GCS_PATTERN, GCS_PREFIX, local_or
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


def output_prefix(name: str, label: str, help_text: str, lab: str) -> Parameter:
    """A word count's output: a file prefix in Cloud Storage (or, locally, a path)."""
    return Parameter(
        name=name,
        label=label,
        help_text=help_text,
        param_type="GCS_WRITE_FILE",
        kind=local_or(GCS_PREFIX),
        lab=lab,
    )
