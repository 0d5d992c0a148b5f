"""wordcount: count each word of a text, case-sensitive, as `word: count` lines.

Same output as Beam's `apache_beam.examples.wordcount` on the same input. Unlike it, bytes
that are not UTF-8 never stop the job: such a line still has its valid words counted, and also
goes to `<output>_errors-*.json` with the reason (rules in pipelines/lines.py). A very long
line is read and counted in pieces, in linear time and bounded memory.
"""

from __future__ import annotations

import sys

import apache_beam as beam
from apache_beam.io import WriteToText

from pipelines.checks import check_input_exists, check_output_prefix
from pipelines.launch import is_dataflow, run_job
from pipelines.lines import WORD_PIECE_BYTES
from pipelines.params import GCS_PATH_REGEX, Parameter, Template
from pipelines.textio import DecodeLines, ReadLines, WriteDeadLetters, dead_letter_prefix
from pipelines.words import CountOccurrences, format_count, split_words

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
)
OUTPUT = Parameter(
    name="output",
    label="Output file prefix",
    help_text=(
        "Where to write the `word: count` lines: a path prefix in Cloud Storage, "
        "e.g. gs://PROJECT-bucket/result/wordcount (files get a -NNNNN-of-NNNNN suffix). "
        "Lines that are not valid UTF-8 still have their words counted and are also "
        "written, with the reason, to <output>_errors-NNNNN-of-NNNNN.json."
    ),
    param_type="GCS_WRITE_FILE",
    regexes=(GCS_PATH_REGEX,),
)

TEMPLATE = Template(
    name="wordcount",
    description="Counts the words of a text (the course lab's wordcount), case-sensitive.",
    parameters=(INPUT, OUTPUT),
)


def preflight(args, options) -> None:
    check_output_prefix("output", args.output, on_dataflow=is_dataflow(options))
    check_input_exists("input", args.input)


class CountWords(CountOccurrences):
    """Lines of text -> (word, count), words split on the lab's `[\\w']+`."""

    def __init__(self):
        super().__init__(split_words)


def read_text(pipeline, pattern: str):
    """(text lines, dead-letter rows) of the files matching `pattern`; shared by wordcount2."""
    return (
        pipeline
        | "Read" >> ReadLines(pattern, piece_bytes=WORD_PIECE_BYTES, with_position=True)
        | "Decode" >> DecodeLines()
    )


def build_pipeline(pipeline, args):
    lines, dead_letters = read_text(pipeline, args.input)
    dead_letters | "WriteDeadLetters" >> WriteDeadLetters(dead_letter_prefix(args.output))
    return (
        lines
        | "CountWords" >> CountWords()
        | "Format" >> beam.Map(format_count)
        | "Write" >> WriteToText(args.output)
    )


def run(argv=None):
    return run_job(sys.modules[__name__], argv)
