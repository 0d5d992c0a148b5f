"""Text lines as bytes: the rules, and the pure functions behind pipelines/io/text.py. No Beam.

The rules, for every job that reads text (README "When input is bad" says them for users):

- **Lines.** A line ends at `\\n`; a `\\r` just before it is dropped; the last line needs no
  newline; an empty file has no lines. These are Beam's `ReadFromText` rules.
- **Bytes that are not UTF-8.** Bytes stay bytes until `decode_line`. A line that is valid
  UTF-8 is decoded as it is. A line that is not is decoded with `errors="replace"`: each bad
  byte sequence becomes U+FFFD, which is not a word character (`\\w`), so a bad byte splits
  words rather than joining them and the line's valid words still count; and the line also
  becomes a dead letter row (pipelines/core/deadletters.py), the reason naming the first bad
  byte and its offset, the row with bad bytes as `\\xNN` escapes. Never a crash.
- **Long lines.** Beam's text source grows its buffer by copying the line so far for every
  8 KiB it reads, so a line of n bytes costs about n^2 / 16 KiB byte copies (a 50 MB line:
  ~150 GB copied, minutes). `ReadLines` reads 1 MiB blocks and joins each line once. With
  `piece_bytes`, it also never holds more than about that much of a line: a longer line comes
  out as pieces, each cut just after an ASCII byte that cannot be part of a word (anything but
  letters, digits, `_` and `'`), so no word spans two pieces and word counts are unchanged. A
  run of word bytes longer than `piece_bytes` stays whole: it is one word, held whole anyway as
  an output key. Each piece is a line for the dead letters.

- **CSV records.** A quoted field may hold line breaks (RFC 4180), so a CSV record is one line
  or several: it ends at the first line end after which its count of `"` is even (`""`, an
  escaped quote, counts two). It may span lines for at most `MAX_RECORD_BYTES`: a quote still
  open after that (a stray `"`, a truncated file) ends the record at its first line, which
  is then a record of its own with an odd count of quotes (a dead letter for an unclosed
  quote), and reading resumes at the next line. So one bad quote costs one line, never the
  rest of a file, and every byte of the file is in exactly one record: a record is the file's
  bytes from its first line to its last, inner line ends included.

`pipelines.io.text.ReadLines` is a bounded source like `ReadFromText`: Beam still splits a large
file across workers (a range owns the lines that start in it); compressed files are read whole.
`ReadRecords` reads each file whole: where a record starts depends on every quote before it
(Beam's own CSV reader, `read_csv`, does not split files either, by default).
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator
from typing import BinaryIO, NamedTuple

BLOCK_BYTES = 1 << 20
# How far a CSV record may span lines: a valid MNIST record is under 20 KB.
MAX_RECORD_BYTES = 1 << 20
# Word counts cut lines into pieces this long: ~50k words per piece at most, a few MB of
# Python objects while a piece is counted, and readable dead letters.
WORD_PIECE_BYTES = 1 << 18


_WORD_BYTES = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_'" + bytes(range(0x80, 0x100))
)
# translate() maps each byte after which a line may be cut to 0, every other byte to 1; then
# bytes.find/rfind locate cut points at C speed.
_CUT_MARKS = bytes(1 if byte in _WORD_BYTES else 0 for byte in range(256))


class Line(NamedTuple):
    """A line (or a piece of one) with where it starts: ReadLines(..., with_position=True)."""

    path: str
    offset: int
    data: bytes


def decode_line(data: bytes) -> tuple[str, str | None]:
    """(text, None) for valid UTF-8; else (text with U+FFFD for bad bytes, the reason)."""
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as error:
        return (
            data.decode("utf-8", errors="replace"),
            f"not UTF-8: byte 0x{data[error.start]:02X} at offset {error.start} of the line",
        )


def _last_cut(data: bytes, start: int, end: int) -> int | None:
    found = data[start:end].translate(_CUT_MARKS).rfind(0)
    return start + found + 1 if found >= 0 else None


def _next_cut(data: bytes, start: int) -> int | None:
    # Growing windows: the cost is linear in the distance to the cut, not in len(data).
    size = 1 << 16
    while start < len(data):
        found = data[start : start + size].translate(_CUT_MARKS).find(0)
        if found >= 0:
            return start + found + 1
        start += size
        size *= 2
    return None


def split_pieces(data: bytes, piece_bytes: int) -> tuple[list[bytes], bytes]:
    """Cuts pieces off the front of `data` while it is longer than `piece_bytes`:
    (pieces, rest), where rest is at most `piece_bytes` long or holds no cut point. Each
    piece is as long as possible up to `piece_bytes` and ends with a non-word ASCII byte
    (or, after a longer word, with the first such byte after it)."""
    pieces = []
    start = 0
    while len(data) - start > piece_bytes:
        end = _last_cut(data, start, start + piece_bytes) or _next_cut(data, start + piece_bytes)
        if end is None:
            break
        pieces.append(data[start:end])
        start = end
    return pieces, data[start:]


def cut_line(line: bytes, piece_bytes: int | None) -> list[bytes]:
    """A whole line as the pieces ReadLines emits (the line itself when short enough)."""
    if piece_bytes is None:
        return [line]
    pieces, rest = split_pieces(line, piece_bytes)
    return pieces + [rest] if rest or not pieces else pieces


def iter_lines(
    stream: BinaryIO, start: int = 0, piece_bytes: int | None = None, block_bytes: int = BLOCK_BYTES
) -> Iterator[tuple[int, bytes, bool]]:
    """(offset, bytes, starts_a_line) for each line, or piece of a line, read from `stream`
    (positioned at offset `start`, the start of a line). Linear in the bytes read."""
    chunks: list[bytes] = []  # the part of the current line not yet emitted
    held = 0
    offset = start  # of chunks[0]
    at_line_start = True
    retry_at = 2 * piece_bytes if piece_bytes else None

    def emit(data: bytes, final: bool):
        nonlocal offset, at_line_start
        pieces = cut_line(data, piece_bytes) if final else split_pieces(data, piece_bytes)[0]
        for piece in pieces:
            yield offset, piece, at_line_start
            offset += len(piece)
            at_line_start = False

    while block := stream.read(block_bytes):
        position = 0
        while (newline := block.find(b"\n", position)) >= 0:
            if chunks:  # the line began in an earlier block
                chunks.append(block[position:newline])
                data = b"".join(chunks)
                chunks, held = [], 0
            else:
                data = block[position:newline]
            ending = offset + len(data) + 1
            data = data[:-1] if data.endswith(b"\r") else data
            if at_line_start and (piece_bytes is None or len(data) <= piece_bytes):
                yield offset, data, True  # the usual line: no generator, no cutting
            elif data or at_line_start:  # no empty last piece after a cut line
                yield from emit(data, final=True)
            offset, at_line_start = ending, True
            position = newline + 1
        if position < len(block):
            chunks.append(block[position:])
            held += len(block) - position
        if retry_at is not None and held >= retry_at:
            data = b"".join(chunks)
            emitted = 0
            # A trailing \r may end the line once the next block brings its \n: keep it.
            cuttable = data[:-1] if data.endswith(b"\r") else data
            for piece_offset, piece, starts in emit(cuttable, final=False):
                emitted += len(piece)
                yield piece_offset, piece, starts
            rest = data[emitted:]
            chunks, held = [rest], len(rest)
            # A long word leaves a long rest: wait for it to double, so joins stay linear.
            retry_at = max(2 * piece_bytes, 2 * held)
    if held:
        yield from emit(b"".join(chunks), final=True)


def after_next_newline(stream: BinaryIO, position: int) -> int | None:
    """Moves `stream` (at `position`) just past its next newline and returns that offset,
    or None at the end of the stream."""
    while block := stream.read(BLOCK_BYTES):
        found = block.find(b"\n")
        if found >= 0:
            stream.seek(position + found + 1)
            return position + found + 1
        position += len(block)
    return None


def odd_quotes(data: bytes) -> bool:
    """Whether `data` holds an odd number of `"`: data.count(b'"') & 1, by memchr for up to
    two quotes (a CSV line of the lab's has two; a count walks all of its 5 KB byte by byte)."""
    first = data.find(b'"')
    if first < 0:
        return False
    second = data.find(b'"', first + 1)
    if second < 0:
        return True
    if data.find(b'"', second + 1) < 0:
        return False
    return bool(data.count(b'"', second + 1) & 1)


def iter_records(
    lines: Iterable[tuple[int, bytes, bool]], max_bytes: int = MAX_RECORD_BYTES
) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) of each CSV record, by the module's rule, from `iter_lines` (whole
    lines). A record of several lines keeps its inner line ends (`\\n` or `\\r\\n`) as in the
    file, so it is exactly the file's bytes from `offset` on. Linear: a line is looked at
    again at most once, after the record it was in turned out too long."""
    source = ((offset, data) for offset, data, _ in lines)
    again: collections.deque[tuple[int, bytes]] = collections.deque()
    pending: list[tuple[int, bytes]] = []  # the lines of a record whose quote is still open
    while True:
        line = again.popleft() if again else next(source, None)
        if line is None:
            if not pending:
                return
            give_up = True  # the end of the file: the quote never closes
        else:
            offset, data = line
            odd = odd_quotes(data)
            if not pending and not odd:
                yield line  # the usual record: one line
                continue
            pending.append(line)
            size = offset - pending[0][0] + len(data)
            give_up = size > max_bytes
            if not give_up:
                if odd and len(pending) > 1:  # the quote closes: one record of several lines
                    yield pending[0][0], _join(pending)
                    pending = []
                continue
        # The first line alone holds the unclosed quote; the others are read again.
        yield pending[0]
        again.extendleft(reversed(pending[1:]))
        pending = []


def _join(lines: list[tuple[int, bytes]]) -> bytes:
    parts = []
    for (offset, data), (next_offset, _) in zip(lines, lines[1:]):
        parts += (data, b"\r\n" if next_offset - offset - len(data) == 2 else b"\n")
    parts.append(lines[-1][1])
    return b"".join(parts)
