"""Pure word logic and the word-count composites, fed by beam.Create."""

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.core.launch import parse
from pipelines.jobs import wordcount
from pipelines.words import counting
from pipelines.words.counting import CountOccurrences, format_count, split_lower_words, split_words


@pytest.mark.parametrize(
    "line, words",
    [
        ("The king's fool", ["The", "king's", "fool"]),
        ("  -- ", []),
        ("naïve café, Ελλάδα 東京!", ["naïve", "café", "Ελλάδα", "東京"]),
        ("o'er-leap 'tis", ["o'er", "leap", "'tis"]),
        ("snake_case x2", ["snake_case", "x2"]),
    ],
)
def test_split_words_uses_the_labs_unicode_pattern(line, words):
    assert split_words(line) == words


def test_split_lower_words_lowercases_every_script():
    assert split_lower_words("The THE Éclair ΣΟΦΙΑ") == ["the", "the", "éclair", "σοφια"]


def test_format_count():
    assert format_count(("king", 3)) == "king: 3"


@pytest.mark.parametrize(
    "word, kept",
    [
        ("apple", True),
        ("fool", True),
        ("f", True),
        ("gate", False),
        ("zebra", False),
        ("'tis", False),
        ("éclair", False),
        ("2nd", False),
    ],
)
def test_a_to_f_filter(word, kept):
    assert counting.starts_a_to_f(word) == ((word,) if kept else ())


def test_count_words_is_case_sensitive():
    with TestPipeline() as p:
        counts = p | beam.Create(["The the THE the", "", "the end's end"]) | counting.CountWords()
        assert_that(
            counts, equal_to([("The", 1), ("the", 3), ("THE", 1), ("end's", 1), ("end", 1)])
        )


def test_count_occurrences_sums_across_bundles():
    with TestPipeline() as p:
        counts = (
            p | beam.Create(list("abcab" * 500), reshuffle=True) | CountOccurrences(lambda c: (c,))
        )
        assert_that(counts, equal_to([("a", 1000), ("b", 1000), ("c", 500)]))


def test_count_occurrences_refuses_non_global_windows():
    with pytest.raises(TypeError, match="global windows"), TestPipeline() as p:
        (
            p
            | beam.Create([1])
            | beam.WindowInto(beam.window.FixedWindows(10))
            | CountOccurrences(lambda x: (x,))
        )


def test_wordcount2_branches_from_the_same_words():
    lines = ["Apple banana Cherry", "apple zebra Éclair", "Fig 'tis date"]
    with TestPipeline() as p:
        words = p | beam.Create(lines) | beam.FlatMap(split_lower_words)
        a_to_f = words | "AToF" >> counting.CountAToFWords()
        letters = words | "Letters" >> counting.CountFirstCharacters()
        assert_that(
            a_to_f,
            equal_to([("apple", 2), ("banana", 1), ("cherry", 1), ("fig", 1), ("date", 1)]),
            label="CheckAToF",
        )
        assert_that(
            letters,
            equal_to(
                [("a", 2), ("b", 1), ("c", 1), ("z", 1), ("é", 1), ("f", 1), ("'", 1), ("d", 1)]
            ),
            label="CheckLetters",
        )


def test_wordcount_graph_has_stable_step_names(tmp_path, repo):
    _, parsed, _ = parse(
        wordcount.TEMPLATE,
        ["--input", str(repo / "data" / "kinglear.txt"), "--output", str(tmp_path / "o")],
    )
    pipeline = beam.Pipeline()
    wordcount.build_pipeline(pipeline, parsed)
    labels = {t.full_label for t in pipeline.transforms_stack[0].parts}
    assert labels == {
        "Read",
        "Decode",
        "WriteDeadLetters",
        "CountWords",
        "Format",
        "Write",
        "RemoveStaleOutput",
    }
