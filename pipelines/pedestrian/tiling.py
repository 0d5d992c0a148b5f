"""Cutting a frame into detector tiles and merging the tiles' boxes back into one list.

The detector sees 300x300 pixels. A whole 1920x1080 frame squeezed into that leaves a
close child about 120 px tall and squashed sideways, and the detector misses it (A_001);
overlapping square tiles of about 720 px keep it 400+ px tall at a natural aspect ratio.

Windows and boxes are (x1, y1, x2, y2) in pixels, x2/y2 exclusive, origin top-left.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Window = tuple[int, int, int, int]


def _starts(length: int, tile: int, overlap: float) -> list[int]:
    if tile >= length:
        return [0]
    step = tile * (1.0 - overlap)
    n = math.ceil((length - tile) / step) + 1
    # Spread the tiles evenly so the last one ends exactly at the edge: every pixel is
    # covered and the overlap is never less than asked for.
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def tile_grid(width: int, height: int, tile: int, overlap: float) -> list[Window]:
    """Square windows of side `tile` (clipped to the image) covering a width x height image.

    Neighbouring windows share at least `overlap` (a fraction of `tile`), so anything up
    to that many pixels wide lies whole inside some window. Row-major order.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if tile <= 0:
        raise ValueError(f"tile must be positive, got {tile}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    tw, th = min(tile, width), min(tile, height)
    return [
        (x, y, x + tw, y + th)
        for y in _starts(height, tile, overlap)
        for x in _starts(width, tile, overlap)
    ]


def to_frame_coords(normalised_boxes, window: Sequence[float]) -> np.ndarray:
    """Map a tile's detector boxes (normalised [ymin, xmin, ymax, xmax], as the TF object
    detection API returns them) to frame pixels (x1, y1, x2, y2), clipped to the window."""
    b = np.clip(np.asarray(normalised_boxes, dtype=np.float64).reshape(-1, 4), 0.0, 1.0)
    x0, y0, x1, y1 = (float(v) for v in window)
    w, h = x1 - x0, y1 - y0
    return np.stack(
        [x0 + b[:, 1] * w, y0 + b[:, 0] * h, x0 + b[:, 3] * w, y0 + b[:, 2] * h], axis=1
    )


def area(box: Sequence[float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def intersection(a: Sequence[float], b: Sequence[float]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes; 0 when either is empty."""
    inter = intersection(a, b)
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def containment(inner: Sequence[float], outer: Sequence[float]) -> float:
    """Share of `inner`'s area that lies inside `outer`."""
    a = area(inner)
    return intersection(inner, outer) / a if a > 0 else 0.0


def merge_boxes(
    boxes, scores, iou_threshold: float = 0.5, contain_threshold: float = 0.8
) -> list[tuple[tuple[float, ...], float]]:
    """Merge the boxes that several tiles found for the same object.

    Greedy non-max suppression, highest score first, with one change: a box mostly inside
    another (`contain_threshold` of its area) is the same object even at a low IoU, which
    is what a tile edge does to a pedestrian (a neighbouring tile sees the head and
    torso only). The group keeps the larger box, because the cut one has lost the very
    rows the distance comes from, and the best score of the group.
    Returns [(box, score)] sorted by score, highest first.
    """
    boxes = [tuple(float(v) for v in b) for b in boxes]
    scores = [float(s) for s in scores]
    if len(boxes) != len(scores):
        raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
    kept: list[list] = []  # [box, score]
    for i in sorted(range(len(boxes)), key=lambda i: -scores[i]):
        box, score = boxes[i], scores[i]
        if area(box) <= 0:
            continue
        for k in kept:
            if containment(k[0], box) >= contain_threshold and area(box) > area(k[0]):
                k[0] = box  # the earlier, better-scored box was the cut one
                break
            if iou(box, k[0]) >= iou_threshold or containment(box, k[0]) >= contain_threshold:
                break
        else:
            kept.append([box, score])
    return [(b, s) for b, s in kept]
