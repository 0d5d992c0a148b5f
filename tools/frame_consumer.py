"""Prints the pedestrian_depth job's results as they arrive, optionally drawn on the frames.

    python -m tools.frame_consumer --project PROJECT --subscription pedestrian_depth-sub
    python -m tools.frame_consumer ... --frames ../shared/design --draw out/drawn

One line per frame (`name  WIDTHxHEIGHT  N pedestrians`), then one indented line per
pedestrian (box, score, distance and the cue it came from). With --frames (the folder the
producer published) and --draw, each frame is also written to the --draw folder as a PNG
with its boxes and distances drawn on it. Ctrl-C (or SIGTERM) stops cleanly.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from pipelines.pedestrian.frames import MAX_SIDE_PIXELS
from tools.mnist_consumer import receive
from tools.mnist_producer import stop_cleanly_on_signals
from tools.pubsub_cli import add_project_argument, resource_path

BOX_COLOUR = (255, 40, 40)
TEXT_COLOUR = (255, 255, 255)


def describe_pedestrian(pedestrian: dict) -> str:
    distance = pedestrian.get("distance_m")
    if distance is None:
        where = "distance unknown"
    else:
        where = f"{distance:5.2f} m ({pedestrian.get('distance_method')})"
    box = ", ".join(f"{int(v)}" for v in pedestrian["box"])
    return f"[{box}]  score {float(pedestrian['score']):.2f}  {where}"


def count_text(count: int) -> str:
    return {0: "no pedestrian", 1: "1 pedestrian"}.get(count, f"{count} pedestrians")


def check_result(result) -> dict:
    """`result` when it has the job's result shape (pipelines/pedestrian/frames.py) in what
    the consumer prints and draws; ValueError (one line) otherwise."""
    if not isinstance(result, dict):
        raise ValueError(f"a JSON {type(result).__name__}, not a result object")
    if not isinstance(result.get("name"), str):
        raise ValueError('"name" is not a string')
    found = result.get("pedestrians")
    if not isinstance(found, list):
        raise ValueError('"pedestrians" is not a list')
    for pedestrian in found:
        if not isinstance(pedestrian, dict):
            raise ValueError("a pedestrian is not an object")
        box = pedestrian.get("box")
        if not (isinstance(box, list) and len(box) == 4 and all(map(_pixel, box))):
            raise ValueError(f"a box is not 4 pixel positions (0 to {MAX_SIDE_PIXELS})")
        if not _number(pedestrian.get("score")):
            raise ValueError("a score is not a number")
        if pedestrian.get("distance_m") is not None and not _number(pedestrian["distance_m"]):
            raise ValueError("a distance is not a number")
    return result


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _pixel(value) -> bool:
    return _number(value) and 0 <= value <= MAX_SIDE_PIXELS


def describe(result) -> list[str]:
    """The lines printed for one result message; ValueError for what is not a result."""
    found = check_result(result)["pedestrians"]
    lines = [
        f"{result['name']}  {result.get('width')}x{result.get('height')}  {count_text(len(found))}"
    ]
    lines += [f"    {describe_pedestrian(p)}" for p in found]
    return lines


def label_text(pedestrian: dict) -> str:
    distance = pedestrian.get("distance_m")
    where = "? m" if distance is None else f"{distance:.1f} m"
    return f"{where}  {float(pedestrian['score']):.0%}"


def draw(result: dict, frame_path: Path, out_path: Path) -> None:
    """Writes the frame at `frame_path` to `out_path` (PNG) with the result's boxes and
    distances drawn on it; sizes follow the frame so that the labels read at any size."""
    from PIL import Image, ImageDraw, ImageFont

    try:
        with Image.open(frame_path) as source:
            image = source.convert("RGB")
    except Image.DecompressionBombError as error:  # not an OSError, and still a bad file
        raise OSError(str(error)) from None
    canvas = ImageDraw.Draw(image)
    scale = max(image.height / 1080, 0.25)
    line = max(2, round(4 * scale))
    font = ImageFont.load_default(size=max(12, round(36 * scale)))
    if (result.get("width"), result.get("height")) not in ((None, None), image.size):
        print(
            f"warning: {frame_path} is {image.width}x{image.height}, the result says "
            f"{result.get('width')}x{result.get('height')}",
            file=sys.stderr,
        )
    for pedestrian in result["pedestrians"]:
        x1, y1, x2, y2 = (int(v) for v in pedestrian["box"])
        canvas.rectangle((x1, y1, x2 - 1, y2 - 1), outline=BOX_COLOUR, width=line)
        text = label_text(pedestrian)
        left, top, right, bottom = canvas.textbbox((0, 0), text, font=font)
        pad = line
        width, height = right - left + 2 * pad, bottom - top + 2 * pad
        # Above the box if there is room, else inside its top edge; never off the frame.
        lx = min(max(x1, 0), max(image.width - width, 0))
        ly = y1 - height if y1 - height >= 0 else y1
        canvas.rectangle((lx, ly, lx + width, ly + height), fill=BOX_COLOUR)
        canvas.text((lx + pad - left, ly + pad - top), text, fill=TEXT_COLOUR, font=font)
    caption = f"{result['name']}: {count_text(len(result['pedestrians']))}"
    canvas.text(
        (line * 3, line * 3),
        caption,
        fill=TEXT_COLOUR,
        font=font,
        stroke_width=max(1, line // 2),
        stroke_fill=(0, 0, 0),
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    image.save(out_path, format="PNG")


def drawn_path(out_dir: Path, name: str) -> Path:
    # Only the last part of the name: a name from a message never writes outside out_dir.
    return out_dir / (Path(name).stem + ".png")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_project_argument(parser)
    parser.add_argument(
        "--subscription",
        default="pedestrian_depth-sub",
        help="subscription name or projects/P/subscriptions/S (default: pedestrian_depth-sub)",
    )
    parser.add_argument("--limit", type=int, help="stop after this many results")
    parser.add_argument(
        "--timeout", type=float, help="stop after this many seconds without a message"
    )
    parser.add_argument(
        "--frames", type=Path, help="the folder the producer published (for --draw)"
    )
    parser.add_argument(
        "--draw", type=Path, help="write each frame with its boxes and distances to this folder"
    )
    args = parser.parse_args(argv)
    if args.draw and not args.frames:
        parser.error("--draw needs --frames, the folder the frames came from")
    if args.frames and not args.frames.is_dir():
        parser.error(f"--frames: no such folder: {args.frames}")
    subscription = resource_path(args.project, args.subscription, "subscriptions")

    def show(result: dict) -> None:
        lines = describe(result)  # ValueError on a message that is not a result: skipped
        print("\n".join(lines), flush=True)
        if args.draw:
            frame = args.frames / Path(result["name"]).name
            if frame.is_file():
                target = drawn_path(args.draw, result["name"])
                try:
                    draw(result, frame, target)
                except OSError as error:  # an unreadable frame file: say so, keep going
                    print(f"    (not drawn: {error})", file=sys.stderr)
                else:
                    print(f"    drawn: {target}", flush=True)
            else:
                print(f"    (not drawn: no {frame})", file=sys.stderr)

    count = receive(subscription, args.limit, args.timeout, show)
    print(f"received {count} results", file=sys.stderr)
    return 0


if __name__ == "__main__":
    stop_cleanly_on_signals()
    sys.exit(main())
