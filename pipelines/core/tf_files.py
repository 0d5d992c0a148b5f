"""TensorFlow's model files read without TensorFlow: the protobuf wire format (saved_model.pb,
export.meta) and the tensor bundle index (a checkpoint's `.index`: a LevelDB-style table of
BundleHeaderProto and BundleEntryProto).

The generated message classes live inside the tensorflow package, and importing that on the
launcher costs seconds and gigabytes the launcher does not have to spare. Every reader here
takes bytes someone else made: it returns a value or raises ModelFormatError saying what is
off, never anything else, and its work is bounded by the size of its input (no recursion
into the data's own nesting, counts capped).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple


class ModelFormatError(ValueError):
    """A model file that is not what the contract needs; the message says what is off."""


# ---- protobuf wire format -----------------------------------------------------------------


def varint(buffer: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(buffer) or shift > 63:
            raise ModelFormatError("truncated or corrupt protobuf")
        byte = buffer[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def fields(buffer: bytes) -> Iterator[tuple[int, object]]:
    """(field number, value) of each field of one message; varints as ints, the rest bytes."""
    if not isinstance(buffer, bytes):
        raise ModelFormatError("corrupt protobuf (a number where a message should be)")
    position = 0
    while position < len(buffer):
        key, position = varint(buffer, position)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ModelFormatError("corrupt protobuf (field number 0)")
        if wire_type == 0:
            value, position = varint(buffer, position)
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            value, position = buffer[position : position + size], position + size
        elif wire_type == 2:
            size, position = varint(buffer, position)
            value, position = buffer[position : position + size], position + size
        else:
            raise ModelFormatError(f"corrupt protobuf (wire type {wire_type})")
        if position > len(buffer):
            raise ModelFormatError("truncated protobuf")
        yield number, value


def field(buffer: bytes, number: int) -> list:
    return [value for n, value in fields(buffer) if n == number]


def first(buffer: bytes, number: int, default=None):
    values = field(buffer, number)
    return values[-1] if values else default  # protobuf: the last one of a scalar wins


def map_field(buffer: bytes, number: int) -> dict[str, bytes]:
    entries = {}
    for entry in field(buffer, number):
        keys, values = field(entry, 1), field(entry, 2)
        if keys:
            entries[text(keys[0])] = values[0] if values else b""
    return entries


def text(value) -> str:
    if not isinstance(value, bytes):
        raise ModelFormatError("corrupt protobuf (a number where a name should be)")
    return value.decode("utf-8", "replace")


def number(value) -> int:
    if not isinstance(value, int):
        raise ModelFormatError("corrupt protobuf (bytes where a number should be)")
    return value


def int64(value) -> int:
    value = number(value)
    return value - (1 << 64) if value >= 1 << 63 else value


def numbers(values: list) -> list[int]:
    """A repeated integer field, packed (one bytes value) or not (one int per value)."""
    result = []
    for value in values:
        if isinstance(value, bytes):
            position = 0
            while position < len(value):
                item, position = varint(value, position)
                result.append(item)
        else:
            result.append(value)
    return result


def shape(shape_proto) -> list[int] | None:
    """The dims of a TensorShapeProto (-1: any size), or None if its rank is unknown."""
    if first(shape_proto, 3):  # unknown_rank
        return None
    dims = [int64(first(dim, 1, 0)) for dim in field(shape_proto, 2)]
    if len(dims) > MAX_RANK or any(d < -1 for d in dims):
        raise ModelFormatError(f"corrupt tensor shape {dims[:8]}")
    return dims


# ---- the tensor bundle index (a LevelDB-style table) ----------------------------------------

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_BYTES = 48  # two block handles padded to 40 bytes, then the magic
_BLOCK_TRAILER_BYTES = 5  # compression type, masked crc32c
_CRC_MASK_DELTA = 0xA282EAD8
MAX_BUNDLE_ENTRIES = 100_000
MAX_SHARDS = 10_000
MAX_RANK = 254  # TensorFlow's own limit

# DataType -> bytes per element, for the types whose tensors have a fixed size.
DTYPE_SIZES = {1: 4, 2: 8, 3: 4, 4: 1, 5: 2, 6: 1, 8: 8, 9: 8, 10: 1, 11: 1, 12: 1, 13: 4}
DTYPE_SIZES |= {14: 2, 15: 2, 16: 2, 17: 2, 18: 16, 19: 2, 22: 4, 23: 8}
DTYPE_NAMES = {1: "float32", 2: "float64", 3: "int32", 7: "string", 9: "int64", 10: "bool"}
DTYPE_NAMES |= {14: "bfloat16", 19: "float16", 20: "resource", 21: "variant"}


def dtype_name(dtype: int) -> str:
    return DTYPE_NAMES.get(dtype, f"DataType {dtype}")


class BundleEntry(NamedTuple):
    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    sliced: bool  # a partitioned variable's entry: its data are in the slices' entries


class Bundle(NamedTuple):
    num_shards: int
    entries: dict[str, BundleEntry]

    def shard_ends(self) -> dict[int, int]:
        """{shard: the length its data file must have at least}."""
        ends = dict.fromkeys(range(self.num_shards), 0)
        for entry in self.entries.values():
            if not entry.sliced:
                ends[entry.shard] = max(ends[entry.shard], entry.offset + entry.size)
        return ends


def data_file_suffix(shard: int, num_shards: int) -> str:
    return f".data-{shard:05d}-of-{num_shards:05d}"


def _fixed32(data: bytes, position: int) -> int:
    return int.from_bytes(data[position : position + 4], "little")


def _masked_crc32c(data: bytes) -> int:
    import google_crc32c  # pinned in requirements.lock (google-cloud-storage needs it)

    crc = google_crc32c.value(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _CRC_MASK_DELTA) & 0xFFFFFFFF


def _block(data: bytes, handle: bytes, end: int) -> bytes:
    offset, position = varint(handle, 0)
    size, position = varint(handle, position)
    if offset + size + _BLOCK_TRAILER_BYTES > end:
        raise ModelFormatError("index block outside the file (truncated?)")
    contents = data[offset : offset + size + 1]  # with its compression type
    if contents[-1] != 0:
        raise ModelFormatError(f"compressed index block (type {contents[-1]}), not a bundle")
    if _fixed32(data, offset + size + 1) != _masked_crc32c(contents):
        raise ModelFormatError("index block checksum mismatch (corrupt)")
    return contents[:-1]


def _block_entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise ModelFormatError("index block too short")
    restarts = _fixed32(block, len(block) - 4)
    limit = len(block) - 4 - 4 * restarts
    if restarts < 1 or limit < 0:
        raise ModelFormatError("index block has a corrupt restart array")
    position, key = 0, b""
    while position < limit:
        shared, position = varint(block, position)
        unshared, position = varint(block, position)
        size, position = varint(block, position)
        if shared > len(key) or position + unshared + size > limit:
            raise ModelFormatError("corrupt index block entry")
        key = key[:shared] + block[position : position + unshared]
        position += unshared
        yield key, block[position : position + size]
        position += size


def table_entries(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (key, value) pairs of a LevelDB-style table, in order; checksums verified."""
    if (
        len(data) < _FOOTER_BYTES
        or _fixed32(data, len(data) - 8) | (_fixed32(data, len(data) - 4) << 32) != _TABLE_MAGIC
    ):
        raise ModelFormatError("not a tensor bundle index (no table footer)")
    footer_start = len(data) - _FOOTER_BYTES
    footer = data[footer_start:]
    _, position = varint(footer, 0)  # the metaindex handle, of no use here
    _, index_start = varint(footer, position)
    entries: list[tuple[bytes, bytes]] = []
    for _, handle in _block_entries(_block(data, footer[index_start:], footer_start)):
        for entry in _block_entries(_block(data, handle, footer_start)):
            if entries and entry[0] <= entries[-1][0]:
                raise ModelFormatError("index keys out of order (corrupt)")
            entries.append(entry)
            if len(entries) > MAX_BUNDLE_ENTRIES:
                raise ModelFormatError(f"more than {MAX_BUNDLE_ENTRIES} tensors in the index")
    return entries


def _bundle_entry(name: str, value: bytes, num_shards: int) -> BundleEntry:
    dtype = number(first(value, 1, 0))
    dims = shape(first(value, 2, b""))
    if dims is None or -1 in dims:
        raise ModelFormatError(f"tensor '{name}' has no valid shape in the index")
    shard, offset, size = (int64(first(value, n, 0)) for n in (3, 4, 5))
    if not 0 <= shard < num_shards or offset < 0 or size < 0:
        raise ModelFormatError(
            f"tensor '{name}' is at shard {shard}, offset {offset}, size {size}: "
            f"outside the bundle's {num_shards} shard(s)"
        )
    sliced = bool(field(value, 7))
    itemsize = DTYPE_SIZES.get(dtype)
    if itemsize is not None and not sliced:
        elements = 1
        for dim in dims:
            elements *= dim
        if size != elements * itemsize:
            raise ModelFormatError(
                f"tensor '{name}' ({dtype_name(dtype)} {dims}) is {size} bytes in the index; "
                f"its shape needs {elements * itemsize}"
            )
    return BundleEntry(dtype, tuple(dims), shard, offset, size, sliced)


def read_bundle(data: bytes) -> Bundle:
    """The header and tensor entries of a tensor bundle index (a checkpoint's .index)."""
    entries = table_entries(data)
    if not entries or entries[0][0] != b"":
        raise ModelFormatError("tensor bundle index has no header")
    header = entries[0][1]
    num_shards = int64(first(header, 1, 0))
    if not 1 <= num_shards <= MAX_SHARDS:
        raise ModelFormatError(f"tensor bundle index says {num_shards} data files")
    tensors = {}
    for key, value in entries[1:]:
        try:
            name = key.decode("utf-8")
        except UnicodeDecodeError:
            raise ModelFormatError("tensor name in the index is not UTF-8") from None
        tensors[name] = _bundle_entry(name, value, num_shards)
    return Bundle(num_shards, tensors)
