"""Throughput of the pedestrian detector on this machine, and where the time goes.

    .venv/bin/python bench/pedestrian_bench.py [--frames 20] [--tile 720] [--overlap 0.25]

Runs the lab's four sample frames (../shared/design, never copied here) repeated to
`--frames`, from PNG bytes to merged boxes, once with TensorFlow on all cores and once
with one intra-op and one inter-op thread (the per-core figure: a Dataflow worker runs
one such pipeline per core). Prints frames/s and the share of time in each stage.
With --dofn, also the pedestrian_depth job's DoFn on the same frames as Pub/Sub messages
(message parsing, decoding, detection, distances and the output JSON), outside a runner.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pipelines.pedestrian.detector import (  # noqa: E402
    DEFAULT_OVERLAP, DEFAULT_TILE, PedestrianDetector, decode_image,
    detections_from_outputs, make_tile_batch)

DESIGN = REPO.parent / "shared" / "design"
FRAMES = ("A_001.png", "A_002.png", "A_003.png", "B_001.png")
STAGES = ("decode", "tiling", "model", "merge")


def run(detector: PedestrianDetector, payloads, warmup: int = 2) -> dict:
    for data in payloads[:warmup]:
        detector.detect(decode_image(data))
    totals = dict.fromkeys(STAGES, 0.0)
    found = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for data in payloads:
        t0 = time.perf_counter()
        rgb = decode_image(data)
        t1 = time.perf_counter()
        h, w = rgb.shape[:2]
        windows = detector.windows(w, h)
        batch = make_tile_batch(rgb, windows)
        t2 = time.perf_counter()
        outputs = detector.run_model(batch)
        t3 = time.perf_counter()
        found += len(detections_from_outputs(
            windows, *outputs, w, h, score_threshold=detector.score_threshold,
            max_aspect=detector.max_aspect, iou_threshold=detector.iou_threshold))
        t4 = time.perf_counter()
        for stage, dt in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            totals[stage] += dt
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    return {"frames": len(payloads), "wall": wall, "cpu": cpu, "stages": totals,
            "tiles": len(windows), "found": found}


def report(name: str, r: dict) -> str:
    n = r["frames"]
    lines = [f"{name}: {n} frames, {r['tiles']} tiles/frame, {r['found']} boxes; "
             f"{n / r['wall']:.2f} frames/s wall, {n / r['cpu']:.2f} frames per CPU-second",
             f"  {'stage':8s} {'ms/frame':>9s} {'share':>6s}"]
    staged = sum(r["stages"].values())
    for stage in STAGES:
        t = r["stages"][stage]
        lines.append(f"  {stage:8s} {1000 * t / n:9.1f} {100 * t / staged:5.1f}%")
    lines.append(f"  {'total':8s} {1000 * staged / n:9.1f}")
    return "\n".join(lines)


def run_dofn(payloads, graph, tile: int, overlap: float, warmup: int = 2) -> dict:
    """The job's DoFn and output step, message in, output message out; one process, TF's
    default threads, as the job runs on a worker."""
    from apache_beam.io.gcp.pubsub import PubsubMessage

    from pipelines.pedestrian.frames import result_message
    from pipelines.pedestrian.geometry import DEFAULT_CAMERA
    from pipelines.pedestrian.transforms import _DetectFn

    fn = _DetectFn(PedestrianDetector(graph, tile=tile, overlap=overlap), DEFAULT_CAMERA)
    t0 = time.perf_counter()
    fn.setup()
    load = time.perf_counter() - t0
    messages = [PubsubMessage(data, {"name": FRAMES[i % len(FRAMES)]})
                for i, data in enumerate(payloads)]
    for message in messages[:warmup]:
        list(fn.process(message))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    outputs = [result_message(out) for message in messages for out in fn.process(message)]
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    fn.teardown()
    found = sum(len(json.loads(m.data)["pedestrians"]) for m in outputs)
    return {"frames": len(messages), "results": len(outputs), "wall": wall, "cpu": cpu,
            "load": load, "found": found}


def report_dofn(r: dict) -> str:
    n = r["frames"]
    return (f"job DoFn: {n} messages -> {r['results']} results, {r['found']} boxes; "
            f"{n / r['wall']:.2f} frames/s wall, {n / r['cpu']:.2f} frames per CPU-second, "
            f"{1000 * r['wall'] / n:.1f} ms/frame; setup loaded the graph in {r['load']:.1f} s "
            f"(TensorFlow already imported)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--tile", type=int, default=DEFAULT_TILE)
    parser.add_argument("--overlap", type=float, default=DEFAULT_OVERLAP)
    parser.add_argument("--design-dir", type=Path, default=DESIGN)
    parser.add_argument("--graph", default=None, help="frozen graph (default: models/)")
    parser.add_argument("--dofn", action="store_true",
                        help="also time the pedestrian_depth job's DoFn on the same frames")
    args = parser.parse_args(argv)

    missing = [f for f in FRAMES if not (args.design_dir / f).is_file()]
    if missing:
        print(f"sample frames missing in {args.design_dir}: {', '.join(missing)}",
              file=sys.stderr)
        return 2
    raw = [(args.design_dir / f).read_bytes() for f in FRAMES]
    payloads = [raw[i % len(raw)] for i in range(args.frames)]

    print(f"CPU cores visible: {os.cpu_count()}; load average {os.getloadavg()[0]:.2f} "
          f"(other work on the machine skews these figures)")
    for name, threads in (("all cores", 0), ("single core", 1)):
        detector = PedestrianDetector(args.graph, tile=args.tile, overlap=args.overlap,
                                      intra_op_threads=threads, inter_op_threads=threads)
        detector.load()
        try:
            print(report(name, run(detector, payloads)))
        finally:
            detector.close()
    if args.dofn:
        print(report_dofn(run_dofn(payloads, args.graph, args.tile, args.overlap)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
