"""Word splitting and counting shared by wordcount and wordcount2."""

from __future__ import annotations

import collections
import re
from collections.abc import Callable, Iterable

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows

# The lab's pattern; str patterns are Unicode-aware, so `\w` covers letters of any script.
WORD_PATTERN = re.compile(r"[\w']+")


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
