"""The SSD graph's post-processing (anchor decoding, non-max suppression) in numpy.

The detector runs only the graph's convolutional part on TensorFlow Lite (detector.py);
this is what the frozen graph's `Postprocessor` does after it, per tile: the box
encodings are decoded against the anchors (the Faster R-CNN box coder), the class logits
become sigmoid scores, and one greedy non-max suppression per class keeps the best boxes,
which are then sorted, clipped to the tile and capped.

The settings are the graph's own (`Settings.from_constants`, read from its constants at
load), never copied here.

Only detections scoring at least `min_score` are computed. That is exact for them: greedy
suppression keeps or drops a box by the boxes scored above it alone, so leaving out the
lower ones changes nothing above, and it spares suppressing all 1917 anchors of every tile.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# Where the frozen graph holds each setting (TensorFlow object detection API names).
_NMS = "Postprocessor/BatchMultiClassNonMaxSuppression/map/while/MultiClassNonMaxSuppression/"
SETTING_NODES = {
    "scale_factors": tuple(f"Postprocessor/Decode/truediv{s}/y" for s in ("", "_1", "_2", "_3")),
    "logit_scale": "Postprocessor/scale_logits/y",
    "iou_threshold": _NMS + "non_max_suppression/iou_threshold",
    "score_threshold": _NMS + "non_max_suppression/score_threshold",
    "max_per_class": _NMS + "Minimum/x",
    "max_total": _NMS + "Minimum_1/x",
}
# The graph's inputs to the post-processing: box encodings [N, anchors, 1, 4] and class
# logits [N, anchors, 1 + classes], background first; and its anchors [anchors, 4].
BOX_ENCODINGS, CLASS_LOGITS, ANCHORS = "concat", "concat_1", "Concatenate/concat"
# The preprocessor's scaling of uint8 pixels to [-1, 1]: x * (2 / 255) - 1, in float32.
PIXEL_SCALE_NODE, PIXEL_SHIFT_NODE = "Preprocessor/mul/x", "Preprocessor/sub/y"
# Where the convolutional part starts: the scaled [N, 300, 300, 3] float image.
FEATURES_INPUT = "Preprocessor/sub"
# Where the detector cuts it in two (detector.LiteModel): the last tensor before the box
# predictors branch off, [N, 19, 19, 96] at a 300x300 input; everything after it reads it.
TILE_FEATURES = "FeatureExtractor/MobilenetV2/expanded_conv_12/add"
# Every node the detector takes from the graph (detector.lite_parts): the launch checks that
# the graph holds them (pipelines/pedestrian/options.py) before any worker loads it.
GRAPH_NODES = frozenset(
    {
        *SETTING_NODES["scale_factors"],
        *(node for key, node in SETTING_NODES.items() if key != "scale_factors"),
        BOX_ENCODINGS,
        CLASS_LOGITS,
        ANCHORS,
        PIXEL_SCALE_NODE,
        PIXEL_SHIFT_NODE,
        FEATURES_INPUT,
        TILE_FEATURES,
    }
)


class Settings(NamedTuple):
    scale_factors: tuple[float, float, float, float]  # y, x, height, width
    logit_scale: float
    iou_threshold: float
    score_threshold: float
    max_per_class: int
    max_total: int

    @classmethod
    def from_constants(cls, value) -> Settings:
        """`value(node name) -> numpy value` of the graph's constants."""
        return cls(
            scale_factors=tuple(float(value(n)) for n in SETTING_NODES["scale_factors"]),
            logit_scale=float(value(SETTING_NODES["logit_scale"])),
            iou_threshold=float(value(SETTING_NODES["iou_threshold"])),
            score_threshold=float(value(SETTING_NODES["score_threshold"])),
            max_per_class=int(value(SETTING_NODES["max_per_class"])),
            max_total=int(value(SETTING_NODES["max_total"])),
        )


def decode_boxes(encodings: np.ndarray, anchors: np.ndarray, scale_factors) -> np.ndarray:
    """[..., 4] encodings (ty, tx, th, tw) against [anchors, 4] (ymin, xmin, ymax, xmax)
    -> [..., 4] boxes (ymin, xmin, ymax, xmax), in the graph's float32 and order of ops."""
    anchors = np.asarray(anchors, np.float32)
    ha, wa = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    yca, xca = anchors[:, 0] + ha / np.float32(2), anchors[:, 1] + wa / np.float32(2)
    sy, sx, sh, sw = (np.float32(s) for s in scale_factors)
    e = np.asarray(encodings, np.float32)
    ty, tx, th, tw = e[..., 0] / sy, e[..., 1] / sx, e[..., 2] / sh, e[..., 3] / sw
    w, h = np.exp(tw) * wa, np.exp(th) * ha
    yc, xc = ty * ha + yca, tx * wa + xca
    half_h, half_w = h / np.float32(2), w / np.float32(2)
    return np.stack([yc - half_h, xc - half_w, yc + half_h, xc + half_w], axis=-1)


def _iou_with(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    # As TensorFlow's NonMaxSuppressionV3: corners in either order, 0 for an empty box.
    y1, x1 = np.minimum(box[0], box[2]), np.minimum(box[1], box[3])
    y2, x2 = np.maximum(box[0], box[2]), np.maximum(box[1], box[3])
    oy1, ox1 = np.minimum(others[:, 0], others[:, 2]), np.minimum(others[:, 1], others[:, 3])
    oy2, ox2 = np.maximum(others[:, 0], others[:, 2]), np.maximum(others[:, 1], others[:, 3])
    area, other_area = (y2 - y1) * (x2 - x1), (oy2 - oy1) * (ox2 - ox1)
    inter = np.maximum(np.minimum(y2, oy2) - np.maximum(y1, oy1), 0) * np.maximum(
        np.minimum(x2, ox2) - np.maximum(x1, ox1), 0
    )
    union = area + other_area - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where((area > 0) & (other_area > 0), inter / union, 0.0)
    return out


def non_max_suppression(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_out: int, min_score: float
) -> np.ndarray:
    """Indices kept by greedy NMS, best first: boxes scoring above `min_score`, each kept
    unless a kept, better box overlaps it by more than `iou_threshold`; ties by index."""
    candidates = np.flatnonzero(scores > min_score)
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    kept: list[int] = []
    while order.size and len(kept) < max_out:
        best, order = order[0], order[1:]
        kept.append(int(best))
        if order.size:
            order = order[_iou_with(boxes[best], boxes[order]) <= iou_threshold]
    return np.asarray(kept, dtype=np.int64)


def postprocess(
    box_encodings: np.ndarray,
    class_logits: np.ndarray,
    anchors: np.ndarray,
    settings: Settings,
    min_score: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The graph's outputs (num_detections, detection_scores, detection_boxes,
    detection_classes; [N], [N, max_total], [N, max_total, 4], [N, max_total], zero-padded)
    from its convolutional part's, for the detections scoring at least `min_score`."""
    encodings = np.asarray(box_encodings, np.float32)
    n = encodings.shape[0]
    encodings = encodings.reshape(n, len(anchors), 4)
    logits = np.asarray(class_logits, np.float32)
    scores = 1.0 / (1.0 + np.exp(-(logits[:, :, 1:] / np.float32(settings.logit_scale))))
    cap = settings.max_total
    num = np.zeros(n, np.float32)
    out_scores = np.zeros((n, cap), np.float32)
    out_boxes = np.zeros((n, cap, 4), np.float32)
    out_classes = np.zeros((n, cap), np.float32)
    # Strictly above the graph's own threshold, and at least the caller's.
    floor = np.nextafter(np.float32(min_score), np.float32(-1))
    floor = max(float(floor), settings.score_threshold)
    for t in range(n):
        # Only the candidates are decoded: few, at the job's threshold.
        tile_scores = scores[t]
        picked_boxes, picked_scores, picked_classes = [], [], []
        for c in range(tile_scores.shape[1]):
            candidates = np.flatnonzero(tile_scores[:, c] > floor)
            if not candidates.size:
                continue
            boxes = decode_boxes(
                encodings[t, candidates], anchors[candidates], settings.scale_factors
            )
            keep = non_max_suppression(
                boxes,
                tile_scores[candidates, c],
                settings.iou_threshold,
                settings.max_per_class,
                floor,
            )
            picked_boxes.append(boxes[keep])
            picked_scores.append(tile_scores[candidates[keep], c])
            picked_classes.append(np.full(keep.size, c + 1, np.float32))  # label ids from 1
        if not picked_scores:
            continue
        boxes = np.concatenate(picked_boxes)
        tile_scores = np.concatenate(picked_scores)
        classes = np.concatenate(picked_classes)
        order = np.argsort(-tile_scores, kind="stable")
        # Clipped to the tile ([0, 1]); boxes left with no area are dropped, as the graph's.
        boxes = np.clip(boxes[order], 0.0, 1.0)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        keep = np.flatnonzero(area > 0)[:cap]
        k = keep.size
        num[t] = k
        out_boxes[t, :k] = boxes[keep]
        out_scores[t, :k] = tile_scores[order][keep]
        out_classes[t, :k] = classes[order][keep]
    return num, out_scores, out_boxes, out_classes
