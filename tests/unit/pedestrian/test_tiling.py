"""Tile grid, box mapping, IoU and merging: hand-made cases, no model."""

import itertools

import numpy as np
import pytest

from pipelines.pedestrian.tiling import containment, iou, merge_boxes, tile_grid, to_frame_coords


def coverage(width, height, windows):
    seen = np.zeros((height, width), dtype=int)
    for x0, y0, x1, y1 in windows:
        seen[y0:y1, x0:x1] += 1
    return seen


def test_grid_for_the_lab_frames():
    windows = tile_grid(1920, 1080, 720, 0.25)
    assert windows == [(x, y, x + 720, y + 720) for y in (0, 360) for x in (0, 400, 800, 1200)]


@pytest.mark.parametrize(
    "width,height,tile,overlap",
    [
        (1920, 1080, 720, 0.25),
        (1920, 1080, 640, 0.4),
        (1000, 700, 300, 0.0),
        (1281, 721, 500, 0.5),
        (100, 50, 64, 0.1),
    ],
)
def test_grid_covers_every_pixel_with_at_least_the_overlap(width, height, tile, overlap):
    windows = tile_grid(width, height, tile, overlap)
    assert coverage(width, height, windows).min() >= 1
    for x0, y0, x1, y1 in windows:
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert (x1 - x0, y1 - y0) == (min(tile, width), min(tile, height))
    xs = sorted({w[0] for w in windows})
    ys = sorted({w[1] for w in windows})
    for starts in (xs, ys):
        for a, b in itertools.pairwise(starts):
            assert tile - (b - a) >= overlap * tile - 1  # rounding of the even spread


def test_tile_larger_than_the_image_is_the_whole_image():
    assert tile_grid(300, 200, 720, 0.25) == [(0, 0, 300, 200)]
    # One axis shorter than the tile: a single row of full-height windows.
    assert tile_grid(1500, 500, 720, 0.25) == [
        (0, 0, 720, 500),
        (390, 0, 1110, 500),
        (780, 0, 1500, 500),
    ]


@pytest.mark.parametrize(
    "args", [(0, 10, 5, 0.1), (10, 10, 0, 0.1), (10, 10, 5, 1.0), (10, 10, 5, -0.1)]
)
def test_grid_rejects_bad_arguments(args):
    with pytest.raises(ValueError):
        tile_grid(*args)


def test_to_frame_coords_maps_normalised_yx_boxes_to_pixels():
    window = (400, 360, 1120, 1080)  # 720 x 720
    norm = [[0.0, 0.0, 1.0, 1.0], [0.5, 0.25, 1.0, 0.5]]
    got = to_frame_coords(norm, window)
    np.testing.assert_allclose(got, [[400, 360, 1120, 1080], [580, 720, 760, 1080]])


def test_to_frame_coords_clips_and_handles_empty():
    got = to_frame_coords([[-0.1, -0.2, 1.3, 0.5]], (10, 20, 110, 220))
    np.testing.assert_allclose(got, [[10, 20, 60, 220]])
    assert to_frame_coords(np.zeros((0, 4)), (0, 0, 10, 10)).shape == (0, 4)


def test_iou_hand_cases():
    a = (0, 0, 10, 10)
    assert iou(a, a) == 1.0
    assert iou(a, (10, 0, 20, 10)) == 0.0  # touching edges share no area
    assert iou(a, (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou(a, (2, 2, 4, 4)) == pytest.approx(4 / 100)
    assert iou(a, (5, 5, 5, 9)) == 0.0  # empty box
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_containment():
    assert containment((2, 2, 4, 4), (0, 0, 10, 10)) == 1.0
    assert containment((0, 0, 10, 10), (2, 2, 4, 4)) == pytest.approx(0.04)
    assert containment((5, 5, 5, 5), (0, 0, 10, 10)) == 0.0


def test_merge_keeps_the_best_of_overlapping_boxes():
    merged = merge_boxes([(0, 0, 10, 20), (1, 1, 11, 21), (100, 0, 110, 20)], [0.6, 0.9, 0.7])
    assert merged == [((1, 1, 11, 21), 0.9), ((100, 0, 110, 20), 0.7)]


def test_merge_keeps_neighbours_that_barely_overlap():
    boxes = [(0, 0, 10, 40), (8, 0, 18, 40)]  # IoU 0.11, neither inside the other
    assert len(merge_boxes(boxes, [0.8, 0.7])) == 2


def test_merge_prefers_the_whole_box_over_a_better_scored_cut_one():
    # A tile edge at y=60 cuts the pedestrian: that tile's box is the top half, scored
    # higher; the neighbouring tile sees it whole. IoU is only 0.5 - epsilon.
    whole, cut = (100, 40, 140, 200), (101, 41, 139, 119)
    assert iou(whole, cut) < 0.5
    merged = merge_boxes([cut, whole], [0.9, 0.6], iou_threshold=0.5)
    assert merged == [(whole, 0.9)]
    # Same result whichever comes first.
    assert merge_boxes([whole, cut], [0.6, 0.9]) == [(whole, 0.9)]


def test_merge_drops_a_lower_scored_cut_box_inside_a_kept_one():
    whole, cut = (100, 40, 140, 200), (100, 120, 140, 200)
    assert merge_boxes([whole, cut], [0.9, 0.5]) == [(whole, 0.9)]


def test_merge_edge_cases():
    assert merge_boxes([], []) == []
    assert merge_boxes([(0, 0, 0, 10)], [0.9]) == []  # empty box
    with pytest.raises(ValueError):
        merge_boxes([(0, 0, 1, 1)], [])
    out = merge_boxes(
        np.array([[0, 0, 5, 5], [50, 50, 60, 60], [20, 0, 25, 5]]), np.array([0.3, 0.8, 0.5])
    )
    assert [s for _, s in out] == [0.8, 0.5, 0.3]
    assert all(isinstance(v, float) for b, _ in out for v in b)
