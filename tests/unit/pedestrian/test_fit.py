"""tools.fit_camera: recovers known constants, and fits the lab's labels well enough."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipelines.pedestrian import geometry
from pipelines.pedestrian.geometry import HEAD_TOP, HEIGHT, CameraModel
from tests.support import markers
from tools import fit_camera
from tools.fit_camera import Sample, evaluate, load_labels
from tools.fit_camera import fit_camera as fit

REPO = Path(__file__).resolve().parents[3]
LABELS = markers.DESIGN / "Labels.csv"
needs_labels = markers.needs_design

TRUE = CameraModel(
    focal_px=1500.0,
    horizon_row=560.0,
    camera_height_m=1.6,
    forward_offset_m=1.0,
    bottom_margin_px=20.0,
)
PARAMS = ("focal_px", "horizon_row", "camera_height_m", "forward_offset_m")


def synthetic(cam, n=80, seed=7):
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        depth, lateral = rng.uniform(2.5, 12.0), rng.uniform(-1.5, 1.5)
        f, v0 = cam.focal_px, cam.horizon_row
        top = v0 + f * (cam.camera_height_m - cam.pedestrian_height_m) / depth
        foot = min(v0 + f * cam.camera_height_m / depth, cam.image_height)
        xc = cam.image_width / 2 + f * lateral / depth
        half = 0.12 * f / depth
        samples.append(
            Sample(
                f"S{i}",
                (xc - half, top, xc + half, foot),
                float(np.hypot(depth + cam.forward_offset_m, lateral)),
            )
        )
    return samples


def test_recovers_known_constants_from_exact_boxes():
    samples = synthetic(TRUE)
    kinds = {TRUE.distance(s.box).kind for s in samples}
    assert kinds == {HEIGHT, HEAD_TOP}  # both cues take part
    for loss in ("huber", "linear"):
        got = fit(samples, replace(CameraModel(), bottom_margin_px=20.0), loss=loss)
        for name in PARAMS:
            assert getattr(got, name) == pytest.approx(getattr(TRUE, name), rel=1e-4, abs=1e-4)
        summary = evaluate(got, samples)
        assert summary["all"]["max"] < 1e-4
        assert summary["all"]["n"] == len(samples)


def test_huber_loss_shrugs_off_a_few_bad_labels():
    samples = synthetic(TRUE, seed=11)
    for i in (3, 17, 40):  # labels off by metres, as a few of the lab's are
        samples[i] = replace(samples[i], distance_m=samples[i].distance_m + 2.5)
    got = fit(samples, replace(CameraModel(), bottom_margin_px=20.0), loss="huber")
    assert got.focal_px == pytest.approx(TRUE.focal_px, rel=0.02)
    assert got.horizon_row == pytest.approx(TRUE.horizon_row, abs=3)
    assert got.camera_height_m == pytest.approx(TRUE.camera_height_m, abs=0.02)
    assert got.forward_offset_m == pytest.approx(TRUE.forward_offset_m, abs=0.1)
    errors = sorted(
        abs(TRUE.distance(s.box).distance_m - got.distance(s.box).distance_m) for s in samples
    )
    assert errors[-1] < 0.1


@needs_labels
def test_labels_load_as_camera_a_boxes_and_ground_distances():
    samples = load_labels(LABELS)
    assert len(samples) == 146
    a1 = next(s for s in samples if s.name == "A_001.png")
    assert a1.box == (1010.0, 654.0, 1132.0, 1080.0)
    # Car1 (-51.54, 143) to pedestrian (-47, 143.28).
    assert a1.distance_m == pytest.approx(4.5500, abs=1e-3)


@needs_labels
def test_fit_on_labels_is_accurate_and_matches_the_committed_constants():
    samples = load_labels(LABELS)
    model = fit(samples)
    summary = evaluate(model, samples)
    assert summary["all"]["n"] == len(samples)
    assert summary["all"]["mean"] <= 0.35
    assert summary[HEIGHT]["n"] > 10 and summary[HEAD_TOP]["n"] > 10
    committed = geometry.DEFAULT_CAMERA
    assert model.focal_px == pytest.approx(committed.focal_px, rel=2e-3)
    assert model.horizon_row == pytest.approx(committed.horizon_row, abs=0.5)
    assert model.camera_height_m == pytest.approx(committed.camera_height_m, abs=2e-3)
    assert model.forward_offset_m == pytest.approx(committed.forward_offset_m, abs=0.01)
    assert evaluate(committed, samples)["all"]["mean"] <= 0.35


@needs_labels
def test_cli_prints_constants_and_errors(capsys):
    assert fit_camera.main(["--labels", str(LABELS)]) == 0
    out = capsys.readouterr().out
    for word in PARAMS + ("mean |err| m", "max |err| m", HEIGHT, HEAD_TOP):
        assert word in out
