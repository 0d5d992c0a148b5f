"""CameraModel: both distance cues against boxes drawn from known constants."""

import math

import pytest

from pipelines.pedestrian import geometry
from pipelines.pedestrian.geometry import HEAD_TOP, HEIGHT, CameraModel

CAM = CameraModel(
    focal_px=1500.0,
    horizon_row=560.0,
    camera_height_m=1.6,
    forward_offset_m=1.0,
    pedestrian_height_m=1.3,
    image_height=1080,
    image_width=1920,
    bottom_margin_px=20.0,
)


def project(cam, depth, lateral=0.0, half_width=40.0):
    """The box a pedestrian at (depth, lateral) makes, clipped at the frame bottom."""
    f, v0 = cam.focal_px, cam.horizon_row
    top = v0 + f * (cam.camera_height_m - cam.pedestrian_height_m) / depth
    foot = v0 + f * cam.camera_height_m / depth
    xc = cam.image_width / 2 + f * lateral / depth
    return (xc - half_width, top, xc + half_width, min(foot, cam.image_height))


def truth(cam, depth, lateral=0.0):
    return math.hypot(depth + cam.forward_offset_m, lateral)


def test_whole_box_uses_the_height():
    box = project(CAM, 8.0)  # feet at 860: well inside the frame
    est = CAM.distance(box)
    assert est.kind == HEIGHT
    assert est.depth_m == pytest.approx(8.0)
    assert est.distance_m == pytest.approx(9.0)


def test_box_cut_at_the_bottom_uses_the_head_top():
    box = project(CAM, 3.0)  # feet would be at 1360
    assert box[3] == 1080
    est = CAM.distance(box)
    assert est.kind == HEAD_TOP
    assert est.depth_m == pytest.approx(3.0)
    # The height cue would have said 1.3 * 1500 / (1080 - 710) = 5.3 m.
    assert CAM.depth_from_height(box[3] - box[1]) == pytest.approx(5.27, abs=0.01)


def test_detector_box_that_stops_short_of_the_edge_is_still_cut():
    x1, y1, x2, _ = project(CAM, 3.0)
    box = (x1, y1, x2, 1040)  # 40 px above the edge, beyond the margin
    assert CAM.is_cut(box)
    assert CAM.distance(box).depth_m == pytest.approx(3.0)


def test_margin_near_the_bottom_edge():
    # A box ending inside the margin counts as cut even when its head is high.
    assert CAM.is_cut((900, 600, 960, 1065))
    assert not CAM.is_cut((900, 600, 960, 1055))


def test_lateral_offset_adds_to_the_distance():
    est = CAM.distance(project(CAM, 4.0, lateral=-1.2))
    assert est.kind == HEAD_TOP
    assert est.lateral_m == pytest.approx(-1.2)
    assert est.distance_m == pytest.approx(truth(CAM, 4.0, -1.2))
    est = CAM.distance(project(CAM, 9.0, lateral=2.0))
    assert est.kind == HEIGHT
    assert est.distance_m == pytest.approx(truth(CAM, 9.0, 2.0))


def test_resized_frames_give_the_same_distance():
    box = project(CAM, 3.5, lateral=0.5)
    half = tuple(v / 2 for v in box)
    assert CAM.distance(half, image_height=540).distance_m == pytest.approx(
        CAM.distance(box).distance_m
    )
    assert CAM.distance(box, image_height=1080) == CAM.distance(box)


def test_no_estimate_without_a_usable_cue():
    assert CAM.distance((900, 500, 960, 1080)) is None  # cut, head above the horizon
    assert CAM.distance((900, 700, 960, 700)) is None  # zero height
    assert CAM.distance((960, 700, 900, 900)) is None  # x2 < x1
    tall = CameraModel(camera_height_m=1.2)  # camera below the head: no head-top cue
    assert tall.depth_from_head_top(700) is None
    assert tall.foot_row(700) is None


def test_invalid_constants_are_rejected():
    with pytest.raises(ValueError):
        CameraModel(focal_px=0)
    with pytest.raises(ValueError):
        CameraModel(pedestrian_height_m=-1)
    with pytest.raises(ValueError):
        CAM.distance((0, 0, 1, 1), image_height=0)


def test_defaults_are_the_fitted_constants():
    cam = geometry.DEFAULT_CAMERA
    assert cam == CameraModel()
    assert (cam.focal_px, cam.horizon_row, cam.camera_height_m, cam.forward_offset_m) == (
        geometry.FOCAL_PX,
        geometry.HORIZON_ROW,
        geometry.CAMERA_HEIGHT_M,
        geometry.FORWARD_OFFSET_M,
    )
    assert cam.pedestrian_height_m == 1.30
    assert (cam.image_width, cam.image_height) == (1920, 1080)
