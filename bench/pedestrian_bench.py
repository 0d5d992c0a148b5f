"""Throughput of the pedestrian detector on this machine, and where the time goes.

    .venv/bin/python bench/pedestrian_bench.py [--frames 12] [--tile 720] [--overlap 0.25]

Runs the lab's four sample frames (DESIGN_FRAMES, default ../shared/design, never copied
here) repeated to `--frames`, from image bytes to merged boxes, as PNG (the lab's files) and
as JPEG at quality 92 (what tools/demo.py and cameras send), through three paths, each in a
process of its own (`PathWorker`), alternating in rounds (whose order also alternates) so
that load from other work on the machine falls on all alike:

- plain: the baseline, a plain tiled loop: decoded whole with Pillow, the same eight tiles
  cut from the full frame, one batch per frame through the frozen graph as shipped;
- tf: the job's path before issue 25: decoded at the scale the tiles need (PNG by
  TensorFlow's decoder; `PedestrianDetector.decode`), the graph with its batch norms folded;
- job: what the pedestrian_depth job does now: decoded as tf, the graph's convolutions on
  TensorFlow Lite and its post-processing in numpy (`LiteModel`).

Each runs once with TensorFlow on all cores and once with one thread (the per-core figure:
a Dataflow worker runs one such pipeline per core). Prints the median over the rounds of the
CPU per frame in each stage, frames per CPU-second, the job/plain CPU ratio against issue
25's target (<= 0.5), issue 13's (frames per CPU-second at 1080p: must >= 4, goal >= 6), and
what a thousand frames cost on Dataflow at list price (`dollars_per_thousand`).
With --pipeline (or --pipeline-only), also the job's whole Detect step on the same frames as
Pub/Sub messages (message parsing, decoding, detection, distances, the output message) in an
in-process pipeline: the step as it was before issue 19 (one DoFn, the detector through
Beam's Shared) against DetectPedestrians (Decode -> RunInference -> Measure): frames per
CPU-second, their ratio, and each step's CPU per frame outside the model call.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np
from PIL import Image

from ops.pricing import FALLBACK_REGION, prices_for
from pipelines.pedestrian.detector import (
    DEFAULT_OVERLAP,
    DEFAULT_TILE,
    INPUT_SIZE,
    PedestrianDetector,
    decode_image,
    detections_from_outputs,
    make_tile_batch,
)
from tools import design_frames

DESIGN = design_frames.folder()
FRAMES = ("A_001.png", "A_002.png", "A_003.png", "B_001.png")
STAGES = ("decode", "tiling", "model", "merge")
JPEG_QUALITY = 92  # tools/demo.py's
# Issue 13: pedestrian_depth frames per CPU-second, 1080p.
MUST, GOAL = 4.0, 6.0
# Issue 25: the job's CPU per frame against the plain tiled loop's.
TARGET_RATIO = 0.5
PATHS = ("plain", "tf", "job")
# Path -> the detector's settings; "plain" also decodes whole with Pillow (`compare`).
DETECTORS = {
    "plain": {"lite": False, "fold_batch_norms": False},
    "tf": {"lite": False, "fold_batch_norms": True},
    "job": {"lite": True},
}
# The worker a frame's CPU is paid on: pedestrian_depth is a streaming job, on the machine
# type the project launches it with (docs/google-cloud.md), whose memory is billed with
# each vCPU: n1-standard-2 has 7.5 GB for 2 vCPUs.
PRICED_MODE = "streaming"
PRICED_MACHINE = "n1-standard-2"
GB_PER_VCPU = 3.75
STEPS = ("old", "new")  # --pipeline: the job's Detect step before and after issue 19
# Frames per pipeline left out of --pipeline's figures, as a long-running job leaves them
# behind: TensorFlow's first runs, and Beam's size sampling, which encodes the first 10
# elements of every PCollection (then about 10 in N), decoded frames included.
PIPELINE_WARMUP = 10


def as_jpeg(png: bytes) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def new_totals() -> dict:
    return {
        "frames": 0,
        "cpu": 0.0,
        "wall": 0.0,
        "found": 0,
        "tiles": 0,
        "stages": dict.fromkeys(STAGES, 0.0),
    }


def plain_tile_batch(rgb, windows, size: int = INPUT_SIZE) -> np.ndarray:
    """The plain loop's tiles: each window cropped from the whole frame and resized by
    Pillow on its own (the job's `make_tile_batch` gives the same pixels, sharing the work
    of windows in one column)."""
    image = Image.fromarray(rgb)
    return np.stack(
        [np.asarray(image.crop(window).resize((size, size), Image.BILINEAR)) for window in windows]
    )


def run(
    detector: PedestrianDetector, decode, payloads, totals: dict, tiles=make_tile_batch
) -> dict:
    """Adds `payloads` run through decode -> tiles -> model -> merge to `totals`; the
    stages in process CPU time (TensorFlow's threads included)."""
    clock = time.process_time
    wall0 = time.perf_counter()
    for data in payloads:
        t0 = clock()
        frame = decode(data)
        t1 = clock()
        w, h = (
            (frame.shape[1], frame.shape[0])
            if hasattr(frame, "shape")
            else (frame.width, frame.height)
        )
        windows = detector.windows(w, h)
        batch = tiles(frame, windows)
        t2 = clock()
        outputs = detector.run_model(batch)
        t3 = clock()
        totals["found"] += len(
            detections_from_outputs(
                windows,
                *outputs,
                w,
                h,
                score_threshold=detector.score_threshold,
                max_aspect=detector.max_aspect,
                iou_threshold=detector.iou_threshold,
            )
        )
        t4 = clock()
        for stage, dt in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            totals["stages"][stage] += dt
        totals["cpu"] += t4 - t0
        totals["tiles"] = len(windows)
    totals["wall"] += time.perf_counter() - wall0
    totals["frames"] += len(payloads)
    return totals


RESULT = "RESULT "  # a worker's answer line (whatever else a library prints, it is not this)


class PathWorker:
    """One path's detector in a process of its own, as a Dataflow worker process runs only
    the job's: measured in one process, the paths' runtimes (three models, TensorFlow's
    thread pools) cost each other cache and CPU, the plain loop 5-8% more than alone. The
    worker runs one round of a format each time it is asked (after a warm-up of two frames
    the first time) and answers with the round's totals."""

    def __init__(self, path: str, threads: int, args):
        command = [
            sys.executable,
            __file__,
            "--worker",
            path,
            "--threads",
            str(threads),
            *("--frames", str(args.frames), "--tile", str(args.tile)),
            *("--overlap", str(args.overlap), "--design-dir", str(args.design_dir)),
            *(("--graph", args.graph) if args.graph else ()),
        ]
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def round(self, fmt: str) -> dict:
        self._process.stdin.write(fmt + "\n")
        self._process.stdin.flush()
        for line in self._process.stdout:
            if line.startswith(RESULT):
                return json.loads(line[len(RESULT) :])
        raise RuntimeError(f"the benchmark worker ended (exit {self._process.wait()})")

    def close(self) -> None:
        self._process.stdin.close()
        self._process.wait()


def serve(path: str, threads: int, args) -> int:
    """--worker: `path`'s detector, one round per format name read from stdin."""
    detector = PedestrianDetector(
        args.graph,
        tile=args.tile,
        overlap=args.overlap,
        intra_op_threads=threads,
        inter_op_threads=threads,
        **DETECTORS[path],
    ).load()
    decode = decode_image if path == "plain" else detector.decode
    tiles = plain_tile_batch if path == "plain" else make_tile_batch
    inputs = sample_inputs(args.design_dir)
    warmed = set()
    for line in sys.stdin:
        fmt = line.strip()
        frames = inputs[fmt]
        payloads = [frames[i % len(frames)] for i in range(args.frames)]
        if fmt not in warmed:
            run(detector, decode, payloads[:2], new_totals(), tiles)
            warmed.add(fmt)
        print(RESULT + json.dumps(run(detector, decode, payloads, new_totals(), tiles)), flush=True)
    return 0


def compare(workers: dict, fmt: str, rounds: int) -> dict:
    """Every path over the same frames, alternating every round (whose order also
    alternates): path -> one totals dict per round."""
    samples = {path: [] for path in PATHS}
    for i in range(rounds):
        for path in PATHS if i % 2 == 0 else PATHS[::-1]:
            samples[path].append(workers[path].round(fmt))
    return samples


def sample_inputs(design_dir: Path) -> dict:
    raw = [(design_dir / f).read_bytes() for f in FRAMES]
    return {"png": raw, "jpeg": [as_jpeg(data) for data in raw]}


def cpu_ms(totals: dict, stage: str | None = None) -> float:
    """CPU per frame, in ms, of one round (of one stage, or all)."""
    cpu = totals["cpu"] if stage is None else totals["stages"][stage]
    return 1000 * cpu / totals["frames"]


def dollars_per_thousand(cpu_ms_per_frame: float, region: str = FALLBACK_REGION) -> float:
    """What a thousand frames cost on Dataflow at list price (ops/pricing.py), from the CPU
    per frame: vCPU time and the memory billed with it, on a worker kept busy. Not in it:
    disks, Streaming Engine data and idle time, which depend on the deployment, not on
    the frame."""
    _, prices = prices_for(region)
    per_vcpu_hour = prices.vcpu_hour[PRICED_MODE] + GB_PER_VCPU * prices.memory_gb_hour[PRICED_MODE]
    return cpu_ms_per_frame / 1000 / 3600 * per_vcpu_hour * 1000


def report(name: str, samples: dict) -> str:
    """Medians over the rounds; the ratio is the median of each round's job/plain ratio."""
    lines = [
        f"{name} (median of {len(samples['job'])} rounds of {samples['job'][0]['frames']} frames):",
        f"  {'path':6s} {'CPU ms':>7s} {'frames/CPU-s':>12s} {'boxes':>5s} {'$/1000':>7s}"
        + "".join(f" {stage + ' ms':>10s}" for stage in STAGES),
    ]
    for path in PATHS:
        rounds = samples[path]
        ms = statistics.median(cpu_ms(r) for r in rounds)
        lines.append(
            f"  {path:6s} {ms:7.1f} {1000 / ms:12.2f} {rounds[0]['found']:5d} "
            f"{dollars_per_thousand(ms):7.4f}"
            + "".join(f" {statistics.median(cpu_ms(r, s) for r in rounds):10.1f}" for s in STAGES)
        )
    ratios = [cpu_ms(j) / cpu_ms(p) for j, p in zip(samples["job"], samples["plain"])]
    ratio = statistics.median(ratios)
    over_tf = statistics.median(
        cpu_ms(j) / cpu_ms(t) for j, t in zip(samples["job"], samples["tf"])
    )
    rate = 1000 / statistics.median(cpu_ms(r) for r in samples["job"])
    verdict = "goal met" if rate >= GOAL else "must met, goal not" if rate >= MUST else "NOT MET"
    lines.append(
        f"  job/plain CPU per frame {ratio:.2f}x (rounds {min(ratios):.2f}-{max(ratios):.2f}),"
        f" target <= {TARGET_RATIO:g}: {'met' if ratio <= TARGET_RATIO else 'NOT MET'}; "
        f"job/tf {over_tf:.2f}x"
    )
    lines.append(
        f"  job {rate:.2f} frames per CPU-second: must >= {MUST:g}, goal >= {GOAL:g}: {verdict};"
        f" $ per 1000 frames at {FALLBACK_REGION} {PRICED_MODE} list price, {PRICED_MACHINE}"
        f" ({GB_PER_VCPU:g} GB per vCPU)"
    )
    return "\n".join(lines)


def old_step(detector: PedestrianDetector, camera):
    """The job's Detect step before issue 19 (the baseline of --pipeline): one DoFn that
    parses, decodes, detects and measures each message, with the detector loaded once per
    process through Beam's Shared."""
    import copy

    import apache_beam as beam
    from apache_beam.utils.shared import Shared

    from pipelines.core.deadletters import DEAD_LETTERS, answering, dead_letter
    from pipelines.pedestrian.frames import (
        encoded_message,
        failure_reason,
        frame_from_message,
        frame_result,
        result_data,
    )

    class DetectFn(beam.DoFn):
        def __init__(self):
            self._shared = Shared()

        def setup(self):
            self._detector = self._shared.acquire(copy.copy(detector).load)

        def process(self, message):
            stage = "decode"
            try:
                name, image = frame_from_message(message.data, message.attributes)
                frame = self._detector.decode(image)
                stage = "detect"
                found = self._detector.detect(frame)
                data = result_data(frame_result(name, frame.width, frame.height, found, camera))
            except Exception as error:  # noqa: BLE001 - as the job did
                yield beam.pvalue.TaggedOutput(
                    DEAD_LETTERS, dead_letter(message, failure_reason(error), stage=stage)
                )
                return
            yield answering(message.message_id, encoded_message(name, data))

    class OldDetect(beam.PTransform):
        def expand(self, messages):
            outputs = messages | beam.ParDo(DetectFn()).with_outputs(DEAD_LETTERS, main="results")
            return outputs.results, outputs[DEAD_LETTERS]

    return OldDetect()


def run_pipeline(
    step: str, payloads, graph, tile: int, overlap: float, warmup: int, threads: int = 1
) -> tuple:
    """(frames, process CPU seconds) of `step` in one in-process pipeline (Beam's FnApiRunner,
    the local runner's engine) over `payloads` as Pub/Sub messages, from the moment frame
    number `warmup` enters the step to the last result out: pipeline start, model load and
    the first (slower) frames stay out. TensorFlow on `threads` threads (0: every core):
    one, by default, is the per-core figure and the steadiest on a shared machine, where
    idle threads spinning for work cost CPU at random. Checks that every frame gave a
    result."""
    import apache_beam as beam
    from apache_beam.io.gcp.pubsub import PubsubMessage
    from apache_beam.metrics import Metrics
    from apache_beam.metrics.metric import MetricsFilter
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    from pipelines.pedestrian.geometry import DEFAULT_CAMERA
    from pipelines.pedestrian.transforms import DetectPedestrians

    detector = PedestrianDetector(
        graph, tile=tile, overlap=overlap, intra_op_threads=threads, inter_op_threads=threads
    )
    transform = old_step(detector, DEFAULT_CAMERA) if step == "old" else DetectPedestrians(detector)
    expected = len(payloads)
    # Metrics carry the clock readings out of the pipeline's functions (which Beam pickles).
    started = Metrics.distribution("bench", "started_us")
    ended = Metrics.distribution("bench", "ended_us")

    def check(count):
        if count != expected:
            raise RuntimeError(f"{step}: {count} results from {expected} frames")

    def message(path: str):
        index = int(Path(path).name.split("_", 1)[0])
        if index == warmup:  # frames enter the fused step one at a time, in order
            started.update(int(time.process_time() * 1e6))
        return PubsubMessage(Path(path).read_bytes(), {"name": Path(path).name})

    def mark_end(result):
        ended.update(int(time.process_time() * 1e6))
        return result

    with tempfile.TemporaryDirectory(prefix="pedestrian-bench-") as folder:
        # The frames come from files, as small elements: Beam pickles (and compresses) what
        # beam.Create holds, which costs more CPU than the step for PNG frames.
        paths = []
        for i, data in enumerate(payloads):
            paths.append(str(Path(folder) / f"{i}_{FRAMES[i % len(FRAMES)]}"))
            Path(paths[-1]).write_bytes(data)
        p = beam.Pipeline(runner=FnApiRunner())
        messages = p | beam.Create(paths, reshuffle=False) | beam.Map(message)
        results, _ = messages | transform
        _ = results | beam.Map(mark_end) | beam.combiners.Count.Globally() | beam.Map(check)
        result = p.run()
        result.wait_until_finish()
    marks = {
        d.key.metric.name: d.committed
        for d in result.metrics().query(MetricsFilter().with_namespace("bench"))["distributions"]
    }
    start, end = marks["started_us"].min / 1e6, marks["ended_us"].max / 1e6
    model = sum(dt for t0, dt in MODEL_CALLS if start <= t0 <= end)
    MODEL_CALLS.clear()
    return expected - warmup, end - start, model


# (process time at the start, CPU seconds) of every model call in this process: the
# in-process runner calls the detector here, so --pipeline can tell the steps' own cost
# from the model's, which is the same code in both and varies most with other work on a
# shared machine.
MODEL_CALLS: list[tuple[float, float]] = []


def _timed(run_model):
    def timed(self, batch):
        t0 = time.process_time()
        try:
            return run_model(self, batch)
        finally:
            MODEL_CALLS.append((t0, time.process_time() - t0))

    return timed


def compare_pipelines(
    payloads, graph, tile: int, overlap: float, warmup: int = PIPELINE_WARMUP, rounds: int = 2
) -> dict:
    """Frames per CPU-second of each step (`run_pipeline`), the steps alternating over
    `rounds` rounds (whose order also alternates) so that load from other work on the
    machine falls on both alike."""
    totals = {step: [0, 0.0, 0.0] for step in STEPS}
    run_model = PedestrianDetector.run_model
    PedestrianDetector.run_model = _timed(run_model)
    try:
        for i in range(rounds):
            for step in STEPS if i % 2 == 0 else STEPS[::-1]:
                frames, cpu, model = run_pipeline(step, payloads, graph, tile, overlap, warmup)
                totals[step][0] += frames
                totals[step][1] += cpu
                totals[step][2] += model
    finally:
        PedestrianDetector.run_model = run_model
    return {
        step: {"rate": frames / cpu, "outside_ms": 1000 * (cpu - model) / frames}
        for step, (frames, cpu, model) in totals.items()
    }


def report_pipelines(fmt: str, r: dict) -> str:
    old, new = r["old"], r["new"]
    return (
        f"{fmt} 1920x1080, the Detect step in a pipeline (message in, result message out), "
        f"frames per CPU-second: old one-DoFn step {old['rate']:.2f}, RunInference step "
        f"{new['rate']:.2f}; new/old {new['rate'] / old['rate']:.2f}x. CPU per frame outside "
        f"the model call: old {old['outside_ms']:.1f} ms, new {new['outside_ms']:.1f} ms"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8, help="per round, path and format")
    parser.add_argument("--rounds", type=int, default=5, help="alternations of the paths")
    parser.add_argument("--tile", type=int, default=DEFAULT_TILE)
    parser.add_argument("--overlap", type=float, default=DEFAULT_OVERLAP)
    parser.add_argument("--design-dir", type=Path, default=DESIGN)
    parser.add_argument("--graph", default=None, help="frozen graph (default: models/)")
    parser.add_argument("--formats", default="png,jpeg", help="png, jpeg or both")
    parser.add_argument(
        "--pipeline",
        action="store_true",
        help="also the job's whole Detect step in a pipeline, old one-DoFn vs RunInference",
    )
    parser.add_argument(
        "--pipeline-only", action="store_true", help="only the --pipeline comparison"
    )
    parser.add_argument("--worker", choices=PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return serve(args.worker, args.threads, args)

    missing = [f for f in FRAMES if not (args.design_dir / f).is_file()]
    if missing:
        print(f"sample frames missing in {args.design_dir}: {', '.join(missing)}", file=sys.stderr)
        return 2
    inputs = sample_inputs(args.design_dir)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]

    print(
        f"CPU cores visible: {os.cpu_count()}; load average "
        f"{', '.join(f'{v:.2f}' for v in os.getloadavg())} (other work on the machine skews "
        f"these figures; the ratios less so)"
    )
    rounds = max(1, args.rounds)
    settings = () if args.pipeline_only else (("all cores", 0), ("single core", 1))
    for setting, threads in settings:
        workers = {path: PathWorker(path, threads, args) for path in PATHS}
        try:
            for fmt in formats:
                print(report(f"{setting}, {fmt} 1920x1080", compare(workers, fmt, rounds)))
        finally:
            for worker in workers.values():
                worker.close()
    if args.pipeline or args.pipeline_only:
        for fmt in formats:
            frames = inputs[fmt]
            # The warm-up frames come on top of --frames.
            payloads = [frames[i % len(frames)] for i in range(PIPELINE_WARMUP + args.frames)]
            rates = compare_pipelines(payloads, args.graph, args.tile, args.overlap)
            print(report_pipelines(fmt, rates))
    return 0


if __name__ == "__main__":
    sys.exit(main())
