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

The launch check reads these files without TensorFlow (pipelines/core/tf_files.py): the
graph's input and output shapes, the variables it restores, the index that holds their
weights, and the length of each data file the index names.
"""

from __future__ import annotations

from typing import NamedTuple

from pipelines.core.json_text import read_json
from pipelines.core.tf_files import (
    Bundle,
    ModelFormatError,
    data_file_suffix,
    dtype_name,
    field,
    first,
    map_field,
    number,
    numbers,
    read_bundle,
    shape,
    text,
)

NUM_PIXELS = 784  # 28x28, row-major, in [0, 1]
NUM_CLASSES = 10
SIGNATURE_KEY = "serving_default"
INPUT_NAME = "image"
OUTPUT_NAME = "scores"
SAVED_MODEL_FILE = "saved_model.pb"
SAVED_MODEL_PREFIX = "variables/variables"
SAVED_MODEL_VARIABLES = (SAVED_MODEL_PREFIX + ".index", SAVED_MODEL_PREFIX + ".data-*")
CHECKPOINT_PREFIX = "export"
CHECKPOINT_META = CHECKPOINT_PREFIX + ".meta"
CHECKPOINT_INDEX = CHECKPOINT_PREFIX + ".index"
CHECKPOINT_DATA_GLOB = CHECKPOINT_PREFIX + ".data-*"
CHECKPOINT_FILES = (CHECKPOINT_INDEX, CHECKPOINT_DATA_GLOB)
CHECKPOINT_COLLECTIONS = {"inputs": INPUT_NAME, "outputs": OUTPUT_NAME}
# Every file of either format, as patterns within a model folder.
MODEL_FILES = (SAVED_MODEL_FILE, *SAVED_MODEL_VARIABLES, CHECKPOINT_META, *CHECKPOINT_FILES)
# What the launch check reads whole; the lab's graph and index are a few kilobytes, ours a
# few hundred, so a file beyond these is not a model of this contract.
MAX_GRAPH_BYTES = 64 * 1024 * 1024
MAX_INDEX_BYTES = 16 * 1024 * 1024

EXPECTED = (
    f"a TensorFlow SavedModel ({SAVED_MODEL_FILE} with a '{SIGNATURE_KEY}' signature taking "
    f"'{INPUT_NAME}' float32 [None, {NUM_PIXELS}] and returning '{OUTPUT_NAME}' "
    f"[None, {NUM_CLASSES}], and {' and '.join(SAVED_MODEL_VARIABLES)}) or the lab's TF1 "
    f"checkpoint ({', '.join((CHECKPOINT_META, *CHECKPOINT_FILES))}) whose graph takes "
    f"'{INPUT_NAME}' float32 [None, {NUM_PIXELS}] and returns '{OUTPUT_NAME}' "
    f"[None, {NUM_CLASSES}]; each with the weights of its graph's variables"
)

_DT_FLOAT = 1  # tensorflow DataType enum
_VARIABLE_OPS = ("VariableV2", "Variable", "VarHandleOp")
_MAX_INDEX_DIGITS = 9  # an op's output number; more digits are part of a name, or hostile
_MAX_OBJECT_DEPTH = 64  # a SavedModel's object paths: ours are 1 deep, Keras's a handful


class Variable(NamedTuple):
    """A variable a graph restores: its DataType and shape (None: the graph does not say)."""

    dtype: int
    shape: tuple[int, ...] | None


# ---- the graphs ---------------------------------------------------------------------------


def _check_dims(name: str, dims, size: int) -> None:
    if dims is not None and (len(dims) != 2 or dims[1] not in (-1, size)):
        raise ModelFormatError(f"'{name}' has shape {list(dims)}; expected [None, {size}]")


def _check_input_dtype(dtype) -> None:
    if dtype is not None and dtype != _DT_FLOAT:
        raise ModelFormatError(f"'{INPUT_NAME}' must be float32, got {dtype_name(number(dtype))}")


def check_saved_model(data: bytes) -> dict[str, Variable]:
    """`data` is a saved_model.pb with the contract's signature; ModelFormatError if not.
    Returns {checkpoint key: Variable} of the variables its object graph holds."""
    graphs = field(data, 2)
    if not graphs:
        raise ModelFormatError(f"{SAVED_MODEL_FILE} is not a SavedModel (no meta graph)")
    signatures = {}
    for graph in graphs:
        signatures.update(map_field(graph, 5))
    if SIGNATURE_KEY not in signatures:
        raise ModelFormatError(
            f"{SAVED_MODEL_FILE} has no '{SIGNATURE_KEY}' signature (it has {sorted(signatures)})"
        )
    signature = signatures[SIGNATURE_KEY]
    inputs, outputs = map_field(signature, 1), map_field(signature, 2)
    if set(inputs) != {INPUT_NAME} or OUTPUT_NAME not in outputs:
        raise ModelFormatError(
            f"signature '{SIGNATURE_KEY}' takes {sorted(inputs)} and returns "
            f"{sorted(outputs)}; expected '{INPUT_NAME}' -> '{OUTPUT_NAME}'"
        )
    _check_input_dtype(first(inputs[INPUT_NAME], 2))
    for name, size in ((INPUT_NAME, NUM_PIXELS), (OUTPUT_NAME, NUM_CLASSES)):
        tensor = inputs.get(name) or outputs[name]
        shapes = field(tensor, 3)
        _check_dims(name, shape(shapes[0]) if shapes else None, size)
    return _saved_variables(graphs)


def _saved_variables(graphs: list) -> dict[str, Variable]:
    # A variable's checkpoint key is the path of child names from the root object to it,
    # each escaped, then /.ATTRIBUTES/VARIABLE_VALUE (TensorFlow's object-based checkpoint);
    # breadth first, so each object gets its shortest path, as TensorFlow's does.
    variables = {}
    for graph in graphs:
        nodes = field(first(graph, 7, b""), 1)
        parents: dict[int, tuple[int, str, int]] = {0: (-1, "", 0)}  # id: parent, name, depth
        queue = [0] if nodes else []
        for node_id in queue:
            depth = parents[node_id][2]
            for child in field(nodes[node_id], 1):
                child_id = number(first(child, 1, 0))
                if child_id < len(nodes) and child_id not in parents:
                    parents[child_id] = (node_id, text(first(child, 2, b"")), depth + 1)
                    if depth + 1 < _MAX_OBJECT_DEPTH:
                        queue.append(child_id)
        for node_id in queue:
            saved = first(nodes[node_id], 7)
            if saved is None:
                continue
            path, at = [], node_id
            while at > 0:
                at, name, _ = parents[at]
                path.append(name.replace(".", "..").replace("/", ".S"))
            key = "/".join([*reversed(path), ".ATTRIBUTES", "VARIABLE_VALUE"])
            dims = shape(first(saved, 2, b""))
            variables[key] = Variable(number(first(saved, 1, 0)), _known(dims))
    return variables


def _known(dims) -> tuple[int, ...] | None:
    return None if dims is None else tuple(dims)


class _Node(NamedTuple):
    op: str
    inputs: list[str]
    attrs: dict[str, bytes]  # name: AttrValue


def _graph_nodes(graph: bytes) -> dict[str, _Node]:
    nodes = {}
    for node in field(graph, 1):
        inputs = [text(name) for name in field(node, 3)]
        nodes[text(first(node, 1, b""))] = _Node(
            text(first(node, 2, b"")), inputs, map_field(node, 5)
        )
    return nodes


def _declared_shape(node: _Node) -> tuple[int, ...] | None:
    """A placeholder's or a variable's declared shape (a resource variable's output is its
    handle, whose recorded shape is [])."""
    if "shape" not in node.attrs:
        return None
    return _known(shape(first(node.attrs["shape"], 7, b"")))


def _attr_shape(node: _Node, name: str, index: int) -> tuple[int, ...] | None:
    """The shape of output `index` of `node` as its graph recorded it, if it did."""
    output_shapes = field(first(node.attrs.get("_output_shapes", b""), 1, b""), 7)
    if index < len(output_shapes):
        return _known(shape(output_shapes[index]))
    if output_shapes:
        raise ModelFormatError(
            f"the graph's '{name}' has {len(output_shapes)} output(s), not {index}"
        )
    return _declared_shape(node)


def _graph_tensor(nodes: dict[str, _Node], collection: str, names: dict, key: str):
    """(DataType or None, shape or None) of the tensor collection `collection` names `key`."""
    tensor = names[key]
    if not isinstance(tensor, str):
        raise ModelFormatError(f"collection '{collection}' names {key!r} as {tensor!r}")
    node_name, colon, index = tensor.rpartition(":")
    if not (colon and index.isascii() and index.isdigit() and len(index) <= _MAX_INDEX_DIGITS):
        node_name, index = tensor, "0"
    node = nodes.get(node_name)
    if node is None:
        raise ModelFormatError(
            f"collection '{collection}' names '{key}' as {tensor!r}, which the graph lacks"
        )
    return first(node.attrs.get("dtype", b""), 6), _attr_shape(node, node_name, int(index))


def check_checkpoint_meta(data: bytes) -> dict[str, Variable]:
    """`data` is the lab's export.meta (a MetaGraphDef) naming its tensors as the lab's did,
    its `image` float32 [None, 784] and its `scores` [None, 10] where the graph records
    shapes. Returns {name in the checkpoint: Variable} of what its saver restores."""
    collections = map_field(data, 4)
    graph = first(data, 2)
    if graph is None:
        raise ModelFormatError(f"{CHECKPOINT_META} has no graph")
    nodes = _graph_nodes(graph)
    for collection, tensor in CHECKPOINT_COLLECTIONS.items():
        if collection not in collections:
            raise ModelFormatError(f"{CHECKPOINT_META} has no '{collection}' collection")
        names: dict = {}
        for bytes_list in field(collections[collection], 2):
            for entry in field(bytes_list, 1):
                try:
                    names.update(read_json(text(entry)))
                except (ValueError, TypeError):
                    raise ModelFormatError(f"collection '{collection}' is not JSON") from None
        if tensor not in names:
            raise ModelFormatError(
                f"collection '{collection}' names {sorted(names)}, not '{tensor}'"
            )
        dtype, dims = _graph_tensor(nodes, collection, names, tensor)
        if tensor == INPUT_NAME:
            _check_input_dtype(dtype)
        _check_dims(tensor, dims, NUM_PIXELS if tensor == INPUT_NAME else NUM_CLASSES)
    return _restored_variables(first(data, 3, b""), nodes)


def _restored_variables(saver: bytes, nodes: dict[str, _Node]) -> dict[str, Variable]:
    # What import_meta_graph's Saver restores: the names and types its RestoreV2 ops ask
    # the index for; a shape where the variable of that name declares one.
    scope = text(first(saver, 3, b"")).rpartition("/")[0]
    variables = {}
    for name, node in nodes.items():
        if node.op != "RestoreV2" or not name.startswith(scope + "/"):
            continue
        names_node = nodes.get(node.inputs[1].partition(":")[0]) if len(node.inputs) > 1 else None
        if names_node is None:
            raise ModelFormatError(f"the graph's restore op {name!r} has no tensor names")
        tensor = first(names_node.attrs.get("value", b""), 8, b"")
        tensor_names = [text(value) for value in field(tensor, 8)]
        dtypes = [
            number(d) for d in numbers(field(first(node.attrs.get("dtypes", b""), 1, b""), 6))
        ]
        if len(tensor_names) != len(dtypes):
            raise ModelFormatError(
                f"the graph's restore op {name!r} names {len(tensor_names)} tensors "
                f"but types {len(dtypes)}"
            )
        for tensor_name, dtype in zip(tensor_names, dtypes):
            variable = nodes.get(tensor_name)
            known = variable is not None and variable.op in _VARIABLE_OPS
            variables[tensor_name] = Variable(dtype, _declared_shape(variable) if known else None)
    return variables


# ---- the weights --------------------------------------------------------------------------


def _same_shape(graph: tuple[int, ...] | None, stored: tuple[int, ...]) -> bool:
    return graph is None or (
        len(graph) == len(stored) and all(g in (-1, s) for g, s in zip(graph, stored))
    )


def check_weights(
    variables: dict[str, Variable], index: bytes, index_name: str, *, every: bool = True
) -> Bundle:
    """`index` is a tensor bundle index holding each of `variables` with its DataType and
    shape (`every`=False: those it holds; a SavedModel restores by its object graph, which
    lives in the data file). Returns the bundle."""
    try:
        bundle = read_bundle(index)
    except ModelFormatError as error:
        raise ModelFormatError(f"{index_name}: {error}") from None
    for name, variable in sorted(variables.items()):
        entry = bundle.entries.get(name)
        if entry is None:
            if every:
                raise ModelFormatError(
                    f"{index_name} has no weights for the graph's variable '{name}'"
                )
            continue
        if entry.dtype != variable.dtype or not _same_shape(variable.shape, entry.shape):
            graph_shape = "?" if variable.shape is None else list(variable.shape)
            raise ModelFormatError(
                f"{index_name} holds '{name}' as {dtype_name(entry.dtype)} "
                f"{list(entry.shape)}; the graph's variable is "
                f"{dtype_name(variable.dtype)} {graph_shape}"
            )
    return bundle


def check_data_files(bundle: Bundle, prefix: str, lengths: dict[str, int]) -> None:
    """The data files the index of `prefix` names are there ({name: bytes}), and each is as
    long as the index says."""
    for shard, end in bundle.shard_ends().items():
        name = prefix + data_file_suffix(shard, bundle.num_shards)
        if name not in lengths:
            raise ModelFormatError(f"{prefix}.index names {name}, which is not there")
        if lengths[name] < end:
            raise ModelFormatError(
                f"{name} is {lengths[name]} bytes; its index says {end} (truncated?)"
            )
