"""The MNIST model contract: what a model folder is, what goes in and what comes out.

Both MNIST jobs, the launch check (`models.check_model`, no TensorFlow) and the loader
(`model.load_model`, on workers) read it from here. A model folder (local or gs://) holds
either
  * a TensorFlow SavedModel: `saved_model.pb`, `variables/variables.index` and
    `variables/variables.data-*` (TensorFlow loads none without all three), whose signature
    `serving_default` takes `image` float32 [None, 784] and returns `scores` [None, 10]
    (what tools/train_mnist.py writes to models/mnist/), or
  * the lab's TF1 checkpoint: `export.meta`, `export.index`, `export.data-*`, whose graph
    names its tensors in the JSON collections `inputs` (key, image) and `outputs` (key, scores).

The structural check reads the protobuf wire format itself (a few lines below) because the
generated message classes live inside the tensorflow package, and importing that on the
launcher costs seconds and gigabytes the launcher does not have to spare.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

NUM_PIXELS = 784  # 28x28, row-major, in [0, 1]
NUM_CLASSES = 10
SIGNATURE_KEY = "serving_default"
INPUT_NAME = "image"
OUTPUT_NAME = "scores"
SAVED_MODEL_FILE = "saved_model.pb"
SAVED_MODEL_VARIABLES = ("variables/variables.index", "variables/variables.data-*")
CHECKPOINT_PREFIX = "export"
CHECKPOINT_META = CHECKPOINT_PREFIX + ".meta"
CHECKPOINT_INDEX = CHECKPOINT_PREFIX + ".index"
CHECKPOINT_DATA_GLOB = CHECKPOINT_PREFIX + ".data-*"
CHECKPOINT_FILES = (CHECKPOINT_INDEX, CHECKPOINT_DATA_GLOB)
CHECKPOINT_COLLECTIONS = {"inputs": INPUT_NAME, "outputs": OUTPUT_NAME}

EXPECTED = (
    f"a TensorFlow SavedModel ({SAVED_MODEL_FILE} with a '{SIGNATURE_KEY}' signature taking "
    f"'{INPUT_NAME}' float32 [None, {NUM_PIXELS}] and returning '{OUTPUT_NAME}' "
    f"[None, {NUM_CLASSES}], and {' and '.join(SAVED_MODEL_VARIABLES)}) or the lab's TF1 "
    f"checkpoint ({', '.join((CHECKPOINT_META, *CHECKPOINT_FILES))})"
)

_DT_FLOAT = 1  # tensorflow DataType enum


class ModelFormatError(ValueError):
    """A model folder that does not hold the contract's model; the message says what is off."""


# ---- protobuf wire format -----------------------------------------------------------------


def _varint(buffer: bytes, position: int) -> tuple[int, int]:
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


def _fields(buffer: bytes) -> Iterator[tuple[int, object]]:
    """(field number, value) of each field of one message; varints as ints, the rest bytes."""
    if not isinstance(buffer, bytes):
        raise ModelFormatError("corrupt protobuf (a number where a message should be)")
    position = 0
    while position < len(buffer):
        key, position = _varint(buffer, position)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ModelFormatError("corrupt protobuf (field number 0)")
        if wire_type == 0:
            value, position = _varint(buffer, position)
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            value, position = buffer[position : position + size], position + size
        elif wire_type == 2:
            size, position = _varint(buffer, position)
            value, position = buffer[position : position + size], position + size
        else:
            raise ModelFormatError(f"corrupt protobuf (wire type {wire_type})")
        if position > len(buffer):
            raise ModelFormatError("truncated protobuf")
        yield number, value


def _field(buffer: bytes, number: int) -> list:
    return [value for n, value in _fields(buffer) if n == number]


def _map(buffer: bytes, number: int) -> dict[str, bytes]:
    entries = {}
    for entry in _field(buffer, number):
        keys, values = _field(entry, 1), _field(entry, 2)
        if keys:
            entries[_text(keys[0])] = values[0] if values else b""
    return entries


def _text(value) -> str:
    if not isinstance(value, bytes):
        raise ModelFormatError("corrupt protobuf (a number where a name should be)")
    return value.decode("utf-8", "replace")


def _number(value) -> int:
    if not isinstance(value, int):
        raise ModelFormatError("corrupt protobuf (bytes where a number should be)")
    return value


def _shape(tensor_info: bytes) -> list[int] | None:
    shapes = _field(tensor_info, 3)
    if not shapes or _field(shapes[0], 3):  # no shape, or unknown rank
        return None
    dims = []
    for dim in _field(shapes[0], 2):
        sizes = _field(dim, 1)
        size = _number(sizes[0]) if sizes else 0
        dims.append(size - (1 << 64) if size >= 1 << 63 else size)  # int64 -1 = any
    return dims


# ---- the checks ---------------------------------------------------------------------------


def check_saved_model(data: bytes) -> None:
    """`data` is a saved_model.pb with the contract's signature; ModelFormatError if not."""
    graphs = _field(data, 2)
    if not graphs:
        raise ModelFormatError(f"{SAVED_MODEL_FILE} is not a SavedModel (no meta graph)")
    signatures = {}
    for graph in graphs:
        signatures.update(_map(graph, 5))
    if SIGNATURE_KEY not in signatures:
        raise ModelFormatError(
            f"{SAVED_MODEL_FILE} has no '{SIGNATURE_KEY}' signature (it has {sorted(signatures)})"
        )
    signature = signatures[SIGNATURE_KEY]
    inputs, outputs = _map(signature, 1), _map(signature, 2)
    if set(inputs) != {INPUT_NAME} or OUTPUT_NAME not in outputs:
        raise ModelFormatError(
            f"signature '{SIGNATURE_KEY}' takes {sorted(inputs)} and returns "
            f"{sorted(outputs)}; expected '{INPUT_NAME}' -> '{OUTPUT_NAME}'"
        )
    dtypes = _field(inputs[INPUT_NAME], 2)
    if dtypes and dtypes[0] != _DT_FLOAT:
        raise ModelFormatError(
            f"'{INPUT_NAME}' must be float32 (DataType {_DT_FLOAT}), got DataType {dtypes[0]}"
        )
    for name, size in ((INPUT_NAME, NUM_PIXELS), (OUTPUT_NAME, NUM_CLASSES)):
        tensor = inputs.get(name) or outputs[name]
        shape = _shape(tensor)
        if shape is not None and (len(shape) != 2 or shape[1] not in (-1, size)):
            raise ModelFormatError(f"'{name}' has shape {shape}; expected [None, {size}]")


def check_checkpoint_meta(data: bytes) -> None:
    """`data` is the lab's export.meta (a MetaGraphDef) naming its tensors as the lab's did."""
    collections = _map(data, 4)
    if not _field(data, 2):
        raise ModelFormatError(f"{CHECKPOINT_META} has no graph")
    for collection, tensor in CHECKPOINT_COLLECTIONS.items():
        if collection not in collections:
            raise ModelFormatError(f"{CHECKPOINT_META} has no '{collection}' collection")
        names: dict = {}
        for bytes_list in _field(collections[collection], 2):
            for entry in _field(bytes_list, 1):
                try:
                    names.update(json.loads(_text(entry)))
                except (ValueError, TypeError):
                    raise ModelFormatError(f"collection '{collection}' is not JSON") from None
        if tensor not in names:
            raise ModelFormatError(
                f"collection '{collection}' names {sorted(names)}, not '{tensor}'"
            )
