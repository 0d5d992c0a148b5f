"""Word splitting and counting: the composites of wordcount and wordcount2."""

from __future__ import annotations

import collections
import re
from collections.abc import Callable, Iterable

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows

from pipelines.io.lines import WORD_PIECE_BYTES
from pipelines.io.text import DecodeLines, ReadLines

# The lab's pattern; str patterns are Unicode-aware, so `\w` covers letters of any script.
WORD_PATTERN = re.compile(r"[\w']+")
# Lines are read, decoded and split into words this many bytes at a time: one element per
# batch instead of per line (Beam's per-element cost was most of the count's), small enough
# that a batch's words (about 200k a MiB) stay a few MB of Python objects.
BATCH_BYTES = 1 << 20


def split_words(line: str) -> list[str]:
    return WORD_PATTERN.findall(line)


def split_lower_words(line: str) -> list[str]:
    return WORD_PATTERN.findall(line.lower())


def format_count(word_and_count: tuple[str, int]) -> str:
    word, count = word_and_count
    return f"{word}: {count}"


class _CountKeysInBundle(beam.DoFn):
    """Sums keys within a bundle so only (key, partial count) pairs reach the shuffle."""

    def __init__(self, keys_of: Callable[[object], Iterable]):
        self._keys_of = keys_of

    def start_bundle(self):
        self._counts = collections.Counter()

    def process(self, element):
        self._counts.update(self._keys_of(element))

    def finish_bundle(self):
        for key, count in self._counts.items():
            yield GlobalWindows.windowed_value((key, count))
        self._counts = None


class CountOccurrences(beam.PTransform):
    """(key, count) for every key that `keys_of(element)` yields, over all elements.

    Counts are pre-summed per bundle (a hand-lifted combiner that also skips the per-word
    `(word, 1)` elements), so this is only for globally windowed, bounded input.
    """

    def __init__(self, keys_of: Callable[[object], Iterable], label: str | None = None):
        super().__init__(label)
        self._keys_of = keys_of

    def expand(self, pcoll):
        if not isinstance(pcoll.windowing.windowfn, GlobalWindows):
            raise TypeError("CountOccurrences pre-sums per bundle: it needs global windows")
        return (
            pcoll
            | "CountInBundle" >> beam.ParDo(_CountKeysInBundle(self._keys_of))
            | "SumCounts" >> beam.CombinePerKey(sum)
        )


def starts_a_to_f(word: str) -> tuple[str, ...]:
    return (word,) if "a" <= word[0] <= "f" else ()


def first_character(word: str) -> tuple[str]:
    return (word[0],)


class CountWords(CountOccurrences):
    """Lines of text -> (word, count), words split on the lab's `[\\w']+`."""

    def __init__(self):
        super().__init__(split_words)


def read_text(pipeline, pattern: str):
    """(texts, dead-letter rows) of the files matching `pattern`, long lines cut where no
    word spans a cut (pipelines/io/lines.py). A text is a batch of lines joined by newlines
    (a single line where a batch holds one that is not UTF-8): it splits into the same
    words as its lines. Steps Read and Decode, at the top level."""
    return (
        pipeline
        | "Read"
        >> ReadLines(
            pattern, piece_bytes=WORD_PIECE_BYTES, with_position=True, batch_bytes=BATCH_BYTES
        )
        | "Decode" >> DecodeLines()
    )


class CountAToFWords(CountOccurrences):
    """Lower-case words -> (word, count) for the words whose first character is a..f."""

    def __init__(self):
        super().__init__(starts_a_to_f)


class CountFirstCharacters(CountOccurrences):
    """Lower-case words -> (first character, number of words starting with it)."""

    def __init__(self):
        super().__init__(first_character)
