"""tools.make_mnist_csv and the bundled sample it wrote (data/mnist_sample*.csv)."""

import csv
from pathlib import Path

import numpy as np
import pytest

from tests.support.markers import needs_mnist_wheel
from tools import make_mnist_csv, mnist_data

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "data" / "mnist_sample.csv"
SAMPLE_LABELS = ROOT / "data" / "mnist_sample_labels.csv"


def read_images(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    ids = [int(r["ID"]) for r in rows]
    images = np.array([[float(v) for v in r["Image"].split(",")] for r in rows], np.float32)
    return ids, images


@pytest.mark.parametrize(
    "value, text",
    [(0.0, "0.0"), (np.float32(84 / 256), "0.328125"), (np.float32(255 / 256), "0.99609375")],
)
def test_pixels_use_the_shortest_exact_text(value, text):
    assert make_mnist_csv.format_pixel(value) == text
    assert np.float32(text) == np.float32(value)


def test_bundled_sample_has_the_lab_format():
    header = SAMPLE.read_text().splitlines()[0]
    assert header == "ID,Image"
    ids, images = read_images(SAMPLE)
    assert ids == list(range(200))
    assert images.shape == (200, 784)
    assert images.min() >= 0.0 and images.max() <= 1.0
    with open(SAMPLE_LABELS, newline="") as f:
        labels = list(csv.DictReader(f))
    assert [int(r["ID"]) for r in labels] == ids
    assert {int(r["Label"]) for r in labels} == set(range(10))


@needs_mnist_wheel
def test_bundled_sample_is_the_first_200_official_test_rows():
    test = mnist_data.load_mnist().test
    _, images = read_images(SAMPLE)
    np.testing.assert_array_equal(images, test.images[:200])
    with open(SAMPLE_LABELS, newline="") as f:
        labels = [int(r["Label"]) for r in csv.DictReader(f)]
    assert labels == test.labels[:200].tolist()


@needs_mnist_wheel
def test_cli_writes_a_round_tripping_csv(tmp_path):
    out, labels_out = tmp_path / "mnist.csv", tmp_path / "labels.csv"
    assert (
        make_mnist_csv.main(
            [
                "--split",
                "validation",
                "--limit",
                "3",
                "--output",
                str(out),
                "--labels",
                str(labels_out),
            ]
        )
        == 0
    )
    validation = mnist_data.load_mnist().validation
    lines = out.read_text().splitlines()
    assert lines[0] == "ID,Image" and lines[1].startswith('0,"0.0,')
    ids, images = read_images(out)
    assert ids == [0, 1, 2]
    np.testing.assert_array_equal(images, validation.images[:3])
    assert labels_out.read_text().splitlines() == ["ID,Label"] + [
        f"{i},{label}" for i, label in enumerate(validation.labels[:3])
    ]
