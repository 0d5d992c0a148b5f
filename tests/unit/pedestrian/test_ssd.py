"""The SSD post-processing in numpy (pipelines/pedestrian/ssd.py), without the model; that it
matches the graph's own is checked on the lab's frames (test_reference_detections.py)."""

import numpy as np
import pytest

from pipelines.pedestrian import ssd

SETTINGS = ssd.Settings(
    scale_factors=(10.0, 10.0, 5.0, 5.0),
    logit_scale=1.0,
    iou_threshold=0.6,
    score_threshold=1e-8,
    max_per_class=100,
    max_total=100,
)


def logit(p):
    return np.log(p / (1 - p))


def test_zero_encodings_decode_to_the_anchors_and_shifts_scale_by_the_factors():
    anchors = np.array([[0.1, 0.2, 0.5, 0.4], [0.0, 0.0, 1.0, 1.0]], np.float32)
    np.testing.assert_allclose(
        ssd.decode_boxes(np.zeros((2, 4)), anchors, SETTINGS.scale_factors), anchors, atol=1e-7
    )
    # ty = 10 * 0.25: the centre moves down a quarter of the anchor's height; tw = 5 * ln 2:
    # twice as wide.
    moved = ssd.decode_boxes(
        np.array([[2.5, 0.0, 0.0, 5 * np.log(2)]]), anchors[:1], SETTINGS.scale_factors
    )
    np.testing.assert_allclose(moved, [[0.2, 0.1, 0.6, 0.5]], atol=1e-6)


def test_nms_keeps_the_best_and_drops_what_it_overlaps():
    boxes = np.array(
        [
            [0.0, 0.0, 1.0, 1.0],
            [0.0, 0.0, 1.0, 0.9],  # IoU 0.9 with the first: dropped
            [0.0, 0.0, 1.0, 0.45],  # IoU 0.5 with the second: kept
            [2.0, 2.0, 3.0, 3.0],  # apart
            [5.0, 5.0, 5.0, 6.0],  # no area: never suppresses nor is suppressed
        ],
        np.float32,
    )
    scores = np.array([0.9, 0.95, 0.5, 0.3, 0.2], np.float32)
    kept = ssd.non_max_suppression(boxes, scores, 0.6, 10, 0.0)
    assert kept.tolist() == [1, 2, 3, 4]  # the first overlaps the better second by 0.9
    assert ssd.non_max_suppression(boxes, scores, 0.6, 2, 0.0).tolist() == [1, 2]
    # Strictly above the floor.
    assert ssd.non_max_suppression(boxes, scores, 0.6, 10, 0.3).tolist() == [1, 2]


def test_nms_breaks_ties_by_index():
    boxes = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]], np.float32)
    scores = np.array([0.5, 0.7, 0.7], np.float32)
    assert ssd.non_max_suppression(boxes, scores, 0.6, 10, 0.0).tolist() == [1]


def random_outputs(seed, tiles=3, anchors=400):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-0.1, 1.1, (anchors, 2))
    sizes = rng.uniform(0.05, 0.5, (anchors, 2))
    anchor_boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)
    encodings = rng.normal(0, 1, (tiles, anchors, 1, 4)).astype(np.float32)
    logits = rng.normal(-1, 2, (tiles, anchors, 2)).astype(np.float32)
    return encodings, logits, anchor_boxes.astype(np.float32)


@pytest.mark.parametrize("min_score", [0.3, 0.5, 0.9])
def test_leaving_out_low_scores_changes_nothing_above_them(min_score):
    encodings, logits, anchors = random_outputs(1)
    everything = ssd.postprocess(encodings, logits, anchors, SETTINGS)
    above = ssd.postprocess(encodings, logits, anchors, SETTINGS, min_score)
    for t in range(encodings.shape[0]):
        k = int((everything[1][t][: int(everything[0][t])] >= min_score).sum())
        assert int(above[0][t]) == k and k > 0
        for full, part in zip(everything[1:], above[1:]):
            np.testing.assert_array_equal(full[t][:k], part[t][:k])
            assert not part[t][k:].any()  # padded with zeros, as the graph pads


def test_outputs_are_sorted_clipped_capped_and_labelled_from_one():
    encodings, logits, anchors = random_outputs(2, anchors=1000)
    num, scores, boxes, classes = ssd.postprocess(
        encodings, logits, anchors, SETTINGS._replace(max_total=20)
    )
    assert scores.shape == (3, 20) and boxes.shape == (3, 20, 4)
    assert (num == 20).all()
    assert (np.diff(scores, axis=1) <= 0).all()
    assert boxes.min() >= 0 and boxes.max() <= 1
    assert ((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]) > 0).all()
    assert (classes == 1).all()
    assert ssd.postprocess(encodings, np.full_like(logits, -30.0), anchors, SETTINGS, 0.5)[
        0
    ].tolist() == [0, 0, 0]


def test_no_tiles_give_the_graphs_empty_outputs():
    _, _, anchors = random_outputs(3)
    num, scores, boxes, classes = ssd.postprocess(
        np.zeros((0, len(anchors), 1, 4)), np.zeros((0, len(anchors), 2)), anchors, SETTINGS
    )
    assert num.shape == (0,) and scores.shape == classes.shape == (0, 100)
    assert boxes.shape == (0, 100, 4)
