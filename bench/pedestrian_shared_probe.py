"""Would sharing the network's first layers between overlapping tiles keep the detections?

    .venv/bin/python bench/pedestrian_shared_probe.py [--rounds 7]

Issue 25 asks pedestrian_depth for <= 0.5x the plain tiled loop's CPU per frame with the
same detections; the network is about 55 of a JPEG frame's 70 ms (pedestrian_bench.py).
The eight tiles of a 1080p frame cover it about twice over, so the network's first layers
could run once on the whole frame, resized once, and the rest per tile on crops of that
feature map. A crop must start on the feature map's grid, so each tile's offset in the
resized frame is rounded to a multiple of the cumulative stride S at the split. This
prints, for the job's converted network:

1. the CPU of its first layers up to each split point, eight 300x300 tiles one by one:
   sharing saves at most half of it (the tiles cover the frame about twice over);
2. the detections on the lab's four frames (PNG, and JPEG at quality 92) of
   - "one resize": the half-scale frame resized once, each tile an exact crop of it at
     its offset rounded to a whole pixel, the whole network per tile (idea b),
   - "shared S": as one resize, offsets rounded to multiples of S, the first layers run
     once on the whole frame and the rest per tile on feature-map crops (idea a),
   against tests/unit/pedestrian/reference_detections.json (the test's limits), with the
   worst box IoU and distance change, and the CPU per frame of tiling and network
   against the job's, alternating in rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np
from PIL import Image

from bench.pedestrian_bench import DESIGN, FRAMES, sample_inputs
from pipelines.pedestrian import ssd
from pipelines.pedestrian.detector import (
    INPUT_SIZE,
    PedestrianDetector,
    _interpreter,
    convert_part,
    detections_from_outputs,
    lite_parts,
)
from pipelines.pedestrian.frames import frame_result
from pipelines.pedestrian.tiling import iou
from tests.unit.pedestrian.test_reference_detections import (
    MAX_DISTANCE_CHANGE_M,
    MIN_IOU,
    REFERENCE,
)

_MOBILENET = "FeatureExtractor/MobilenetV2/"
# Cumulative stride -> the last tensor at that stride (the end of a MobileNetV2 stage).
SPLITS = {
    2: _MOBILENET + "expanded_conv/project/BatchNorm/FusedBatchNorm",
    4: _MOBILENET + "expanded_conv_2/add",
    8: _MOBILENET + "expanded_conv_5/add",
    16: ssd.TILE_FEATURES,  # where the job cuts the network
    32: _MOBILENET + "Conv_1/Relu6",
}
SHARED = (2, 4, 8)  # the splits whose detections are checked


def graph_def(path: Path):
    import tensorflow as tf

    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(path.read_bytes())
    return graph


def prefix_costs(graph, rounds: int) -> dict:
    """Split name -> CPU ms of eight 300x300 tiles through the network up to it."""
    x = np.random.default_rng(0).uniform(-1, 1, (1, INPUT_SIZE, INPUT_SIZE, 3))
    ends = {f"S{s}": [name] for s, name in SPLITS.items()}
    ends["whole"] = [ssd.BOX_ENCODINGS, ssd.CLASS_LOGITS]
    costs = {}
    for label, outputs in ends.items():
        it = _interpreter(
            convert_part(graph, ssd.FEATURES_INPUT, [1, INPUT_SIZE, INPUT_SIZE, 3], outputs), 1
        )
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x.astype(np.float32))
        samples = []
        for _ in range(rounds):
            t0 = time.process_time()
            for _ in range(8):
                it.invoke()
            samples.append(time.process_time() - t0)
        costs[label] = 1000 * statistics.median(samples)
    return costs


class Shared:
    """The tiles of a frame from one resize of it, the network split at stride `stride`
    (None: the whole network per tile, from exact crops at whole-pixel offsets)."""

    def __init__(self, detector: PedestrianDetector, graph, stride: int | None):
        self.detector, self.stride = detector, stride
        stat = detector.graph_path.stat()
        self.parts = lite_parts(str(detector.graph_path), stat.st_mtime_ns, stat.st_size)
        if stride is None:
            return
        self.first = _interpreter(
            convert_part(graph, ssd.FEATURES_INPUT, [1, None, None, 3], [SPLITS[stride]]), 1
        )
        self.first.allocate_tensors()
        side = -(-INPUT_SIZE // stride)
        channels = self._first((INPUT_SIZE, INPUT_SIZE)).shape[-1]
        self.rest = _interpreter(
            convert_part(
                graph,
                SPLITS[stride],
                [1, side, side, channels],
                [ssd.BOX_ENCODINGS, ssd.CLASS_LOGITS],
            ),
            1,
        )
        self.rest.allocate_tensors()
        details = self.rest.get_output_details()
        self._encodings = next(o["index"] for o in details if len(o["shape"]) == 4)
        self._logits = next(o["index"] for o in details if len(o["shape"]) == 3)

    def _first(self, shape, image=None) -> np.ndarray:
        index = self.first.get_input_details()[0]["index"]
        if tuple(self.first.get_input_details()[0]["shape"][1:3]) != shape:
            self.first.resize_tensor_input(index, [1, *shape, 3])
            self.first.allocate_tensors()
        if image is not None:
            self.first.set_tensor(index, image)
        self.first.invoke()
        return self.first.get_tensor(self.first.get_output_details()[0]["index"])

    def detect(self, frame):
        d, parts, step = self.detector, self.parts, self.stride or 1
        windows = d.windows(frame.width, frame.height)
        tile_w, tile_h = windows[0][2] - windows[0][0], windows[0][3] - windows[0][1]
        kx, ky = INPUT_SIZE / tile_w, INPUT_SIZE / tile_h  # full-size pixels -> model input
        width, height = round(frame.width * kx), round(frame.height * ky)
        # Padded to the stride: every stride-2 layer then pads the frame as it pads a tile.
        padded_w, padded_h = -(-width // step) * step, -(-height // step) * step
        resized = np.asarray(frame.image.resize((width, height), Image.BILINEAR))
        offsets = [
            (
                min(max(round(x0 * kx / step) * step, 0), padded_w - INPUT_SIZE),
                min(max(round(y0 * ky / step) * step, 0), padded_h - INPUT_SIZE),
            )
            for x0, y0, _, _ in windows
        ]
        moved = [(x / kx, y / ky, x / kx + tile_w, y / ky + tile_h) for x, y in offsets]
        if self.stride is None:
            batch = np.stack([resized[y : y + INPUT_SIZE, x : x + INPUT_SIZE] for x, y in offsets])
            outputs = d.run_model(batch)
        else:
            image = np.zeros((1, padded_h, padded_w, 3), np.float32)  # 0: the graph's padding
            np.multiply(resized, parts.pixel_scale, out=image[0, :height, :width])
            image[0, :height, :width] -= parts.pixel_shift
            features = self._first((padded_h, padded_w), image)
            side = -(-INPUT_SIZE // step)
            encodings, logits = [], []
            index = self.rest.get_input_details()[0]["index"]
            for x, y in offsets:
                crop = features[:, y // step : y // step + side, x // step : x // step + side]
                self.rest.set_tensor(index, np.ascontiguousarray(crop))
                self.rest.invoke()
                encodings.append(self.rest.get_tensor(self._encodings))
                logits.append(self.rest.get_tensor(self._logits))
            outputs = ssd.postprocess(
                np.concatenate(encodings),
                np.concatenate(logits),
                parts.anchors,
                parts.settings,
                d.score_threshold,
            )
        return detections_from_outputs(
            moved,
            *outputs,
            frame.width,
            frame.height,
            score_threshold=d.score_threshold,
            max_aspect=d.max_aspect,
            iou_threshold=d.iou_threshold,
        )


def deviations(detector, detect, inputs) -> tuple[float, float, bool]:
    """(worst box IoU, worst distance change in m, every frame's pedestrians the same in
    number) against the reference, over both formats."""
    worst_iou, worst_m, counts = 1.0, 0.0, True
    for frames in inputs.values():
        for name, data in zip(FRAMES, frames):
            frame = detector.decode(data)
            found = frame_result(name, frame.width, frame.height, detect(frame))["pedestrians"]
            reference = REFERENCE["frames"][name]
            counts &= len(found) == len(reference)
            for got, ref in zip(found, reference):
                worst_iou = min(worst_iou, iou(got["box"], ref["box"]))
                worst_m = max(worst_m, abs(got["distance_m"] - ref["distance_m"]))
    return worst_iou, worst_m, counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--design-dir", type=Path, default=DESIGN)
    args = parser.parse_args(argv)
    try:
        inputs = sample_inputs(args.design_dir)
    except OSError as err:
        print(f"sample frames missing: {err}", file=sys.stderr)
        return 2
    print(f"load average {', '.join(f'{v:.2f}' for v in os.getloadavg())}; one thread")
    detector = PedestrianDetector(intra_op_threads=1, inter_op_threads=1).load()
    graph = graph_def(detector.graph_path)
    costs = prefix_costs(graph, args.rounds)
    print("network up to each split, eight 300x300 tiles (sharing saves at most half):")
    print("  " + ", ".join(f"{label} {ms:.1f} ms" for label, ms in costs.items()))

    paths = {"job": detector.detect, "one resize": Shared(detector, graph, None).detect}
    paths.update({f"shared S{s}": Shared(detector, graph, s).detect for s in SHARED})
    jpegs = [detector.decode(data) for data in inputs["jpeg"]]
    samples = {label: [] for label in paths}
    for i in range(args.rounds):
        for label in paths if i % 2 == 0 else list(paths)[::-1]:
            t0 = time.process_time()
            for frame in jpegs:
                paths[label](frame)
            samples[label].append(1000 * (time.process_time() - t0) / len(jpegs))
    job = statistics.median(samples["job"])
    print(
        f"tiling + network + post-processing per JPEG frame, median of {args.rounds} rounds,"
        f" and the detections against the reference (limits: IoU >= {MIN_IOU},"
        f" distance within {MAX_DISTANCE_CHANGE_M} m):"
    )
    for label, detect in paths.items():
        ms = statistics.median(samples[label])
        worst_iou, worst_m, counts = deviations(detector, detect, inputs)
        kept = counts and worst_iou >= MIN_IOU and worst_m <= MAX_DISTANCE_CHANGE_M
        print(
            f"  {label:11s} {ms:5.1f} ms ({ms - job:+5.1f}); worst IoU {worst_iou:.3f},"
            f" worst distance change {worst_m:.3f} m; "
            f"{'within the limits' if kept else 'OUTSIDE the limits'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
