"""wordcount2: one read, two outputs (the course lab's wordcount2).

Words are split on `[\\w']+` and lower-cased; then, from the same words,
  - output:  `word: count` for words whose first character is between a and f;
  - output2: `c: count` for the first character of every word.
Lines that are not UTF-8 still count, and also go to `<output>_errors-*.json` (rules in
pipelines/io/lines.py).
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.io import WriteToText

from pipelines.core.checks import check_distinct, check_input_exists, check_output_prefix
from pipelines.core.deadletters import errors_location
from pipelines.core.params import Template
from pipelines.io.text import RemoveStaleFiles, WriteDeadLetters
from pipelines.words.counting import (
    CountAToFWords,
    CountFirstCharacters,
    format_count,
    read_text,
    split_lower_words,
)
from pipelines.words.parameters import INPUT, output_prefix

OUTPUT2 = output_prefix(
    "output2",
    "Output file prefix for first-letter counts",
    (
        "Where to write the `c: count` lines (words per first character): a path "
        "prefix in Cloud Storage, e.g. gs://PROJECT-bucket/result/letters."
    ),
    "gs://{bucket}/result/letters",
)
OUTPUT = output_prefix(
    "output",
    "Output file prefix for a-f words",
    (
        "Where to write the `word: count` lines for words starting with a to f: a "
        "path prefix in Cloud Storage, e.g. gs://PROJECT-bucket/result/wordcount2. Lines "
        "that are not valid UTF-8 still count and are also written, with the reason, "
        "to <output>_errors-NNNNN-of-NNNNN.json."
    ),
    "gs://{bucket}/result/wordcount2",
)

TEMPLATE = Template(
    name="wordcount2",
    description=(
        "Lower-cases the words of a text and writes two counts from one read: "
        "words starting with a-f, and words per first character."
    ),
    parameters=(INPUT, OUTPUT, OUTPUT2),
)


def preflight(args, options, *, on_dataflow: bool) -> None:
    check_output_prefix("output", args.output, on_dataflow=on_dataflow)
    check_output_prefix("output2", args.output2, on_dataflow=on_dataflow)
    check_distinct(("output", args.output), ("output2", args.output2))
    check_input_exists("input", args.input)


def build_pipeline(pipeline, args):
    lines, dead_letters = read_text(pipeline, args.input)
    dead_letters | "WriteDeadLetters" >> WriteDeadLetters(errors_location(args.output))
    words = lines | "ExtractWords" >> beam.FlatMap(split_lower_words)
    a_to_f = (
        words
        | "CountAToFWords" >> CountAToFWords()
        | "FormatWords" >> beam.Map(format_count)
        | "WriteWords" >> WriteToText(args.output)
    )
    letters = (
        words
        | "CountFirstCharacters" >> CountFirstCharacters()
        | "FormatCharacters" >> beam.Map(format_count)
        | "WriteCharacters" >> WriteToText(args.output2)
    )
    a_to_f | "RemoveStaleWords" >> RemoveStaleFiles(args.output)
    letters | "RemoveStaleCharacters" >> RemoveStaleFiles(args.output2)
    return a_to_f, letters
