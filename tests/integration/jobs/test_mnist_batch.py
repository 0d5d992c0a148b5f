"""The MNIST batch job: its composites on beam.Create, and the template end to end."""

from __future__ import annotations

import csv
import json
import math
import shutil
import time

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.ml.inference.base import PredictionResult
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.core.failsafe import Failsafe, Rows
from pipelines.core.launch import parse
from pipelines.jobs import mnist_batch as batch
from pipelines.mnist.handler import MnistModelHandler
from pipelines.mnist.location import resolve_model
from pipelines.mnist.records import parse_csv_line, split_csv_line
from pipelines.mnist.transforms import ParseImages, PredictDigits
from tests.support.mnist_models import noise
from tests.support.mnist_reference import parse_row
from tests.support.processes import REPO, read_shards, run_template, template_env

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
    lines = [line.encode() for line in good + list(BAD_LINES)]
    with TestPipeline() as p:
        parsed = p | beam.Create(lines) | ParseImages(split_csv_line)
        ids = parsed.valid | beam.FlatMap(lambda batch: batch.rows.ids.tolist())
        assert_that(ids, equal_to([0, 1, 2]), label="ValidIds")
        dead = parsed.dead_letters | beam.Map(lambda d: (d["Row"], d["Error"].split(":")[0]))
        assert_that(dead | beam.Keys(), equal_to(list(BAD_LINES)), label="DeadRowsVerbatim")


def test_parsed_batches_equal_the_row_by_row_reference():
    lines = [line.encode() for line in sample_lines(40)]
    expected = dict(parse_row(parse_csv_line(line.decode())) for line in lines)
    with TestPipeline() as p:
        parsed = p | beam.Create(lines) | ParseImages(split_csv_line)
        pixels = parsed.valid | beam.FlatMap(
            lambda batch: [(int(i), row.tobytes()) for i, row in zip(batch.rows.ids, batch.value)]
        )
        assert_that(pixels, equal_to([(i, v.tobytes()) for i, v in expected.items()]))


def test_the_overlapped_parse_gives_the_serial_parses_outputs_with_each_batchs_timestamp():
    """The batch job parses a batch on a thread of its own while the one before goes on: the
    same batches and dead letters as parsing in turn, each with its own batch's timestamp,
    the last one too (emitted at the end of the bundle)."""
    from pipelines.core.deadletters import DEAD_LETTERS
    from pipelines.mnist.transforms import VALID, _OverlappedParseBatchFn, _ParseBatchFn

    lines = [line.encode() for line in sample_lines(12)] + [bad.encode() for bad in BAD_LINES]
    blocks = [lines[start : start + 5] for start in range(0, len(lines), 5)]
    serial = _ParseBatchFn(split_csv_line, answering=False)
    expected_valid, expected_dead = [], []
    for second, block in enumerate(blocks):
        for output in serial.process(block):
            if isinstance(output, beam.pvalue.TaggedOutput):
                expected_dead.append((100 + second, output.value["Row"], output.value["Error"]))
            else:
                rows = output.rows.ids.tolist()
                expected_valid.append((100 + second, rows, output.value.tobytes()))
    assert expected_dead and len(expected_valid) > 1

    with TestPipeline() as p:
        stamped = p | beam.Create(
            [beam.window.TimestampedValue(block, 100 + s) for s, block in enumerate(blocks)]
        )
        parsed = stamped | beam.ParDo(
            _OverlappedParseBatchFn(split_csv_line, answering=False)
        ).with_outputs(DEAD_LETTERS, main=VALID)
        valid = parsed[VALID] | "Valid" >> beam.Map(
            lambda b, t=beam.DoFn.TimestampParam: (int(t), b.rows.ids.tolist(), b.value.tobytes())
        )
        dead = parsed[DEAD_LETTERS] | "Dead" >> beam.Map(
            lambda d, t=beam.DoFn.TimestampParam: (int(t), d["Row"], d["Error"])
        )
        assert_that(valid, equal_to(expected_valid), label="SameBatches")
        assert_that(dead, equal_to(expected_dead), label="SameDeadLetters")


class BrokenModelHandler(MnistModelHandler):
    def run_inference(self, batch, model, inference_args=None):
        raise RuntimeError("model exploded")


class NaNModelHandler(MnistModelHandler):
    def load_model(self):
        return None

    def run_inference(self, batch, model, inference_args=None):
        results = []
        for pixels in batch:  # image_batch's IDs are the row numbers
            scores = np.full((len(pixels), 10), 0.1, np.float32)
            scores[1::2, 3] = np.nan
            results.append(PredictionResult(pixels, scores))
        return results


def image_batch(count):
    return Failsafe(Rows(np.arange(count, dtype=np.int64)), np.full((count, 784), 0.1, np.float32))


def test_a_failing_model_sends_rows_to_dead_letters_not_a_crash():
    with TestPipeline() as p:
        predictions, dead = (
            p
            | beam.Create([image_batch(5)])
            | PredictDigits(BrokenModelHandler(resolve_model(None), max_batch_size=1))
        )
        assert_that(predictions, equal_to([]), label="NoPredictions")
        assert_that(
            dead | beam.Map(lambda d: (json.loads(d["Row"])["ID"], d["Error"])),
            equal_to([(i, "inference failed: RuntimeError: model exploded") for i in range(5)]),
            label="AllDead",
        )


def test_rows_without_finite_probabilities_are_dead_letters():
    with TestPipeline() as p:
        predictions, dead = (
            p
            | beam.Create([image_batch(6)])
            | PredictDigits(NaNModelHandler(resolve_model(None), max_batch_size=1))
        )
        assert_that(
            predictions | beam.FlatMap(str.splitlines) | beam.Map(lambda x: json.loads(x)["ID"]),
            equal_to([0, 2, 4]),
            label="FiniteRowsPredicted",
        )
        assert_that(
            dead | beam.Map(lambda d: json.loads(d["Row"])["ID"]),
            equal_to([1, 3, 5]),
            label="NaNRowsDead",
        )


def test_a_model_pattern_picks_the_newest_valid_model_at_launch(tmp_path):
    import os
    import shutil

    now = time.time()
    for name, age in (("old", 300), ("new", 200)):
        shutil.copytree(REPO / "models" / "mnist", tmp_path / name)
        os.utime(tmp_path / name / "saved_model.pb", (now - age, now - age))
    (tmp_path / "newest-broken").mkdir()
    (tmp_path / "newest-broken" / "saved_model.pb").write_bytes(b"\x0f\xff")
    argv = ["--input", str(SAMPLE), "--output", str(tmp_path / "predict")]
    _, args, options = parse(
        batch.TEMPLATE, [*argv, "--model_pattern", f"{tmp_path}/*/saved_model.pb"]
    )
    batch.preflight(args, options, on_dataflow=False)
    assert args.model == str(tmp_path / "new")


def test_metrics_prove_every_row_lands_once(tmp_path):
    source = tmp_path / "mixed.csv"
    source.write_text("ID,Image\n" + "\n".join(sample_lines(20) + list(BAD_LINES)) + "\n")
    _, args, options = parse(
        batch.TEMPLATE, ["--input", str(source), "--output", str(tmp_path / "predict")]
    )
    pipeline = beam.Pipeline(options=options)
    batch.build_pipeline(pipeline, args)
    result = pipeline.run()
    result.wait_until_finish()
    counters = {
        c.key.metric.name: c.committed
        for c in result.metrics().query(MetricsFilter().with_namespace("mnist"))["counters"]
    }
    assert counters == {"rows_read": 28, "predictions": 20, "dead_letters": 8, "csv_headers": 1}
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


@pytest.mark.parametrize(
    "args, message",
    [
        (["--input", "data/mnist_sample.csv"], "--output: is required"),
        (["--input", "nope/*.csv", "--output", "OUT"], "--input: expected an existing file"),
        (
            ["--input", "data/mnist_sample.csv", "--output", "OUT", "--model", "/nonexistent"],
            "--model: '/nonexistent': no model there",
        ),
        (
            ["--input", "data/mnist_sample.csv", "--output", "OUT", "--read_method", "FAST"],
            "--read_method: invalid choice",
        ),
        (
            [
                "--input",
                "data/mnist_sample.csv",
                "--output",
                "lab-project:MNIST.Predict",
                "--dead_letter",
                "lab-project.MNIST.Predict",
            ],
            "--dead_letter: must differ from --output",
        ),
        # Item 5: one place spelled two ways.
        (
            [
                "--input",
                "data/mnist_sample.csv",
                "--output",
                "TMP/x/m",
                "--dead_letter",
                "TMP/x/./m",
            ],
            "--dead_letter: must differ from --output",
        ),
        # Item 9: a folder as input, an output under a file.
        (["--input", "data", "--output", "OUT"], "--input: 'data' is a folder"),
        (
            ["--input", "data/mnist_sample.csv", "--output", "data/mnist_sample.csv/out"],
            "--output: cannot write 'data/mnist_sample.csv/out'",
        ),
        (["--input", "data/mnist_sample.csv", "--output", "TMP"], "is a folder; expected a file"),
        # Item 10: a colon that makes no table.
        (["--input", "data/mnist_sample.csv", "--output=a:b"], "--output: 'a:b' is neither"),
        # Item 13: a misspelt flag, with the likely one named.
        (["--input", "data/mnist_sample.csv", "--outptu", "OUT"], "--outptu -> --output?"),
        (["--input", "data/mnist_sample.csv", "--out", "OUT"], "unrecognized arguments: --out"),
        # Item 7: a model folder that only looks like one.
        (
            ["--input", "data/mnist_sample.csv", "--output", "OUT", "--model", "GARBAGE"],
            "--model: 'TMP/garbage': corrupt protobuf",
        ),
        (
            [
                "--input",
                "data/mnist_sample.csv",
                "--output",
                "OUT",
                "--model",
                "models/mnist/saved_model.pb",
            ],
            "--model: 'models/mnist/saved_model.pb' is a file",
        ),
        # Issue 18: a valid saved_model.pb without the weights beside it.
        (
            ["--input", "data/mnist_sample.csv", "--output", "OUT", "--model", "TMP/graph"],
            "--model: 'TMP/graph': the SavedModel has no variables/variables.index",
        ),
        # Issue 24: weights of random bytes beside a valid graph (the run used to crash with
        # five tracebacks and write nothing).
        (
            ["--input", "data/mnist_sample.csv", "--output", "OUT", "--model", "TMP/noise"],
            "--model: 'TMP/noise': variables/variables.index: not a tensor bundle index",
        ),
        (
            [
                "--input",
                "data/mnist_sample.csv",
                "--output",
                "OUT",
                "--model_pattern",
                "TMP/*/saved_model.pb",
            ],
            "--model_pattern: 'TMP/*/saved_model.pb' matches no valid model: 'TMP/",
        ),
        (
            ["--input", "data/mnist_sample.csv", "--output", "OUT", "--model", "models/mnist"]
            + ["--model_pattern", "models/*/saved_model.pb"],
            "--model_pattern: give model or model_pattern, not both",
        ),
    ],
)
def test_bad_parameters_fail_before_the_pipeline(tmp_path, args, message):
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "saved_model.pb").write_bytes(b"\x0f\xff not a SavedModel " * 10)
    (tmp_path / "graph").mkdir()
    (tmp_path / "graph" / "saved_model.pb").write_bytes(
        (REPO / "models" / "mnist" / "saved_model.pb").read_bytes()
    )
    shutil.copytree(REPO / "models" / "mnist", tmp_path / "noise")
    for path in (tmp_path / "noise" / "variables").iterdir():
        path.write_bytes(noise(path.stat().st_size))
    args = [
        a.replace("OUT", str(tmp_path / "out"))
        .replace("GARBAGE", str(garbage))
        .replace("TMP", str(tmp_path))
        for a in args
    ]
    completed = run_template("mnist_batch", args, check=False, timeout=120)
    assert completed.returncode == 2
    assert len(completed.stderr.strip().splitlines()) == 1, completed.stderr
    assert message.replace("TMP", str(tmp_path)) in completed.stderr


def test_cloud_locations_without_credentials_fail_at_once(tmp_path):
    """Item 11: no credentials anywhere is one line in seconds, not minutes of retries."""
    env = template_env({"HOME": str(tmp_path), "CLOUDSDK_CONFIG": str(tmp_path / "gcloud")})
    for args, name in (
        (["--input", "gs://lab-bucket/mnist.csv", "--output", "OUT"], "input"),
        (["--input", "data/mnist_sample.csv", "--output", "gs://lab-bucket/p"], "output"),
        (["--input", "lab-project:MNIST.Images", "--output", "OUT"], "input"),
    ):
        args = [a.replace("OUT", str(tmp_path / "out")) for a in args]
        started = time.monotonic()
        completed = run_template("mnist_batch", args, env=env, check=False, timeout=120)
        assert completed.returncode == 2, completed.stderr
        assert f"--{name}: " in completed.stderr and "no Google credentials" in completed.stderr
        assert len(completed.stderr.strip().splitlines()) == 1, completed.stderr
        assert time.monotonic() - started < 30


def test_hostile_csv_rows_end_in_predictions_or_dead_letters(tmp_path):
    """Items 2, 3, 10: a Latin-1 byte, no header, a wrong header mid-file, a file named like a
    table: every line ends in exactly one output, and the job exits 0."""
    good = [line.encode() for line in sample_lines(5)]
    latin1 = b'900,"' + b",".join([b"0.0"] * 783 + [b"0.5\xe9"]) + b'"'
    source = tmp_path / "mnist.v2.csv"  # named like a table: still a file
    source.write_bytes(
        b"\n".join([good[0], good[1], latin1, b"id;image", good[2], b"ID,Image", good[3], good[4]])
        + b"\n"
    )
    output = tmp_path / "results.v1.json"
    completed = run_template("mnist_batch", ["--input", str(source), "--output", str(output)])
    rows = [json.loads(line) for line in read_shards(output)]
    dead = [json.loads(line) for line in read_shards(tmp_path / "results.v1.json_errors")]
    assert sorted(r["ID"] for r in rows) == [0, 1, 2, 3, 4]  # the first row is not a header
    reasons = sorted(d["Error"] for d in dead)
    assert len(reasons) == 2, dead
    assert "ID must be an integer, got 'id;image'" in reasons[0]
    assert reasons[1].startswith("line is not UTF-8: invalid continuation byte")
    assert any("\\xe9" in d["Row"] for d in dead)
    assert completed.returncode == 0


def test_a_quoted_image_with_line_breaks_is_one_record(tmp_path):
    """Issue 18: RFC 4180 lets a quoted field hold line breaks; such a row is one record
    (predicted, counted once), and an unclosed quote costs its own line only."""
    good = sample_lines(6)
    image_id, image = good[0].split(",", 1)
    numbers = image.strip('"').split(",")
    wrapped = f'{image_id},"{",".join(numbers[:300])},\n{",".join(numbers[300:])}"'
    crlf = good[1].replace(",", ",\r\n", 5).replace(",\r\n", ",", 1)  # breaks inside the quotes
    source = tmp_path / "wrapped.csv"
    source.write_bytes(
        "\n".join(["ID,Image", wrapped, crlf, '900,"0.5', *good[2:]]).encode() + b"\n"
    )
    _, args, options = parse(
        batch.TEMPLATE, ["--input", str(source), "--output", str(tmp_path / "predict")]
    )
    pipeline = beam.Pipeline(options=options)
    batch.build_pipeline(pipeline, args)
    result = pipeline.run()
    result.wait_until_finish()
    counters = {
        c.key.metric.name: c.committed
        for c in result.metrics().query(MetricsFilter().with_namespace("mnist"))["counters"]
    }
    rows = [json.loads(line) for line in read_shards(tmp_path / "predict")]
    dead = [json.loads(line) for line in read_shards(tmp_path / "predict_errors")]
    assert sorted(r["ID"] for r in rows) == list(range(6))
    assert [(d["Row"], d["Error"].split(":")[0]) for d in dead] == [('900,"0.5', "unclosed quote")]
    assert counters == {"rows_read": 7, "predictions": 6, "dead_letters": 1, "csv_headers": 1}


def test_file_outputs_keep_nothing_of_an_earlier_run(tmp_path):
    """Issue 18: predictions and dead letters written to a prefix replace an earlier run's."""
    source = tmp_path / "small.csv"
    source.write_text("ID,Image\n" + "\n".join(sample_lines(3)) + "\n")
    stale = ["predict-00001-of-00002.json", "predict_errors-00003-of-00004.json"]
    for name in stale:
        (tmp_path / name).write_text('{"ID": 999}\n')
    run_template("mnist_batch", ["--input", str(source), "--output", str(tmp_path / "predict")])
    assert not {p.name for p in tmp_path.iterdir()} & set(stale)
    assert sorted(json.loads(line)["ID"] for line in read_shards(tmp_path / "predict")) == [0, 1, 2]
    assert read_shards(tmp_path / "predict_errors") == []


GOLDEN = REPO / "tests" / "integration" / "jobs" / "golden"


def test_outputs_are_byte_identical_to_the_recorded_ones(tmp_path):
    """The bundled sample plus BAD_LINES gives, line for line, the bytes the job wrote before
    its element type and formatting changed (golden/, recorded with the job of commit
    c22239d): predictions and dead letters alike. (Shards' order is the runner's: sorted.)"""
    source = tmp_path / "with_bad_rows.csv"
    source.write_text(SAMPLE.read_text() + "\n".join(BAD_LINES) + "\n")
    _, args, options = parse(
        batch.TEMPLATE, ["--input", str(source), "--output", str(tmp_path / "predict")]
    )
    pipeline = beam.Pipeline(options=options)
    batch.build_pipeline(pipeline, args)
    pipeline.run().wait_until_finish()
    for name in ("predict", "predict_errors"):
        written = b"".join(p.read_bytes() for p in sorted(tmp_path.glob(f"{name}-*-of-*.json")))
        recorded = (GOLDEN / f"mnist_sample_{name}.json").read_bytes()
        assert sorted(written.splitlines()) == recorded.splitlines(), name
