"""The tools' readers of what they did not make, over hostile forms (hypothesis): the
consumers' messages, the lab's Labels.csv, the MNIST data file, gcloud's rendered spec and
the metadata file register_template reads, the files generate.py compares. Each gives a
value or one line; no exception escapes. docs/boundaries.md lists them."""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.mnist.records import PROBABILITY_FIELDS
from tests.support.hostile import JSON, TOO_DEEP, documents, hostile_bytes, one_line
from tools import (
    fit_camera,
    frame_consumer,
    generate,
    mnist_consumer,
    mnist_data,
    mnist_producer,
    register_template,
)

# Files written per example: hypothesis's own check would flag the fixture's reuse.
FILES = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


# ---- the consumers' messages ---------------------------------------------------------------

PREDICTION = {"ID": 7, **{field: 0.1 for field in PROBABILITY_FIELDS}}
RESULT = {
    "name": "A_001.png",
    "width": 400,
    "height": 300,
    "pedestrians": [{"box": [1, 2, 30, 60], "score": 0.9, "distance_m": 4.2}],
}


def near(document: dict):
    """`document` with one field replaced by any JSON, or dropped."""
    return st.builds(
        lambda key, value, drop: {
            **{k: v for k, v in document.items() if not (drop and k == key)},
            **({} if drop else {key: value}),
        },
        st.sampled_from(list(document)),
        JSON,
        st.booleans(),
    ).map(lambda d: json.dumps(d).encode("utf-8"))


pedestrians = st.lists(
    st.dictionaries(st.sampled_from(["box", "score", "distance_m", "x"]), JSON, max_size=4) | JSON,
    max_size=3,
)


@given(hostile_bytes(("ID", *PROBABILITY_FIELDS)) | near(PREDICTION) | st.just(b""))
def test_the_mnist_consumer_shows_a_prediction_or_skips_it_in_one_line(data):
    shown = []
    skipped = mnist_consumer.handle(data, lambda p: shown.append(mnist_consumer.summarize(p)))
    if skipped is not None:
        one_line(skipped)
        assert not shown
        return
    ((image_id, digit, confidence),) = shown
    assert isinstance(image_id, int) and 0 <= digit <= 9 and 0 <= confidence <= 1


def test_the_mnist_consumer_reads_the_jobs_prediction():
    data = json.dumps(PREDICTION | {"P3": 0.5}).encode()
    shown = []
    assert mnist_consumer.handle(data, lambda p: shown.append(mnist_consumer.summarize(p))) is None
    assert shown == [(7, 3, 0.5)]


@given(
    hostile_bytes(("name", "pedestrians"))
    | near(RESULT)
    | pedestrians.map(lambda p: json.dumps(RESULT | {"pedestrians": p}).encode())
)
def test_the_frame_consumer_describes_a_result_or_skips_it_in_one_line(data):
    shown = []
    skipped = mnist_consumer.handle(data, lambda r: shown.append(frame_consumer.describe(r)))
    if skipped is not None:
        one_line(skipped)
        return
    (lines,) = shown
    assert all(isinstance(line, str) and "\n" not in line for line in lines)


def png_bytes(width: int, height: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (90, 90, 90)).save(out, format="PNG")
    return out.getvalue()


FRAME = png_bytes(400, 300)


@FILES
@given(
    data=st.binary(max_size=100)
    | st.builds(lambda cut: FRAME[:cut], st.integers(0, len(FRAME)))
    | st.just(FRAME)
)
def test_a_frame_file_is_drawn_or_an_oserror_the_consumer_reports(tmp_path, data):
    frame, out = tmp_path / "A_001.png", tmp_path / "drawn" / "A_001.png"
    frame.write_bytes(data)
    try:
        frame_consumer.draw(RESULT, frame, out)
    except OSError as error:  # main prints "(not drawn: ...)" and goes on
        one_line(str(error))
        return
    assert out.read_bytes()[:4] == b"\x89PNG"


# ---- the lab's mnist.csv (the producer's rows, the consumer's --csv for --grid) ----------

mnist_cells = st.sampled_from(["7", " 8 ", "-1", "1e3", "x", "", "0.5," * 783 + "0.5"]) | st.text(
    max_size=8
)
mnist_csvs = (
    st.binary(max_size=300)
    | st.lists(st.lists(mnist_cells, max_size=3), max_size=5).map(
        lambda rows: csv_text(rows, ["ID", "Image"])
    )
    | st.builds(lambda good, tail: good + tail, st.just(b"ID,Image\n7,0\n"), st.binary(max_size=40))
)


@FILES
@given(data=mnist_csvs)
def test_the_producer_publishes_each_row_as_json_or_stops_in_one_line(tmp_path, data, capsys):
    path = tmp_path / "mnist.csv"
    path.write_bytes(data)
    rows = list(mnist_producer.read_rows(path))
    for row in rows:
        assert set(row) == {"ID", "Image"}
        json.loads(mnist_producer.encode(row))
    err = capsys.readouterr().err
    assert err.count("\n") <= 1


@FILES
@given(data=mnist_csvs, wanted=st.sets(st.integers(-2, 9), max_size=4))
def test_the_consumers_grid_images_are_the_rows_the_job_reads(tmp_path, data, wanted, capsys):
    path = tmp_path / "mnist.csv"
    path.write_bytes(data)
    images = mnist_consumer.load_images(path, wanted)
    assert set(images) <= wanted
    assert all(pixels.shape == (784,) for pixels in images.values())
    assert capsys.readouterr().err.count("\n") <= 1


# ---- the lab's Labels.csv (tools/fit_camera.py) ---------------------------------------------

COLUMNS = (*fit_camera.LOCATION_COLUMNS, *fit_camera.BOX_COLUMNS, "Occluded_Image_View")
cells = (
    st.sampled_from(["", "nan", "inf", "-1e400", "1e308", "12.5", "x", "0"])
    | st.text(max_size=6)
    | st.floats().map(repr)
)


def csv_text(rows: list[list[str]], header=COLUMNS) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8", errors="surrogatepass")


labels_files = (
    st.binary(max_size=300)
    | st.lists(st.lists(cells, max_size=len(COLUMNS) + 1), max_size=4).map(csv_text)
    | st.lists(st.lists(cells, max_size=4), max_size=3).map(lambda rows: csv_text(rows, ["a", "b"]))
)


@FILES
@given(data=labels_files)
def test_labels_are_samples_or_one_line_naming_the_file(tmp_path, data):
    path = tmp_path / "Labels.csv"
    path.write_bytes(data)
    try:
        samples = fit_camera.load_labels(path)
    except ValueError as error:
        one_line(str(error))
        assert str(path) in str(error)
        return
    for sample in samples:
        assert all(math.isfinite(v) for v in sample.box) and math.isfinite(sample.distance_m)


def test_a_labels_file_the_tool_cannot_read_is_one_line_and_exit_2(tmp_path, capsys):
    path = tmp_path / "Labels.csv"
    path.write_bytes(csv_text([["1"] * len(COLUMNS)])[:-5] + b"\xff\n")
    with pytest.raises(SystemExit) as exited:
        fit_camera.main(["--labels", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2 and err[-1].endswith(f"--labels: {path}: not UTF-8 text")


# ---- the MNIST data file (tools/mnist_data.py) ---------------------------------------------

array_parts = st.one_of(
    st.builds(
        lambda rows, fill: np.full((rows, 784), fill, np.float32),
        st.integers(0, 2),
        st.floats(width=32),
    ),
    st.builds(lambda n, v: np.full(n, v, np.int64), st.integers(0, 3), st.integers(-2, 12)),
    JSON,
)
splits = st.lists(st.tuples(array_parts, array_parts) | JSON, max_size=4).map(tuple)
pickles = st.one_of(
    splits.map(lambda value: pickle.dumps(value, protocol=4)),
    JSON.map(lambda value: pickle.dumps(value, protocol=4)),
    st.binary(max_size=200),
)
mnist_files = st.one_of(
    pickles.map(gzip.compress),
    st.binary(max_size=200),
    pickles.map(lambda data: gzip.compress(data)[: max(1, len(data) // 2)]),
)


@FILES
@given(data=mnist_files)
def test_the_mnist_data_file_is_three_splits_or_one_line_naming_it(tmp_path, data):
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(data)
    try:
        loaded = mnist_data.load_mnist(path)
    except mnist_data.NotMnistData as error:
        one_line(str(error))
        assert str(path) in str(error)
        return
    for split in loaded:
        assert split.images.shape[1:] == (784,) and len(split.images) == len(split.labels)
        assert np.all((split.images >= 0) & (split.images <= 1))
        assert np.all((split.labels >= 0) & (split.labels <= 9))


def test_mnist_data_of_the_right_form_loads(tmp_path):
    images = np.full((2, 784), 0.5, np.float32)
    labels = np.array([3, 9], np.int64)
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(((images, labels),) * 3, protocol=4)))
    loaded = mnist_data.load_mnist(path)
    assert [split.labels.tolist() for split in loaded] == [[3, 9]] * 3
    assert loaded.test.images.shape == (2, 784)


# ---- gcloud's rendered spec and the metadata file (tools/register_template.py) ------------

SPEC = {"image": "h/p:t", "sdkInfo": {"language": "PYTHON"}, "metadata": {"name": "x"}}


@given(
    st.text(max_size=100)
    | JSON.map(json.dumps)
    | JSON.map(lambda v: json.dumps(json.dumps(v)))
    | near(SPEC).map(lambda d: json.dumps(d.decode()))
    | TOO_DEEP.map(bytes.decode)
    | TOO_DEEP.map(lambda d: json.dumps(d.decode()))
)
def test_a_rendered_spec_is_a_spec_or_one_line_saying_its_shape(stdout):
    try:
        spec = register_template.read_rendered_spec(stdout)
    except ValueError as error:
        one_line(str(error))
        return
    assert isinstance(spec, dict) and isinstance(spec["metadata"], dict)


def test_gcloud_printing_the_spec_as_a_json_string_is_read():
    assert register_template.read_rendered_spec(json.dumps(json.dumps(SPEC))) == SPEC


DEEP = "[" * 100_000


@pytest.mark.parametrize(
    ("stdout", "reason"),
    [
        ('{"a": ', "not JSON: Expecting value at position 6"),
        (DEEP, "JSON nested too deep"),
        ("[]", "a JSON list, not the spec as a JSON string"),
        (json.dumps('{"a": '), "not JSON: Expecting value at position 6"),
        (json.dumps(DEEP), "JSON nested too deep"),
        (json.dumps("[]"), "not a JSON object with a metadata object"),
    ],
)
def test_a_rendered_spec_that_is_no_spec_says_why(stdout, reason):
    # Both layers of gcloud's answer (a JSON string, then the document it holds) read alike.
    with pytest.raises(ValueError) as raised:
        register_template.read_rendered_spec(stdout)
    assert str(raised.value) == reason


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"name": ', "not JSON: Expecting value at position 9"),
        (DEEP.encode(), "JSON nested too deep"),
        (b"\xff{}", "not UTF-8 text"),
        (b'{"label": "x"}', "not a template's metadata (an object with a name)"),
    ],
)
def test_a_metadata_file_that_is_no_metadata_says_why_naming_it(tmp_path, data, reason):
    path = tmp_path / "metadata.json"
    path.write_bytes(data)
    with pytest.raises(ValueError) as raised:
        register_template.read_metadata(path)
    assert str(raised.value) == f"{path}: {reason}"


def test_register_template_imports_only_the_standard_library():
    """Cloud Build runs `python3 tools/register_template.py` in gcloud's image: nothing of the
    repository's packages (pipelines.core.json_text included) or of .venv is importable."""
    import ast
    import sys
    from pathlib import Path

    tree = ast.parse(Path(register_template.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name for n in ast.walk(tree) if isinstance(n, ast.Import) for alias in n.names
    }
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    assert imported, "the check must see the file's imports"
    outside = {name for name in imported if name.split(".")[0] not in sys.stdlib_module_names}
    assert outside <= {"__future__"}, outside


@FILES
@given(data=hostile_bytes(("name", "parameters")) | documents(("name",), st.text(max_size=5)))
def test_a_metadata_file_is_a_templates_metadata_or_one_line(tmp_path, data):
    path = tmp_path / "metadata.json"
    path.write_bytes(data)
    try:
        metadata = register_template.read_metadata(path)
    except ValueError as error:
        one_line(str(error))
        return
    assert isinstance(metadata["name"], str)


# ---- the files generate.py compares --------------------------------------------------------


def test_generate_check_takes_a_broken_file_as_out_of_date(tmp_path, monkeypatch, capsys):
    target = tmp_path / "metadata" / "wordcount.json"
    target.parent.mkdir()
    target.write_bytes(b"\xff\xfe not UTF-8")
    monkeypatch.setattr(generate, "ROOT", tmp_path)
    monkeypatch.setattr(generate, "artifacts", lambda: {target: "{}\n"})
    monkeypatch.setattr(generate, "orphans", lambda: [])
    assert generate.main(["--check"]) == 1
    assert "out of date: metadata/wordcount.json" in capsys.readouterr().out
    assert target.read_bytes() == b"\xff\xfe not UTF-8"
