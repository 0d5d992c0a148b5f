"""wordcount: count each word of a text, case-sensitive, as `word: count` lines.

Same output as Beam's `apache_beam.examples.wordcount` on the same input. Unlike it, bytes
that are not UTF-8 never stop the job: such a line still has its valid words counted, and also
goes to `<output>_errors-*.json` with the reason (rules in pipelines/io/lines.py). A very long
line is read and counted in pieces, in linear time and bounded memory.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.io import WriteToText

from pipelines.core.checks import check_input_exists, check_output_prefix
from pipelines.core.deadletters import errors_location
from pipelines.core.params import Template
from pipelines.io.text import RemoveStaleFiles, WriteDeadLetters
from pipelines.words.counting import CountWords, format_count, read_text
from pipelines.words.parameters import INPUT, output_prefix

OUTPUT = output_prefix(
    "output",
    "Output file prefix",
    (
        "Where to write the `word: count` lines: a path prefix in Cloud Storage, "
        "e.g. gs://PROJECT-bucket/result/wordcount (files get a -NNNNN-of-NNNNN suffix). "
        "Lines that are not valid UTF-8 still have their words counted and are also "
        "written, with the reason, to <output>_errors-NNNNN-of-NNNNN.json."
    ),
    "gs://{bucket}/result/wordcount",
)

TEMPLATE = Template(
    name="wordcount",
    description="Counts the words of a text (the course lab's wordcount), case-sensitive.",
    parameters=(INPUT, OUTPUT),
)


def preflight(args, options, *, on_dataflow: bool) -> None:
    check_output_prefix("output", args.output, on_dataflow=on_dataflow)
    check_input_exists("input", args.input)


def build_pipeline(pipeline, args):
    lines, dead_letters = read_text(pipeline, args.input)
    dead_letters | "WriteDeadLetters" >> WriteDeadLetters(errors_location(args.output))
    written = (
        lines
        | "CountWords" >> CountWords()
        | "Format" >> beam.Map(format_count)
        | "Write" >> WriteToText(args.output)
    )
    written | "RemoveStaleOutput" >> RemoveStaleFiles(args.output)
    return written
