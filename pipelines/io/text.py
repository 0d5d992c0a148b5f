"""Beam transforms for reading text robustly: `ReadLines` (bytes lines in linear time, long
lines in pieces), `ReadRecords` (CSV records, which may span lines), `DecodeLines` (text,
plus dead letters for lines that are not UTF-8) and `WriteDeadLetters`.
The rules they follow are in pipelines/io/lines.py.
"""

from __future__ import annotations

import logging
import os
import re
from array import array
from collections.abc import Iterable, Iterator
from itertools import repeat
from typing import NamedTuple

import apache_beam as beam
from apache_beam.io import WriteToText
from apache_beam.io.filebasedsource import FileBasedSource
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.metrics import Metrics

from pipelines.core.deadletters import DEAD_LETTERS, dead_letter_row, to_json_line
from pipelines.io.lines import Line, after_next_newline, decode_line, iter_lines, iter_records

_log = logging.getLogger(__name__)


class _LineSource(FileBasedSource):
    def __init__(
        self,
        pattern: str,
        piece_bytes: int | None,
        with_position: bool,
        validate: bool,
        batch_bytes: int | None = None,
    ):
        super().__init__(pattern, compression_type=CompressionTypes.AUTO, validate=validate)
        self._piece_bytes = piece_bytes
        self._with_position = with_position
        self._batch_bytes = batch_bytes

    def read_records(self, file_name, range_tracker):
        start = range_tracker.start_position()
        with self.open_file(file_name) as stream:
            if start > 0:
                # A range owns the lines that start in it: the line holding byte start - 1
                # belongs to the range before, unless that byte ends it.
                stream.seek(start - 1)
                start = after_next_newline(stream, start - 1)
                if start is None:
                    return
            if self._batch_bytes is not None:
                yield from self._read_batches(file_name, stream, start, range_tracker)
                return
            for offset, data, starts_line in iter_lines(stream, start, self._piece_bytes):
                if starts_line:
                    # Only line starts are split points, so a split never falls between
                    # the pieces of one line.
                    if not range_tracker.try_claim(offset):
                        return
                else:
                    range_tracker.set_current_position(offset)
                yield Line(file_name, offset, data) if self._with_position else data

    def _read_batches(self, file_name, stream, start, range_tracker):
        """`LineBatch`es of the lines above, about `batch_bytes` each: one element, not
        thousands, for Beam to pass on (its per-element cost was most of a word count's)."""
        path = file_name if self._with_position else None
        offsets, items, size = array("q"), [], 0
        for offset, data, starts_line in iter_lines(stream, start, self._piece_bytes):
            # Every line start is claimed, as for single lines: a claim is what stops a
            # split from giving the line to another range too.
            if starts_line and not range_tracker.try_claim(offset):
                break
            offsets.append(offset)
            items.append(data)
            size += len(data) + 1
            if size >= self._batch_bytes:
                yield LineBatch(path, offsets.tobytes(), b"\n".join(items))
                offsets, items, size = array("q"), [], 0
        if items:
            yield LineBatch(path, offsets.tobytes(), b"\n".join(items))


class LineBatch(NamedTuple):
    """Lines (or pieces of lines) read together: ReadLines(..., batch_bytes=...).

    `data` is the lines joined by newlines (no line holds one, so `data.split(b"\\n")`
    gives them back) and `offsets` where each starts, packed as native int64 (an array's
    bytes): two byte strings, which Beam sizes and encodes without looking at each line.
    """

    path: str | None
    offsets: bytes
    data: bytes

    def lines(self) -> Iterator[Line]:
        return map(Line, repeat(self.path), array("q", self.offsets), self.data.split(b"\n"))


class ReadLines(beam.PTransform):
    """Lines of the files matching `pattern`, as bytes without their line ending (or as
    `Line(path, offset, data)` with `with_position`), by the rules in pipelines/io/lines.py.

    `piece_bytes`: cut longer lines into pieces at non-word bytes (word counts); None keeps
    every line whole (read in linear time all the same). `batch_bytes`: `LineBatch`es of
    about that many bytes instead of single lines (`DecodeLines` takes either).
    """

    def __init__(
        self,
        pattern: str,
        *,
        piece_bytes: int | None = None,
        with_position: bool = False,
        validate: bool = True,
        batch_bytes: int | None = None,
    ):
        super().__init__()
        for name, value in (("piece_bytes", piece_bytes), ("batch_bytes", batch_bytes)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be positive, got {value}")
        self._source = _LineSource(pattern, piece_bytes, with_position, validate, batch_bytes)
        self._type = tuple[str, int, bytes] if with_position else bytes
        if batch_bytes is not None:
            self._type = tuple[str | None, bytes, bytes]

    def expand(self, pbegin):
        return pbegin | beam.io.Read(self._source).with_output_types(self._type)


class _RecordSource(FileBasedSource):
    def __init__(self, pattern: str, block_records: int | None):
        # Not splittable: where a record starts depends on every quote before it.
        super().__init__(pattern, compression_type=CompressionTypes.AUTO, splittable=False)
        self._block_records = block_records

    def read_records(self, file_name, range_tracker):
        with self.open_file(file_name) as stream:
            records = iter_records(iter_lines(stream))
            if not self._block_records:
                for offset, data in records:
                    if not range_tracker.try_claim(offset):
                        return
                    yield data
                return
            block: list[bytes] = []
            for offset, data in records:
                if not block and not range_tracker.try_claim(offset):
                    return
                block.append(data)
                if len(block) == self._block_records:
                    yield block
                    block = []
            if block:
                yield block


class ReadRecords(beam.PTransform):
    """CSV records of the files matching `pattern`, as bytes (one line, or several when a
    quoted field holds line breaks), by the rules in pipelines/io/lines.py.

    With `block_records`, lists of up to that many records, in order: for a job that works
    in batches, Beam's cost per element (a few microseconds in each step) is then paid once
    a block rather than once a record."""

    def __init__(self, pattern: str, *, block_records: int | None = None):
        super().__init__()
        if block_records is not None and block_records < 1:
            raise ValueError(f"block_records must be positive, got {block_records}")
        self._source = _RecordSource(pattern, block_records)
        self._type = list[bytes] if block_records else bytes

    def expand(self, pbegin):
        return pbegin | beam.io.Read(self._source).with_output_types(self._type)


class _DecodeLines(beam.DoFn):
    def __init__(self):
        self._bad_lines = Metrics.counter("text", "lines_not_utf8")

    def process(self, line):
        if isinstance(line, tuple) and isinstance(line[1], bytes):  # a LineBatch
            yield from self._process_batch(LineBatch(*line))
            return
        # A Line becomes a plain tuple when Beam encodes it between stages.
        path, offset, data = line if isinstance(line, tuple) else (None, None, line)
        text, problem = decode_line(data)
        yield text
        if problem is not None:
            self._bad_lines.inc()
            if path is not None:
                problem += f" starting at byte {offset} of {path}"
            yield beam.pvalue.TaggedOutput(DEAD_LETTERS, dead_letter_row(data, problem))

    def _process_batch(self, batch: LineBatch):
        # One text for a batch of valid lines, as they are joined by newlines: "\n" is not
        # a word character and cannot be part of a multi-byte sequence, so the batch decodes
        # iff every line does, and splits into the same words. A batch with a bad line is
        # decoded line by line, as single lines are.
        try:
            yield batch.data.decode("utf-8")
            return
        except UnicodeDecodeError:
            pass
        for line in batch.lines():
            yield from self.process(line)


class DecodeLines(beam.PTransform):
    """Lines (bytes, `Line`s or `LineBatch`es) -> (text of every line, or of every batch of
    lines joined by newlines, and dead-letter rows of the lines that are not UTF-8). A bad
    line is in both: its valid words still count."""

    def expand(self, lines):
        decoded = lines | "Decode" >> beam.ParDo(_DecodeLines()).with_outputs(
            DEAD_LETTERS, main="text"
        )
        return decoded.text, decoded[DEAD_LETTERS]


class WriteDeadLetters(beam.PTransform):
    """Dead-letter rows -> JSON-lines files `<prefix>-*.json`; no file when there are none."""

    def __init__(self, prefix: str):
        super().__init__()
        self._prefix = prefix

    def expand(self, rows):
        written = (
            rows
            | "ToJson" >> beam.Map(to_json_line)
            | "WriteFiles"
            >> WriteToText(self._prefix, file_name_suffix=".json", skip_if_empty=True)
        )
        written | "RemoveStale" >> RemoveStaleFiles(self._prefix, ".json")
        return written


# A file WriteToText writes: the prefix, its default shard name, the suffix.
_SHARD = r"-[0-9]+-of-[0-9]+"


def stale_files(prefix: str, suffix: str, existing: Iterable[str], written: Iterable[str]):
    """The files among `existing` that a write to `prefix` (with `suffix`) could have made,
    but this one did not: an earlier run's, of the same prefix."""
    shard = re.compile(re.escape(_comparable(prefix)) + _SHARD + re.escape(suffix))
    mine = {_comparable(path) for path in written}
    return sorted(
        path
        for path in existing
        if shard.fullmatch(_comparable(path)) and _comparable(path) not in mine
    )


def _comparable(path: str) -> str:
    return path if "://" in path else os.path.abspath(os.path.expanduser(path))


class _RemoveStaleFn(beam.DoFn):
    def __init__(self, prefix: str, suffix: str):
        self._prefix = prefix
        self._suffix = suffix
        self._removed = Metrics.counter("text", "stale_files_removed")

    def process(self, written: list[str]):
        from apache_beam.io.filesystems import FileSystems

        pattern = f"{self._prefix}-*-of-*{self._suffix}"
        existing = [m.path for m in FileSystems.match([pattern])[0].metadata_list]
        stale = stale_files(self._prefix, self._suffix, existing, written)
        if stale:
            FileSystems.delete(stale)
            self._removed.inc(len(stale))
            _log.info("Removed %d files of an earlier run: %s", len(stale), ", ".join(stale))
        yield from stale


class RemoveStaleFiles(beam.PTransform):
    """After a WriteToText to `prefix` (its output: the names of the files it wrote), removes
    the other files of that prefix's shard names (`<prefix>-NNNNN-of-NNNNN<suffix>`): what an
    earlier run wrote. So a run's files are its own: fewer shards than last time, or no
    dead letters this time (no file then), leave nothing of the earlier run behind. Runs after
    the write, so a run that fails keeps the earlier run's files whole."""

    def __init__(self, prefix: str, suffix: str = ""):
        super().__init__()
        self._prefix = prefix
        self._suffix = suffix

    def expand(self, written):
        return (
            written
            | "ListWritten" >> beam.combiners.ToList()
            | "Remove" >> beam.ParDo(_RemoveStaleFn(self._prefix, self._suffix))
        )
