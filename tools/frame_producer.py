"""Publishes a folder of camera frames to the input topic, one message per frame.

    python -m tools.frame_producer --project PROJECT --topic camera_frames \
        --folder ../shared/design --rate 1

Each message is the frame file's bytes (PNG or JPEG, in file-name order) with the file name
in the attribute `name`, as the pedestrian_depth job expects; with --json it is UTF-8 JSON
{"name": "A_001.png", "image": "<base64>"} instead (a third larger). Files over Pub/Sub's
10 MB message limit are skipped with a warning (the local Pub/Sub emulator takes only about
4 MiB per message: the lab's frames fit as raw PNG, not as JSON). Ctrl-C (or SIGTERM) stops
cleanly: messages already handed to the client are flushed, and a summary is printed.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from pipelines.core.deadletters import MAX_MESSAGE_BYTES
from pipelines.pedestrian.frames import NAME_ATTRIBUTE
from tools.mnist_producer import publish, stop_cleanly_on_signals  # the same paced publish
from tools.pubsub_cli import Progress, add_project_argument, resource_path

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")


def list_frames(folder: Path) -> list[Path]:
    """The PNG and JPEG files directly in `folder`, in name order."""
    return sorted(
        p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES
    )


def encode_frame(name: str, image: bytes, as_json: bool = False) -> tuple[bytes, dict]:
    """(message data, attributes) of one frame."""
    if as_json:
        data = json.dumps(
            {"name": name, "image": base64.b64encode(image).decode("ascii")}, separators=(",", ":")
        ).encode("utf-8")
    else:
        data = image
    return data, {NAME_ATTRIBUTE: name}


def frame_messages(
    paths: Iterable[Path], as_json: bool = False, repeat: int = 1
) -> Iterator[tuple[bytes, dict]]:
    """Messages for `paths`, `repeat` times over; read lazily, one file at a time."""
    for _ in range(repeat):
        for path in paths:
            data, attributes = encode_frame(path.name, path.read_bytes(), as_json)
            size = len(data) + sum(len(k) + len(v.encode()) for k, v in attributes.items())
            if size > MAX_MESSAGE_BYTES:
                print(
                    f"skipping {path}: {size} bytes, over Pub/Sub's limit of "
                    f"{MAX_MESSAGE_BYTES} bytes per message",
                    file=sys.stderr,
                )
                continue
            yield data, attributes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_project_argument(parser)
    parser.add_argument(
        "--topic",
        default="camera_frames",
        help="topic name or projects/P/topics/T (default: camera_frames)",
    )
    parser.add_argument(
        "--folder",
        type=Path,
        required=True,
        help="folder of .png/.jpg/.jpeg frames, published in name order",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=1.0,
        help="frames per second; 0 = as fast as possible (default: 1)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='publish {"name": ..., "image": <base64>} JSON instead of raw bytes',
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="publish the folder this many times (default: 1)"
    )
    parser.add_argument("--limit", type=int, help="publish at most this many frames")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        parser.error(f"--folder: no such folder: {args.folder}")
    paths = list_frames(args.folder)
    if not paths:
        parser.error(f"--folder: no .png, .jpg or .jpeg files in {args.folder}")
    topic = resource_path(args.project, args.topic, "topics")
    total = len(paths) * max(args.repeat, 0)
    if args.limit is not None:
        total = min(total, args.limit)
    messages = frame_messages(paths, args.json, args.repeat)
    if args.limit is not None:
        messages = (m for _, m in zip(range(args.limit), messages))
    published = publish(topic, messages, args.rate, progress=Progress(total, "publishing"))
    print(f"published {published} frames to {topic}")
    return 0


if __name__ == "__main__":
    stop_cleanly_on_signals()
    sys.exit(main())
