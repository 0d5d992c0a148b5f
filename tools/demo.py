"""Runs every template locally on the bundled data, the way a user would, and shows results.

    .venv/bin/python -m tools.demo [--out out/demo] [--no-stream]

Batch jobs run on the DirectRunner over data/; the stream jobs run on the DirectRunner
against the Cloud SDK's Pub/Sub emulator, fed by the same producer tools users run against
Google Cloud. Everything it writes goes under --out.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

from tools import design_frames

REPO = Path(__file__).resolve().parents[1]


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def run_template(name: str, *args: str) -> None:
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, str(REPO / "templates" / f"{name}.py"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:
        sys.exit(f"{name} failed:\n{completed.stderr[-4000:]}")
    print(f"{name}: done in {time.monotonic() - started:.1f} s")


@contextlib.contextmanager
def stream_job(name: str, source: str, sink: str, log_path: Path):
    """Runs templates/<name>.py on the DirectRunner (reading `source`, writing `sink`) until
    the block ends, and waits until it has subscribed (what it misses before is lost)."""
    from tools.pubsub_emulator import wait_for_subscriber

    with open(log_path, "wb") as log:
        job = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "templates" / f"{name}.py"),
                f"--input={source}",
                f"--output={sink}",
            ],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_for_subscriber(source, timeout=180)
            yield job
        finally:
            job.terminate()
            job.wait(timeout=30)


def shard_lines(prefix: Path) -> list[str]:
    return [
        line
        for shard in sorted(prefix.parent.glob(prefix.name + "-*-of-*"))
        for line in shard.read_text(encoding="utf-8").splitlines()
    ]


def top(lines: list[str], count: int) -> str:
    pairs = sorted((line.rsplit(": ", 1) for line in lines), key=lambda p: -int(p[1]))
    return ", ".join(f"{w} {n}" for w, n in pairs[:count])


def word_counts(out: Path) -> None:
    step("wordcount: King Lear, case-sensitive")
    run_template("wordcount", "--input", "data/kinglear.txt", "--output", str(out / "wordcount"))
    lines = shard_lines(out / "wordcount")
    print(f"{len(lines)} distinct words; most frequent: {top(lines, 8)}")

    step("wordcount2: two outputs from one read")
    run_template(
        "wordcount2",
        "--input",
        "data/kinglear.txt",
        "--output",
        str(out / "a_to_f"),
        "--output2",
        str(out / "first_letters"),
    )
    print(f"words a-f, most frequent: {top(shard_lines(out / 'a_to_f'), 8)}")
    print(f"first letters: {top(shard_lines(out / 'first_letters'), 8)}")


def mnist_batch(out: Path) -> None:
    step("mnist_batch: 200 images of the MNIST test set, plus two bad rows")
    source = out / "mnist_with_bad_rows.csv"
    source.write_text(
        (REPO / "data" / "mnist_sample.csv").read_text()
        + '9001,"0.0,0.5"\n9002,"'
        + ",".join(["1.5"] * 784)
        + '"\n'
    )
    run_template("mnist_batch", "--input", str(source), "--output", str(out / "predict"))
    with open(REPO / "data" / "mnist_sample_labels.csv") as handle:
        labels = {int(r["ID"]): int(r["Label"]) for r in csv.DictReader(handle)}
    rows = [json.loads(line) for line in shard_lines(out / "predict")]
    correct = sum(max(range(10), key=lambda d: r[f"P{d}"]) == labels[r["ID"]] for r in rows)
    print(f"{len(rows)} predictions, {correct / len(rows):.1%} correct; first: {rows[0]}"[:200])
    for line in shard_lines(out / "predict_errors"):
        print(f"dead letter: {json.loads(line)['Error']}")


def mnist_stream(out: Path) -> None:
    from tools import mnist_consumer, mnist_producer
    from tools import pubsub_emulator as emulator

    step("mnist_stream: Pub/Sub emulator -> job -> predictions, at the lab's 10 messages/s")
    with emulator.running_pubsub_emulator(out / "pubsub-emulator.log") as host:
        images = emulator.create_topic("mnist_image")
        predict, predict_sub = emulator.create_topic_with_subscription("mnist_predict")
        with stream_job("mnist_stream", images, predict, out / "mnist_stream.log"):
            rows = list(mnist_producer.read_rows(REPO / "data" / "mnist_sample.csv", 30))
            published = mnist_producer.publish(
                images, (mnist_producer.encode(r) for r in rows), rate=10
            )
            print(f"published {published} images to {images} (emulator at {host})")
            seen = []
            print(f"{'ID':>8}  digit  confidence")

            def show(prediction):
                image_id, digit, confidence = mnist_consumer.summarize(prediction)
                seen.append((image_id, digit, confidence))
                print(f"{image_id:>8}  {digit}  {confidence:.3f}")

            mnist_consumer.receive(predict_sub, limit=published, timeout=60, on_message=show)
            grid = out / "mnist_stream.png"
            mnist_consumer.draw_grid(
                seen,
                mnist_consumer.load_images(
                    REPO / "data" / "mnist_sample.csv", {i for i, _, _ in seen}
                ),
                grid,
            )
            print(f"received {len(seen)} predictions; picture: {grid}")


def pedestrian_depth(out: Path) -> None:
    from PIL import Image

    from tools import frame_consumer, frame_producer
    from tools import pubsub_emulator as emulator

    step("pedestrian_depth: the lab's camera frames -> pedestrians and their distance")
    pngs = sorted(design_frames.folder().glob("*.png"))
    if not pngs:
        print(f"skipped: {design_frames.missing(needed=('A_001.png',))}")
        return
    # Cameras send JPEG; it also keeps each message under the emulator's 4 MiB gRPC limit.
    frames = out / "frames"
    frames.mkdir(exist_ok=True)
    for png in pngs:
        Image.open(png).convert("RGB").save(frames / (png.stem + ".jpg"), quality=92)
    with emulator.running_pubsub_emulator(out / "pubsub-emulator-frames.log"):
        camera = emulator.create_topic("camera_frames")
        depth, depth_sub = emulator.create_topic_with_subscription("pedestrian_depth")
        with stream_job("pedestrian_depth", camera, depth, out / "pedestrian_depth.log"):
            paths = frame_producer.list_frames(frames)
            published = frame_producer.publish(camera, frame_producer.frame_messages(paths), rate=2)
            print(f"published {published} frames to {camera}")
            drawn = out / "pedestrians"
            drawn.mkdir(exist_ok=True)

            def show(result):
                print("\n".join(frame_consumer.describe(result)))
                target = frame_consumer.drawn_path(drawn, result["name"])
                frame_consumer.draw(result, frames / result["name"], target)

            frame_consumer.receive(depth_sub, limit=published, timeout=120, on_message=show)
            print(f"frames with boxes and distances drawn: {drawn}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "out" / "demo")
    parser.add_argument("--no-stream", action="store_true", help="skip the streaming jobs")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    word_counts(args.out)
    mnist_batch(args.out)
    if not args.no_stream:
        mnist_stream(args.out)
        pedestrian_depth(args.out)
    print(f"\nAll outputs are under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
