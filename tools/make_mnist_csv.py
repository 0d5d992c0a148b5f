"""Write MNIST rows as the lab's CSV (what users upload to BigQuery `MNIST.Images`).

    python -m tools.make_mnist_csv --split test --limit 200 --output mnist.csv \
        [--labels labels.csv]

`mnist.csv`: header `ID,Image`; `ID` is the row's 0-based index within the split;
`Image` is the 784 pixels (row-major 28x28, in [0, 1]) as comma-separated numbers,
quoted because it holds commas. The optional labels file is `ID,Label`.
"""

import argparse
import csv
import sys

import numpy as np

from tools.mnist_data import NotMnistData, load_mnist

SPLITS = ("train", "validation", "test")


def format_pixel(value) -> str:
    # repr of the float64 is the shortest text that reads back to the same number; the
    # pixels are k/256, which float32 and decimal both hold exactly ("0.328125").
    return repr(float(value))


def format_image(pixels: np.ndarray) -> str:
    return ",".join(format_pixel(v) for v in np.asarray(pixels).reshape(-1))


def write_csv(images, labels, output, labels_output=None) -> int:
    # Plain \n line ends: what the lab's CSV had, and BigQuery and Beam read both.
    with open(output, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["ID", "Image"])
        for i, pixels in enumerate(images):
            writer.writerow([i, format_image(pixels)])
    if labels_output is not None:
        with open(labels_output, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["ID", "Label"])
            for i, label in enumerate(labels):
                writer.writerow([i, int(label)])
    return len(images)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=SPLITS, default="test")
    parser.add_argument("--limit", type=int, default=None, help="first N rows only")
    parser.add_argument("--output", required=True, help="the CSV to write (ID,Image)")
    parser.add_argument("--labels", default=None, help="also write ID,Label here")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 0:
        parser.error("--limit must be >= 0")

    try:
        split = getattr(load_mnist(), args.split)
    except (FileNotFoundError, NotMnistData) as error:
        sys.exit(f"make_mnist_csv: {error}")
    images, labels = split.images[: args.limit], split.labels[: args.limit]
    count = write_csv(images, labels, args.output, args.labels)
    print(f"wrote {count} rows of the {args.split} split to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
