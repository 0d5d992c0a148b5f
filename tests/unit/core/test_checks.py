"""The launch checks' pure parts: which values are tables or files, and one place spelled two
ways; plus the refusal of flags that neither the job nor Beam takes."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.core import checks
from pipelines.core.checks import Place, canonical_location, check_distinct, place_of
from pipelines.core.launch import unknown_options
from pipelines.core.params import ParameterError
from tests.support.properties import PROPERTY


@pytest.mark.parametrize(
    "value, kind",
    [
        ("lab-project:MNIST.Images", Place.TABLE),
        ("lab-project.MNIST.Images", Place.TABLE),
        ("example.com:lab-project:MNIST.Predict", Place.TABLE),
        ("gs://lab-bucket/mnist.csv", Place.GCS),
        ("mnist.v2.csv", Place.LOCAL),  # project "mnist" is too short, and .csv is a file
        ("results.v1.json", Place.LOCAL),  # a valid table name, but .json says file
        ("lab-project.MNIST.Images.csv", Place.LOCAL),
        ("./lab-project:MNIST.Images", Place.LOCAL),
        ("out/predict", Place.LOCAL),
        ("predict", Place.LOCAL),
    ],
)
def test_the_location_rule(value, kind):
    assert place_of(value) is kind


@pytest.mark.parametrize("value", ["a:b", "p:MNIST.Predict", "lab-project:MNIST", "x:y.z"])
def test_a_colon_that_makes_no_table_is_refused(value):
    with pytest.raises(ValueError, match="neither a BigQuery table"):
        place_of(value)


@PROPERTY
@given(st.text(max_size=60))
def test_every_value_has_one_kind_or_one_reason(value):
    canonical_location(value)  # total: a value that is no location compares as a path
    try:
        kind = place_of(value)
    except ValueError as error:
        assert (":" in value and "./" in str(error)) or "control character" in str(error)
        return
    assert kind in Place
    assert canonical_location(value) == canonical_location(value)
    if kind is Place.TABLE:
        assert canonical_location(value).startswith("bigquery:")


@PROPERTY
@given(st.lists(st.sampled_from(["a", "b", ".", "c"]), min_size=1, max_size=6))
def test_local_paths_are_compared_after_normalisation(parts):
    plain = os.path.join("/tmp/x", *[p for p in parts if p != "."])
    dotted = os.path.join("/tmp/x", *parts)
    assert canonical_location(plain) == canonical_location(dotted)
    with pytest.raises(ParameterError, match="--dead_letter: must differ from --output"):
        check_distinct(("output", plain), ("dead_letter", dotted))


def test_tables_in_either_spelling_are_one_place_and_gcs_names_are_literal():
    assert canonical_location("lab-project:MNIST.Predict") == canonical_location(
        "lab-project.MNIST.Predict"
    )
    assert canonical_location("gs://b/x/./m") != canonical_location("gs://b/x/m")
    check_distinct(
        ("output", "lab-project:MNIST.Predict"), ("dead_letter", "lab-project:MNIST.Predict_errors")
    )


def test_a_link_is_the_place_it_points_to(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(ParameterError, match="--output2"):
        check_distinct(
            ("output", str(tmp_path / "real" / "o")), ("output2", str(tmp_path / "link" / "o"))
        )


def test_credentials_are_not_asked_of_emulators_or_local_paths(monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:1")
    checks.check_credentials("input", "gs://lab-bucket/x")
    checks.check_credentials("input", "data/x.csv")


@pytest.mark.parametrize(
    "args, unknown",
    [
        (
            [
                "--runner=DirectRunner",
                "--project=p",
                "--temp_location=gs://b/t",
                "--experiments=use_runner_v2",
                "--sdk_container_image=i",
                "--labels=a=b",
                "--service_account_email=x@y",
                "--staging_location=gs://b/s",
            ],
            [],
        ),
        (["--outptu=x"], ["--outptu=x"]),
        (["--temp_locatio=gs://b/t"], ["--temp_locatio=gs://b/t"]),  # no abbreviations
        (["stray"], ["stray"]),
    ],
)
def test_unknown_options_are_what_beam_does_not_take(args, unknown):
    assert unknown_options(args) == unknown


@pytest.mark.parametrize(
    "runner, refused",
    [
        ("PortableRunner", True),
        ("FlinkRunner", True),
        ("DirectRunner", False),
        ("apache_beam.runners.direct.direct_runner.DirectRunner", False),
    ],
)
def test_stream_jobs_refuse_runners_without_a_pubsub_source(runner, refused, capsys):
    from pipelines.core.launch import parse
    from pipelines.jobs import mnist_stream as stream

    argv = [
        "--input=projects/lab-project/topics/in",
        "--output=projects/lab-project/topics/out",
        f"--runner={runner}",
    ]
    if not refused:
        parse(stream.TEMPLATE, argv)
        return
    with pytest.raises(SystemExit) as exit_:
        parse(stream.TEMPLATE, argv)
    assert exit_.value.code == 2
    assert f"--runner: {runner} cannot run a streaming job" in capsys.readouterr().err
