"""The MNIST batch job: its composites on beam.Create, and the template end to end."""

from __future__ import annotations

import csv
import json
import math

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.mnist import batch
from pipelines.mnist.model import MnistModelHandler
from pipelines.mnist.models import resolve_model
from pipelines.mnist.records import parse_csv_line
from pipelines.mnist.transforms import ParseImages, PredictDigits
from pipelines.launch import parse
from tests.support.processes import REPO, read_shards, run_template

SAMPLE = REPO / "data" / "mnist_sample.csv"
LABELS = REPO / "data" / "mnist_sample_labels.csv"


def sample_lines(limit=None):
    lines = SAMPLE.read_text().splitlines()[1:]
    return lines[:limit] if limit else lines


def labels():
    with open(LABELS) as handle:
        return {int(r["ID"]): int(r["Label"]) for r in csv.DictReader(handle)}


BAD_LINES = {
    'x,"0.0"': "ID must be an integer",
    '5.5,"' + ",".join(["0.0"] * 784) + '"': "ID must be an integer",
    "77": "missing Image",
    '78,"0.0,0.5"': "Image must have 784 values, got 2",
    '79,"' + ",".join(["0.0"] * 783 + ["zero"]) + '"': "Image value 783 is not a number",
    '80,"' + ",".join(["nan"] + ["0.0"] * 783) + '"': "not a finite number",
    '81,"' + ",".join(["0.0"] * 100 + ["1.01"] + ["0.0"] * 683) + '"': "outside [0, 1]",
    "82," + ",".join(["0.0"] * 784): "expected 2 CSV fields",
}


def test_parse_images_splits_valid_rows_from_dead_letters():
    good = sample_lines(3)
    with TestPipeline() as p:
        parsed = p | beam.Create(good + list(BAD_LINES)) | ParseImages(parse_csv_line)
        ids = parsed.valid | beam.MapTuple(lambda image_id, pixels: image_id)
        assert_that(ids, equal_to([0, 1, 2]), label="ValidIds")
        dead = parsed.dead_letters | beam.Map(lambda d: (d["Row"], d["Error"].split(":")[0]))
        assert_that(dead | beam.Keys(), equal_to(list(BAD_LINES)), label="DeadRowsVerbatim")


class BrokenModelHandler(MnistModelHandler):
    def run_inference(self, batch, model, inference_args=None):
        raise RuntimeError("model exploded")


def test_a_failing_model_sends_rows_to_dead_letters_not_a_crash():
    rows = [(i, np.full(784, 0.1, np.float32)) for i in range(5)]
    with TestPipeline() as p:
        predictions, dead = p | beam.Create(rows) | PredictDigits(
            BrokenModelHandler(resolve_model(None)))
        assert_that(predictions, equal_to([]), label="NoPredictions")
        assert_that(dead | beam.Map(lambda d: (json.loads(d["Row"])["ID"], d["Error"])),
                    equal_to([(i, "inference failed: RuntimeError: model exploded")
                              for i in range(5)]), label="AllDead")


def test_metrics_prove_every_row_lands_once(tmp_path):
    source = tmp_path / "mixed.csv"
    source.write_text("ID,Image\n" + "\n".join(sample_lines(20) + list(BAD_LINES)) + "\n")
    _, args, options = parse(batch.TEMPLATE, ["--input", str(source),
                                              "--output", str(tmp_path / "predict")])
    pipeline = beam.Pipeline(options=options)
    batch.build_pipeline(pipeline, args)
    result = pipeline.run()
    result.wait_until_finish()
    counters = {c.key.metric.name: c.committed for c in
                result.metrics().query(MetricsFilter().with_namespace("mnist"))["counters"]}
    assert counters == {"rows_read": 28, "predictions": 20, "dead_letters": 8}
    assert counters["rows_read"] == counters["predictions"] + counters["dead_letters"]


def test_template_end_to_end_on_the_bundled_sample(tmp_path):
    source = tmp_path / "with_bad_rows.csv"
    source.write_text(SAMPLE.read_text() + "\n".join(BAD_LINES) + "\n")
    run_template("mnist_batch", ["--input", str(source), "--output", str(tmp_path / "predict")])
    rows = [json.loads(line) for line in read_shards(tmp_path / "predict")]
    dead = [json.loads(line) for line in read_shards(tmp_path / "predict_errors")]
    truth = labels()
    assert sorted(r["ID"] for r in rows) == sorted(truth)  # IDs kept, none renumbered
    for row in rows:
        assert list(row) == ["ID"] + [f"P{d}" for d in range(10)]
        assert math.isclose(sum(row[f"P{d}"] for d in range(10)), 1.0, abs_tol=1e-5)
        assert all(0.0 <= row[f"P{d}"] <= 1.0 for d in range(10))
    correct = sum(max(range(10), key=lambda d: r[f"P{d}"]) == truth[r["ID"]] for r in rows)
    assert correct / len(rows) >= 0.98
    assert {d["Row"]: d["Error"] for d in dead}.keys() == BAD_LINES.keys()
    for d in dead:
        assert BAD_LINES[d["Row"]] in d["Error"]
    assert len(rows) + len(dead) == len(truth) + len(BAD_LINES)


@pytest.mark.parametrize("args, message", [
    (["--input", "data/mnist_sample.csv"], "--output: is required"),
    (["--input", "nope/*.csv", "--output", "OUT"], "--input: expected an existing file"),
    (["--input", "data/mnist_sample.csv", "--output", "OUT", "--model", "/nonexistent"],
     "--model: no model at '/nonexistent'"),
    (["--input", "data/mnist_sample.csv", "--output", "OUT", "--read_method", "FAST"],
     "--read_method: invalid choice"),
    (["--input", "data/mnist_sample.csv", "--output", "p:MNIST.Predict",
      "--dead_letter", "p:MNIST.Predict"], "--dead_letter: must differ from --output"),
])
def test_bad_parameters_fail_before_the_pipeline(tmp_path, args, message):
    args = [a.replace("OUT", str(tmp_path / "out")) for a in args]
    completed = run_template("mnist_batch", args, check=False, timeout=120)
    assert completed.returncode == 2
    assert len(completed.stderr.strip().splitlines()) == 1, completed.stderr
    assert message in completed.stderr


def test_importing_the_job_does_not_import_tensorflow():
    import subprocess
    import sys
    code = ("import sys; import pipelines.mnist.batch; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
