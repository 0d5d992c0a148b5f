"""Prints the MNIST stream's predictions as they arrive, optionally as a picture.

    python -m tools.mnist_consumer --project PROJECT --subscription mnist_predict-sub
    python -m tools.mnist_consumer ... --limit 64 --csv mnist.csv --grid predictions.png

Each line is `ID  digit  confidence`. With --grid (and the --csv the images came from), the
first --limit digits are drawn in a grid, each with its predicted digit and confidence:
people would rather look at digits than read 784 numbers. Ctrl-C stops cleanly.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import queue
import sys
from pathlib import Path

from pipelines.core.json_text import NestedTooDeep, read_json
from pipelines.mnist.records import PROBABILITY_FIELDS, BadRecord, parse_id, parse_image
from tools.pubsub_cli import add_project_argument, resource_path


def summarize(prediction) -> tuple[int, int, float]:
    """(ID, most probable digit, its probability) of one prediction message; ValueError
    (one line) for anything that is not the job's prediction."""
    if not isinstance(prediction, dict):
        raise ValueError(f"a JSON {type(prediction).__name__}, not a prediction object")
    image_id = prediction.get("ID")
    if isinstance(image_id, bool) or not isinstance(image_id, int):
        raise ValueError(f"ID is {_shape(image_id)}, not an integer")
    probabilities = []
    for field in PROBABILITY_FIELDS:
        value = prediction.get(field)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{field} is {_shape(value)}, not a number")
        if not 0 <= value <= 1:  # NaN included (Python's json reads NaN)
            raise ValueError(f"{field} is not a probability in [0, 1]")
        probabilities.append(float(value))
    digit = max(range(len(probabilities)), key=probabilities.__getitem__)
    return image_id, digit, probabilities[digit]


def _shape(value) -> str:
    # A message's values may be anything, of any length: a log line says their kind only.
    return "missing" if value is None else f"a JSON {type(value).__name__}"


def read_message(data: bytes):
    """The JSON document of one message; ValueError (one line) when it holds none."""
    try:
        return read_json(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"not UTF-8 (byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON: {error.msg} at position {error.pos}") from None
    except NestedTooDeep:
        raise ValueError("JSON nested too deep") from None


def handle(data: bytes, on_message) -> str | None:
    """Hands one message's document to `on_message`; None when it took it, else the line
    saying why the message was skipped. `on_message` raises ValueError for what it cannot
    take."""
    try:
        on_message(read_message(data))
    except ValueError as error:
        return f"skipping a message that is not a result: {error}"
    return None


def receive(subscription: str, limit: int | None, timeout: float | None, on_message) -> int:
    """Pulls from `subscription`, acks each message after `on_message(dict)`; returns the
    count. Stops after `limit` messages, `timeout` seconds without one, or Ctrl-C."""
    from pipelines.io.pubsub_clients import subscriber_client

    subscriber = subscriber_client()
    arrived: queue.Queue = queue.Queue()
    future = subscriber.subscribe(subscription, callback=arrived.put)
    count = 0
    try:
        while limit is None or count < limit:
            try:
                message = arrived.get(timeout=timeout)
            except queue.Empty:
                print(f"no message for {timeout:g} s, stopping", file=sys.stderr)
                break
            skipped = handle(message.data, on_message)
            if skipped:
                print(skipped, file=sys.stderr)
            message.ack()
            count += 1
    except KeyboardInterrupt:
        print("\nstopping", file=sys.stderr)
    finally:
        future.cancel()
        # Wait for the stream to shut down (and pending acks to go out) before closing.
        with contextlib.suppress(Exception):
            future.result(timeout=10)
        subscriber.close()
    return count


def load_images(csv_path: Path, wanted: set[int]) -> dict:
    """ID -> pixels of the `wanted` rows of the CSV, read by the job's own rules; a row they
    refuse is left out (drawn as "no image"), and a file that stops being UTF-8 text or CSV
    is read up to there, with one line saying where."""
    import csv

    csv.field_size_limit(1 << 24)
    images = {}
    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        try:
            for row in reader:
                try:
                    image_id = parse_id(row.get("ID"))
                    if image_id in wanted:
                        images[image_id] = parse_image(row.get("Image"))
                except BadRecord:
                    continue
        except (UnicodeDecodeError, csv.Error) as error:
            reason = "not UTF-8 text" if isinstance(error, UnicodeDecodeError) else error
            print(f"--csv: read up to line {reader.line_num + 1}: {reason}", file=sys.stderr)
    return images


CONFIDENT = 0.9  # below this, a prediction is drawn in red: worth a person's look
_PAD, _LEGEND, _DIGIT_FONT, _SMALL_FONT = 10, 28, 22, 14
_CAPTION = _DIGIT_FONT + _SMALL_FONT + 8


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # scalable, with FreeType (Pillow >= 10.1)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()  # the small bitmap font: still legible


def grid_size(count: int, columns: int = 8, scale: int = 3) -> tuple[int, int]:
    """Width and height in pixels of draw_grid's picture of `count` digits."""
    tile = 28 * scale
    columns = max(1, min(columns, count))
    rows = max(1, -(-count // columns))
    return (_PAD + columns * (tile + _PAD), _LEGEND + _PAD + rows * (tile + _CAPTION + _PAD))


def draw_grid(
    predictions: list[tuple[int, int, float]],
    images: dict,
    path: Path,
    columns: int = 8,
    scale: int = 3,
) -> None:
    """A PNG of the digits in a grid; under each, the predicted digit in large type, its
    confidence, and the image ID. Predictions under 90% confidence are red."""
    from PIL import Image, ImageDraw

    tile = 28 * scale
    columns = max(1, min(columns, len(predictions)))
    sheet = Image.new("RGB", grid_size(len(predictions), columns, scale), "white")
    draw = ImageDraw.Draw(sheet)
    big, small = _font(_DIGIT_FONT), _font(_SMALL_FONT)
    draw.text(
        (_PAD, _PAD // 2),
        f"predicted digit, confidence, ID (red: under {CONFIDENT:.0%})",
        fill="dimgray",
        font=small,
    )
    for index, (image_id, digit, confidence) in enumerate(predictions):
        x = _PAD + (index % columns) * (tile + _PAD)
        y = _LEGEND + _PAD + (index // columns) * (tile + _CAPTION + _PAD)
        colour = "black" if confidence >= CONFIDENT else "red"
        pixels = images.get(image_id)
        if pixels is not None:
            ink = (255 - pixels.reshape(28, 28) * 255).clip(0, 255).astype("uint8")
            sheet.paste(
                Image.fromarray(ink).resize((tile, tile), Image.NEAREST).convert("RGB"), (x, y)
            )
        else:
            draw.text(
                (x + tile // 2, y + tile // 2), "no image", fill="gray", font=small, anchor="mm"
            )
        draw.rectangle(
            (x - 1, y - 1, x + tile, y + tile), outline="lightgray" if colour == "black" else "red"
        )
        draw.text((x, y + tile + 4), str(digit), fill=colour, font=big)
        draw.text(
            (x + _DIGIT_FONT, y + tile + 4 + (_DIGIT_FONT - _SMALL_FONT)),
            f"{confidence:.1%}",
            fill=colour,
            font=small,
        )
        draw.text((x, y + tile + 6 + _DIGIT_FONT), f"ID {image_id}", fill="dimgray", font=small)
    sheet.save(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_project_argument(parser)
    parser.add_argument(
        "--subscription",
        default="mnist_predict-sub",
        help="subscription name or projects/P/subscriptions/S (default: mnist_predict-sub)",
    )
    parser.add_argument("--limit", type=int, help="stop after this many predictions")
    parser.add_argument(
        "--timeout", type=float, help="stop after this many seconds without a message"
    )
    parser.add_argument("--grid", type=Path, help="write a PNG grid of the digits here")
    parser.add_argument("--csv", type=Path, help="the CSV the producer published (for --grid)")
    args = parser.parse_args(argv)
    if args.grid and not args.csv:
        parser.error("--grid needs --csv, the file the images came from")
    subscription = resource_path(args.project, args.subscription, "subscriptions")
    seen: list[tuple[int, int, float]] = []

    def show(prediction: dict) -> None:
        image_id, digit, confidence = summarize(prediction)
        seen.append((image_id, digit, confidence))
        print(f"{image_id:>8}  {digit}  {confidence:.3f}", flush=True)

    print(f"{'ID':>8}  digit  confidence")
    count = receive(subscription, args.limit, args.timeout, show)
    if args.grid and seen:
        shown = seen[: args.limit or 64]
        draw_grid(shown, load_images(args.csv, {i for i, _, _ in shown}), args.grid)
        print(f"wrote {args.grid}", file=sys.stderr)
    print(f"received {count} predictions", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
