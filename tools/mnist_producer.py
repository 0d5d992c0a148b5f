"""Publishes the lab's mnist.csv rows to the input topic, one JSON message per row.

    python -m tools.mnist_producer --project PROJECT --topic mnist_image \
        --csv mnist.csv --rate 10

Each message is UTF-8 JSON {"ID": 7, "Image": "0.0,..."}, as the MNIST stream job expects
(the lab published one row every 0.1 s: --rate 10). Ctrl-C (or SIGTERM) stops cleanly:
messages already handed to the client are flushed, and a summary is printed.
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from pipelines.mnist.records import BadRecord, parse_id
from tools.pubsub_cli import Pacer, Progress, add_project_argument, resource_path

csv.field_size_limit(1 << 24)  # generous: a bad row with a huge field should fail later, clearly


def read_rows(path: Path, limit: int | None = None) -> Iterator[dict]:
    """The rows of the CSV as messages' documents, up to `limit`. A file that stops being
    UTF-8 text or CSV ends the rows there, with one line saying where."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        try:
            for count, row in enumerate(reader):
                if limit is not None and count >= limit:
                    return
                yield message_row(row)
        except (UnicodeDecodeError, csv.Error) as error:
            reason = "not UTF-8 text" if isinstance(error, UnicodeDecodeError) else error
            print(f"stopping at line {reader.line_num + 1} of {path}: {reason}", file=sys.stderr)


def message_row(row: dict) -> dict:
    """{"ID", "Image"} of one CSV row. An ID the job reads as an integer is published as
    one; any other is published as it is (null when absent), and so is the Image: the job
    dead-letters what it cannot read, with its reason, by its own rules."""
    image_id = row.get("ID")
    try:
        image_id = parse_id(image_id)
    except BadRecord:
        pass
    return {"ID": image_id, "Image": row.get("Image")}


def encode(row: dict) -> bytes:
    return json.dumps(row, separators=(",", ":")).encode("utf-8")


def publish(
    topic: str, messages, rate: float, *, progress: Progress | None = None, publisher=None
) -> int:
    """Publishes `messages` (bytes, or (bytes, attributes)) at `rate` per second; returns
    how many the service acknowledged. Stops early, cleanly, on Ctrl-C."""
    futures = []
    sent = 0
    try:
        if publisher is None:  # inside the try: the import alone can take a second or two
            from pipelines.io.pubsub_clients import publisher_client

            publisher = publisher_client()
        pacer = Pacer(rate)
        for message in messages:
            data, attributes = message if isinstance(message, tuple) else (message, {})
            pacer.wait()
            futures.append(publisher.publish(topic, data, **attributes))
            sent += 1
            if progress:
                progress.update(sent)
    except KeyboardInterrupt:
        print(f"\nstopping: {sent} messages handed to the client, flushing them", file=sys.stderr)
    published = sum(1 for f in futures if f.result(timeout=60))
    if progress:
        progress.close(sent)
    return published


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def stop_cleanly_on_signals() -> None:
    """SIGTERM (`kill`, a container stop) stops as cleanly as Ctrl-C, and so does SIGINT
    even when a script started us in the background, which leaves SIGINT ignored."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_project_argument(parser)
    parser.add_argument(
        "--topic",
        default="mnist_image",
        help="topic name or projects/P/topics/T (default: mnist_image)",
    )
    parser.add_argument(
        "--csv",
        type=Path,
        default=Path("mnist.csv"),
        help="the lab's CSV with header ID,Image (default: mnist.csv)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=10.0,
        help="messages per second; 0 = as fast as possible (default: 10)",
    )
    parser.add_argument("--limit", type=int, help="publish at most this many rows")
    args = parser.parse_args(argv)
    if not args.csv.exists():
        parser.error(
            f"--csv: no such file: {args.csv} (make one with python -m tools.make_mnist_csv)"
        )
    topic = resource_path(args.project, args.topic, "topics")
    total = args.limit
    if total is None:
        with open(args.csv, "rb") as handle:
            total = max(sum(1 for _ in handle) - 1, 0)
    messages = (encode(row) for row in read_rows(args.csv, args.limit))
    published = publish(topic, messages, args.rate, progress=Progress(total, "publishing"))
    print(f"published {published} messages to {topic}")
    return 0


if __name__ == "__main__":
    stop_cleanly_on_signals()
    sys.exit(main())
