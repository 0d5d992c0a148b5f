"""pedestrian_depth against hostile input (issue 11, item 6): every number parameter is finite
and in range or refused in one line naming it, exit 2; and nothing the detector or the camera
constants produce can make a frame's result unpublishable."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.ml.inference.base import PredictionResult
from hypothesis import given
from hypothesis import strategies as st

from pipelines.core.launch import make_parser
from pipelines.core.params import ParameterError
from pipelines.core.regex import plain
from pipelines.jobs import pedestrian_depth as job
from pipelines.pedestrian import geometry, parameters
from pipelines.pedestrian.detector import Frame
from pipelines.pedestrian.frames import BadFrame, frame_result, result_message
from pipelines.pedestrian.options import camera_from_args, check_numbers, ranges
from pipelines.pedestrian.transforms import DEAD_LETTERS, FrameKey, _MeasureFn
from tests.support.processes import run_template
from tests.support.properties import PROPERTY

REQUIRED = [
    "--input=projects/lab-project/topics/camera_frames",
    "--output=projects/lab-project/topics/pedestrian_depth",
]
NUMBERS = [p for p in job.TEMPLATE.parameters if p.param_type == "NUMBER"]
FLOATS = [p.name for p in NUMBERS if p.type is not int]

RANGES = ranges(job.TEMPLATE.parameters)


def test_every_number_has_a_range_a_console_regex_and_a_default_inside_both():
    assert {p.name for p in NUMBERS} == set(RANGES)
    for p in NUMBERS:
        low, high = RANGES[p.name]
        assert p.kind and p.kind.accepts(p.default), p.name
        assert low <= p.type(p.default) <= high, p.name
        assert p.help_text.endswith(f"From {plain(low)} to {plain(high)}."), p.name
        # the regex is the range: its bounds in, the next values out (tests/unit/core/
        # test_grammar.py goes wide)
        assert p.kind.accepts(str(low)) and p.kind.accepts(str(high)), p.name
        step = 1 if p.type is int else 0.001
        assert not p.kind.accepts(str(high + step)), p.name
        assert not p.kind.accepts(f"{low - step:.3f}" if step < 1 else str(low - step)), p.name
    assert parameters.FORWARD_OFFSET_M.kind.accepts("-1.5")
    assert not parameters.MAX_FRAME_PIXELS.kind.accepts("1.5")


# ---- the parser: not a finite number -------------------------------------------------------


@pytest.mark.parametrize("name", FLOATS)
@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-Infinity", "1e999", "four"])
def test_parser_refuses_what_is_not_a_finite_number(name, text, capsys):
    with pytest.raises(SystemExit) as exit_:
        make_parser(job.TEMPLATE).parse_args([*REQUIRED, f"--{name}={text}"])
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"--{name}" in lines[0], lines


def test_parser_refuses_a_fractional_pixel_count(capsys):
    with pytest.raises(SystemExit):
        make_parser(job.TEMPLATE).parse_args([*REQUIRED, "--max_frame_pixels=nan"])
    assert "--max_frame_pixels" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, name",
    [
        (["--forward_offset_m=nan"], "forward_offset_m"),
        (["--horizon_row=5000"], "horizon_row"),
    ],
)
def test_template_refuses_a_bad_number_in_one_line_before_building(argv, name):
    completed = run_template("pedestrian_depth", [*REQUIRED, *argv], check=False, timeout=120)
    assert completed.returncode == 2, completed.stderr[-2000:]
    lines = completed.stderr.strip().splitlines()
    assert lines[-1].startswith("pedestrian_depth: error: ") and f"--{name}" in lines[-1]
    assert "Traceback" not in completed.stderr


# ---- preflight: in range -------------------------------------------------------------------


def defaults() -> dict:
    return {p.name: p.type(p.default) for p in NUMBERS}


def finite_or_in_range(name):
    low, high = RANGES[name]
    wide = st.floats(allow_nan=False, allow_infinity=False)
    near = st.floats(min_value=low - abs(high - low), max_value=high + abs(high - low))
    if name == "max_frame_pixels":
        return st.integers(min_value=-10, max_value=2 * high)
    return st.one_of(wide, near, st.sampled_from([low, high]))


@PROPERTY
@given(st.fixed_dictionaries({name: finite_or_in_range(name) for name in RANGES}))
def test_numbers_are_accepted_exactly_when_in_range(values):
    args = SimpleNamespace(**values)
    out_of_range = {name for name, (low, high) in RANGES.items() if not low <= values[name] <= high}
    too_low = values["camera_height_m"] <= values["pedestrian_height_m"]
    try:
        check_numbers(args, job.TEMPLATE.parameters)
    except ParameterError as error:
        assert error.name in out_of_range or (error.name == "camera_height_m" and too_low)
        assert "\n" not in str(error) and str(error).startswith(f"--{error.name}: ")
    else:
        assert not out_of_range and not too_low
        camera = camera_from_args(args, parameters.CAMERA_PARAMETERS)
        assert all(math.isfinite(getattr(camera, p.name)) for p in parameters.CAMERA_PARAMETERS)


@pytest.mark.parametrize(
    "name, value",
    [
        ("score_threshold", -0.1),
        ("score_threshold", 1.01),
        ("focal_px", 0.5),
        ("horizon_row", -1),
        ("horizon_row", 1081),
        ("camera_height_m", 0),
        ("forward_offset_m", -10.5),
        ("pedestrian_height_m", 0.1),
        ("pedestrian_height_m", 3),
        ("max_frame_pixels", 0),
        ("max_frame_pixels", 100_000_001),
        ("focal_px", math.nan),
    ],
)
def test_each_out_of_range_number_is_named(name, value):
    with pytest.raises(ParameterError) as error:
        check_numbers(SimpleNamespace(**{**defaults(), name: value}), job.TEMPLATE.parameters)
    assert error.value.name == name


def test_the_camera_must_be_above_the_pedestrians_head():
    with pytest.raises(ParameterError, match="above pedestrian_height_m") as error:
        check_numbers(
            SimpleNamespace(**{**defaults(), "camera_height_m": 1.2}), job.TEMPLATE.parameters
        )
    assert error.value.name == "camera_height_m"


# ---- a frame's result: always publishable, or a BadFrame -----------------------------------


def any_number():
    return st.one_of(
        st.floats(),
        st.integers(min_value=-(10**400), max_value=10**400),
        st.integers(min_value=0, max_value=3000),
        st.text(max_size=3),
        st.none(),
    )


def mostly(valid, odd):
    # Nine draws in ten are plausible, so that most examples reach the geometry and the
    # JSON; the rest are whatever a broken detector might return.
    return st.integers(0, 9).flatmap(lambda i: odd if i == 0 else valid)


def cameras():
    in_range = {p.name: st.floats(*RANGES[p.name]) for p in parameters.CAMERA_PARAMETERS}
    # Any floats, infinities and NaN included, except where the model itself refuses them.
    positive = st.floats(min_value=0, exclude_min=True)
    wild = {p.name: st.floats() for p in parameters.CAMERA_PARAMETERS}
    wild.update(focal_px=positive, pedestrian_height_m=positive)
    return mostly(
        st.builds(geometry.CameraModel, **in_range), st.builds(geometry.CameraModel, **wild)
    )


@st.composite
def frames(draw):
    width = draw(mostly(st.integers(1, 4000), any_number()))
    height = draw(mostly(st.integers(1, 2200), any_number()))
    detections = []
    for _ in range(draw(st.integers(0, 4))):
        if type(width) is int and type(height) is int and 0 < width <= 4000 and 0 < height <= 4000:
            xs, ys = st.floats(0, width), st.floats(0, height)
            inside = st.tuples(
                st.lists(xs, min_size=2, max_size=2).map(sorted),
                st.lists(ys, min_size=2, max_size=2).map(sorted),
            ).map(lambda xy: [xy[0][0], xy[1][0], xy[0][1], xy[1][1]])
        else:
            inside = st.lists(st.integers(0, 3000), min_size=4, max_size=4)
        box = draw(mostly(inside, st.lists(any_number(), max_size=5)))
        detections.append((box, draw(mostly(st.floats(0, 1), any_number()))))
    return width, height, detections


@PROPERTY
@given(name=mostly(st.text(max_size=40), st.text()), frame=frames(), camera=cameras())
def test_a_result_is_valid_json_or_a_bad_frame(name, frame, camera):
    width, height, detections = frame
    try:
        message = result_message(frame_result(name, width, height, detections, camera))
    except BadFrame as error:
        assert str(error)
        return

    def refuse(constant):
        raise AssertionError(f"{constant} in the output")

    record = json.loads(message.data.decode("utf-8"), parse_constant=refuse)
    assert message.attributes == {"name": name} and record["name"] == name
    assert len(record["pedestrians"]) == len(detections)
    for pedestrian in record["pedestrians"]:
        assert 0 <= pedestrian["score"] <= 1
        assert (pedestrian["distance_m"] is None) == (pedestrian["distance_method"] is None)


def test_non_finite_geometry_becomes_no_distance():
    # Constants no preflight accepts, as a camera built in code could hold them.
    wild = geometry.CameraModel(focal_px=1e-300, forward_offset_m=math.inf)
    record = frame_result("x", 1920, 1080, [([700, 400, 800, 700], 0.9)], wild)
    assert record["pedestrians"][0]["distance_m"] is None
    json.loads(result_message(record).data)


@pytest.mark.parametrize(
    "detections, reason",
    [
        ([([10, 10, 20, 40], math.nan)], "score that is not in [0, 1]"),
        ([([10, 10, 20, 4000], 0.9)], "outside the 64x48 frame"),
        ([([10, math.inf, 20, 40], 0.9)], "outside the 64x48 frame"),
    ],
)
def test_a_detector_fault_is_a_dead_letter_not_a_crash(detections, reason):
    # Whatever the model returns for a frame, as a misbehaving model might.
    message = PubsubMessage(b"the frame", {"name": "odd.png"})
    frame = Frame.from_array(np.zeros((48, 64, 3), np.uint8))
    fn = _MeasureFn(geometry.DEFAULT_CAMERA)
    [output] = list(fn.process((FrameKey(message, "odd.png"), PredictionResult(frame, detections))))
    assert output.tag == DEAD_LETTERS
    letter = output.value.message
    assert letter.attributes["error_stage"] == "detect"
    assert reason in letter.attributes["error"]
    assert letter.data == b"the frame"  # the input message, answered
