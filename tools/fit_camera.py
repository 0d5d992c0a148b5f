"""Fit the camera constants of `pipelines.pedestrian.geometry` on the lab's labelled boxes.

    python -m tools.fit_camera --labels ../shared/design/Labels.csv

Reads the camera-A boxes (`cam1_pedestrian_x1..y2`, in a 1920x1080 frame) and their true
distances (ground plane, Car1 location to pedestrian location), fits focal length, horizon
row, camera height and the camera's forward offset on the car by least squares on the
distance error, and prints the constants with the mean and max absolute error, overall and
per estimate kind. numpy only.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from pipelines.pedestrian.geometry import HEAD_TOP, HEIGHT, CameraModel

PARAMS = ("focal_px", "horizon_row", "camera_height_m", "forward_offset_m")
BOX_COLUMNS = tuple(f"cam1_pedestrian_{k}" for k in ("x1", "y1", "x2", "y2"))
# Residuals beyond this many metres count linearly, not squared: a few labels disagree
# with themselves (A_031's and A_090's boxes look like 4.4 m, their locations say 6.6 m)
# and plain least squares lets them pull every constant.
HUBER_M = 0.3


@dataclass(frozen=True)
class Sample:
    name: str
    box: tuple  # x1, y1, x2, y2 in pixels
    distance_m: float


LOCATION_COLUMNS = (
    "pedestrian_Location_X",
    "pedestrian_Location_Y",
    "Car1_Location_X",
    "Car1_Location_Y",
)


def load_labels(path) -> list[Sample]:
    """The labelled boxes of the lab's Labels.csv; ValueError, one line naming the file (and
    the row), for a file that is not one."""
    samples = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            absent = [
                c for c in (*LOCATION_COLUMNS, *BOX_COLUMNS) if c not in (reader.fieldnames or ())
            ]
            if absent:
                raise ValueError(f"{path}: no column {absent[0]}")
            for row in reader:
                samples.append(_sample(row, f"{path} line {reader.line_num}"))
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    except csv.Error as error:
        raise ValueError(f"{path}: not CSV: {error}") from None
    except OSError as error:
        raise ValueError(f"{path}: {error.strerror or error}") from None
    if not samples:
        raise ValueError(f"{path}: no labelled rows")
    return samples


def _sample(row: dict, where: str) -> Sample:
    values = {}
    for column in (*LOCATION_COLUMNS, *BOX_COLUMNS):
        try:
            values[column] = float(row[column])
        except (TypeError, ValueError):  # TypeError: a short row's missing field is None
            raise ValueError(f"{where}: {column} is not a number") from None
        if not math.isfinite(values[column]):
            raise ValueError(f"{where}: {column} is not a finite number")
    dx = values["pedestrian_Location_X"] - values["Car1_Location_X"]
    dy = values["pedestrian_Location_Y"] - values["Car1_Location_Y"]
    distance = math.hypot(dx, dy)
    if not math.isfinite(distance):
        raise ValueError(f"{where}: the locations are too far apart for a distance")
    name = row.get("Occluded_Image_View") or row.get("Timestamp") or ""
    return Sample(
        name=name if isinstance(name, str) else "",
        box=tuple(values[c] for c in BOX_COLUMNS),
        distance_m=distance,
    )


def predict(
    params: Sequence[float], boxes: np.ndarray, cut: np.ndarray, base: CameraModel
) -> np.ndarray:
    """Vectorised `CameraModel.distance` for a fixed cut/whole split (nan where undefined)."""
    f, v0, hc, off = params
    x1, y1, x2, y2 = boxes.T
    h = base.pedestrian_height_m
    with np.errstate(divide="ignore", invalid="ignore"):
        top = np.where(y1 > v0, f * (hc - h) / (y1 - v0), np.nan)
        whole = np.where(y2 > y1, f * h / (y2 - y1), np.nan)
        depth = np.where(cut, top, whole)
        lateral = ((x1 + x2) / 2.0 - base.image_width / 2.0) * depth / f
        return np.hypot(depth + off, lateral)


def _cost(r, w):
    return float(np.sum(w * r * r)) if np.all(np.isfinite(r)) else math.inf


def levenberg_marquardt(params, residuals, weights, iterations=200):
    """Minimise sum(weights * residuals(params)**2); numeric Jacobian (4 parameters)."""
    p = np.asarray(params, dtype=float)
    r = residuals(p)
    cost = _cost(r, weights)
    lam = 1e-3
    for _ in range(iterations):
        J = np.empty((r.size, p.size))
        for j in range(p.size):
            step = 1e-6 * max(1.0, abs(p[j]))
            dp = np.zeros_like(p)
            dp[j] = step
            J[:, j] = (residuals(p + dp) - residuals(p - dp)) / (2 * step)
        if not np.all(np.isfinite(J)):
            break
        A = J.T @ (weights[:, None] * J)
        g = J.T @ (weights * r)
        improved = converged = False
        while lam < 1e12:
            try:
                delta = np.linalg.solve(A + lam * np.diag(np.diag(A) + 1e-12), -g)
            except np.linalg.LinAlgError:
                lam *= 10
                continue
            candidate = p + delta
            r_new = residuals(candidate)
            c_new = _cost(r_new, weights)
            if c_new < cost:
                converged = cost - c_new <= 1e-15 * max(cost, 1e-300) or np.all(
                    np.abs(delta) <= 1e-12 * np.maximum(1.0, np.abs(p))
                )
                p, r, cost, lam = candidate, r_new, c_new, max(lam / 3, 1e-12)
                improved = True
                break
            lam *= 4
        if not improved or converged:
            break
    return p, cost


def _initial_guesses(boxes, distances, cut, base):
    # Head-top rows alone give horizon and focal*(camera height - pedestrian height) by a
    # linear fit of top_row = horizon + k / distance; the focal length is then scanned
    # because it only shows through the whole boxes and the lateral offsets.
    top, d = boxes[:, 1], distances
    sel = cut if cut.sum() >= 2 else np.ones_like(cut)
    A = np.c_[np.ones(sel.sum()), 1.0 / d[sel]]
    (v0, k), *_ = np.linalg.lstsq(A, top[sel], rcond=None)
    for scale in (0.6, 0.8, 1.0, 1.25, 1.5):
        f = base.image_width * scale
        yield np.array([f, v0, base.pedestrian_height_m + k / f, 0.0])


def fit_params(boxes, distances, cut, base: CameraModel, loss="huber", huber_m=HUBER_M):
    """Fit (focal, horizon, camera height, forward offset) for a given cut/whole split."""
    boxes = np.asarray(boxes, dtype=float)
    distances = np.asarray(distances, dtype=float)
    cut = np.asarray(cut, dtype=bool)

    def residuals(p):
        return predict(p, boxes, cut, base) - distances

    best, best_cost = None, math.inf
    for start in _initial_guesses(boxes, distances, cut, base):
        w = np.ones(len(distances))
        p = start
        # Iteratively reweighted least squares: plain LS when loss == "linear".
        for _ in range(50 if loss == "huber" else 1):
            p, _ = levenberg_marquardt(p, residuals, w)
            if loss != "huber":
                break
            a = np.abs(residuals(p))
            w_new = np.where(a <= huber_m, 1.0, huber_m / np.maximum(a, 1e-12))
            if np.allclose(w_new, w, atol=1e-9):
                break
            w = w_new
        r = residuals(p)
        if not np.all(np.isfinite(r)):
            continue
        a = np.abs(r)
        total = float(
            np.sum(np.where(a <= huber_m, 0.5 * a * a, huber_m * (a - 0.5 * huber_m)))
            if loss == "huber"
            else np.sum(a * a)
        )
        if total < best_cost:
            best, best_cost = p, total
    if best is None:
        raise ValueError("the fit found no constants that give a distance for every box")
    return best


def fit_camera(
    samples: Sequence[Sample],
    base: CameraModel | None = None,
    loss: str = "huber",
    huber_m: float = HUBER_M,
    max_rounds: int = 5,
) -> CameraModel:
    """Fit a CameraModel whose `distance()` matches the samples' true distances.

    Which cue a box uses depends on the constants (a low head means the feet are out of
    frame), so the fit alternates: split the boxes as the current model would, refit,
    until the split stops changing.
    """
    base = base or CameraModel()
    boxes = np.array([s.box for s in samples], dtype=float)
    distances = np.array([s.distance_m for s in samples], dtype=float)
    # Start from the frame edge alone: the label boxes are clipped exactly there.
    cut = boxes[:, 3] >= base.image_height - base.bottom_margin_px
    model = base
    for _ in range(max_rounds):
        p = fit_params(boxes, distances, cut, base, loss=loss, huber_m=huber_m)
        model = replace(base, **dict(zip(PARAMS, (float(v) for v in p))))
        new_cut = np.array([model.is_cut(b) for b in boxes])
        if np.array_equal(new_cut, cut):
            break
        cut = new_cut
    return model


def evaluate(model: CameraModel, samples: Iterable[Sample]) -> dict:
    """Absolute errors of `model.distance` per estimate kind and overall."""
    errors = {HEIGHT: [], HEAD_TOP: []}
    missing = []
    for s in samples:
        est = model.distance(s.box)
        if est is None:
            missing.append(s.name)
            continue
        errors[est.kind].append(abs(est.distance_m - s.distance_m))
    errors["all"] = errors[HEIGHT] + errors[HEAD_TOP]
    summary = {}
    for kind, e in errors.items():
        e = np.asarray(e)
        summary[kind] = {
            "n": int(e.size),
            "mean": float(e.mean()) if e.size else float("nan"),
            "max": float(e.max()) if e.size else float("nan"),
        }
    summary["no_estimate"] = missing
    return summary


def format_report(model: CameraModel, summary: dict) -> str:
    lines = ["Fitted constants (pipelines/pedestrian/geometry.py):"]
    for name in PARAMS:
        lines.append(f"  {name:18s} = {getattr(model, name):.4g}")
    lines.append(
        f"  (pedestrian_height_m = {model.pedestrian_height_m}, image "
        f"{model.image_width}x{model.image_height}, bottom_margin_px = "
        f"{model.bottom_margin_px})"
    )
    lines.append("")
    lines.append(f"{'estimate':10s} {'boxes':>5s} {'mean |err| m':>13s} {'max |err| m':>12s}")
    for kind in ("all", HEIGHT, HEAD_TOP):
        s = summary[kind]
        lines.append(f"{kind:10s} {s['n']:5d} {s['mean']:13.3f} {s['max']:12.3f}")
    if summary["no_estimate"]:
        lines.append(f"no estimate for: {', '.join(summary['no_estimate'])}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", required=True, help="the lab's Labels.csv")
    parser.add_argument(
        "--loss",
        choices=("huber", "linear"),
        default="huber",
        help="huber: least squares reweighted so outlier labels count "
        "linearly (default); linear: plain least squares",
    )
    parser.add_argument(
        "--huber-m",
        type=float,
        default=HUBER_M,
        help="residual (m) beyond which the huber loss is linear",
    )
    parser.add_argument(
        "--bottom-margin",
        type=float,
        default=None,
        help="rows from the frame bottom within which a box counts as cut",
    )
    parser.add_argument("--pedestrian-height", type=float, default=None)
    args = parser.parse_args(argv)

    base = CameraModel()
    if args.bottom_margin is not None:
        base = replace(base, bottom_margin_px=args.bottom_margin)
    if args.pedestrian_height is not None:
        base = replace(base, pedestrian_height_m=args.pedestrian_height)
    try:
        samples = load_labels(args.labels)
    except ValueError as error:
        parser.error(f"--labels: {error}")
    model = fit_camera(samples, base, loss=args.loss, huber_m=args.huber_m)
    print(f"{len(samples)} labelled boxes from {args.labels}, loss={args.loss}")
    print(format_report(model, evaluate(model, samples)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
