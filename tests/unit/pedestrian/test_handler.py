"""pipelines.pedestrian.handler and the composite around it: the detector behind RunInference,
loaded once per process, a batch of frames in one model call, and a frame the detector fails
on answered by a dead letter (stage detect) with the reason it always had."""

from __future__ import annotations

import io
import logging
import traceback
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.internal import pickler
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from pipelines.core.models import MODELS_DIR_ENV
from pipelines.pedestrian.detector import Frame, PedestrianDetector, decode_frame
from pipelines.pedestrian.frames import failure_reason, frame_result, reported_failure_reason
from pipelines.pedestrian.handler import PedestrianModelHandler
from pipelines.pedestrian.transforms import METRICS_NAMESPACE, DetectPedestrians
from tests.support import markers
from tests.support.properties import PROPERTY

LOADED = "pedestrian detector loaded from"


class CountingDetector:
    """Stands in for PedestrianDetector without TensorFlow: one box around the white pixels,
    an error on an all-red frame. Counts loads and model calls class-wide, since Beam runs
    pickled copies."""

    graph_path = Path("counting.pb")
    loads = 0
    batches: list[int] = []

    def load(self):
        CountingDetector.loads += 1
        return self

    def load_decoder(self):
        return self

    # Full scale, so that the boxes are the frame's own pixels.
    decode = staticmethod(decode_frame)

    def detect_batch(self, frames):
        CountingDetector.batches.append(len(frames))
        return [self._detect(np.asarray(frame.image)) for frame in frames]

    @staticmethod
    def _detect(rgb):
        if (rgb[..., 0] == 255).all() and (rgb[..., 1] == 0).all():
            raise RuntimeError("model exploded")
        ys, xs = np.nonzero(rgb.min(axis=2) == 255)
        if not len(xs):
            return []
        return [([int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1], 0.8)]


@pytest.fixture(autouse=True)
def counts():
    CountingDetector.loads = 0
    CountingDetector.batches = []


def picture(width, height, box=None, colour=(0, 0, 0)) -> np.ndarray:
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[...] = colour
    if box:
        x1, y1, x2, y2 = box
        rgb[y1:y2, x1:x2] = 255
    return rgb


def png(rgb) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


RED = picture(12, 10, colour=(255, 0, 0))


def test_handler_contract():
    handler = PedestrianModelHandler(PedestrianDetector())
    # One frame (8 tiles) per model call: batching frames costs the same CPU per tile.
    assert handler.batch_elements_kwargs() == {"min_batch_size": 1, "max_batch_size": 1}
    assert handler.share_model_across_processes() is False
    assert handler.get_metrics_namespace() == "BeamML_Pedestrian"
    with pytest.raises(ValueError, match="inference_args"):
        handler.validate_inference_args({"x": 1})
    wider = PedestrianModelHandler(PedestrianDetector(), max_batch_frames=4)
    assert wider.batch_elements_kwargs() == {"min_batch_size": 1, "max_batch_size": 4}
    frame = Frame.from_array(picture(20, 10))
    assert handler.get_num_bytes([frame, frame]) == 2 * 20 * 10 * 3


def test_a_batch_is_one_model_call_answering_each_frame_in_order():
    handler = PedestrianModelHandler(CountingDetector(), max_batch_frames=3)
    model = handler.load_model()
    frames = [
        Frame.from_array(picture(40, 30, (5, 2, 9, 20))),
        Frame.from_array(picture(40, 30)),
        Frame.from_array(picture(50, 30, (30, 1, 33, 29))),
    ]
    results = list(handler.run_inference(frames, model))
    assert [r.example for r in results] == frames
    assert [r.inference for r in results] == [
        [([5, 2, 9, 20], 0.8)],
        [],
        [([30, 1, 33, 29], 0.8)],
    ]
    assert CountingDetector.batches == [3] and CountingDetector.loads == 1


def test_runinference_loads_the_detector_once_and_batches_frames(caplog):
    boxes = {f"f{i}": (i, 1, i + 3, 9) for i in range(7)}
    keyed = [(name, Frame.from_array(picture(20, 10, box))) for name, box in boxes.items()]
    handler = KeyedModelHandler(PedestrianModelHandler(CountingDetector(), max_batch_frames=3))
    with caplog.at_level(logging.INFO, logger="pipelines.pedestrian.handler"):
        with TestPipeline() as p:
            found = (
                p
                | beam.Create(keyed)
                | RunInference(handler)
                | beam.MapTuple(lambda name, result: (name, result.inference))
            )
            assert_that(
                found, equal_to([(name, [(list(box), 0.8)]) for name, box in boxes.items()])
            )
    assert CountingDetector.loads == 1
    assert sum(CountingDetector.batches) == len(keyed)
    assert max(CountingDetector.batches) <= 3
    assert len(CountingDetector.batches) < len(keyed)  # some model call had several frames
    loaded = [r.getMessage() for r in caplog.records if LOADED in r.getMessage()]
    assert len(loaded) == 1 and "counting.pb" in loaded[0], loaded


def counter(result, name: str) -> int:
    metrics = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))
    return sum(c.committed for c in metrics["counters"] if c.key.metric.name == name)


def test_a_frame_the_detector_fails_on_is_its_own_dead_letter_of_stage_detect():
    good = {
        "one.png": picture(30, 20, (3, 2, 8, 19)),
        "two.png": picture(16, 8),
    }
    messages = [PubsubMessage(png(rgb), {"name": name}) for name, rgb in good.items()]
    messages.insert(1, PubsubMessage(png(RED), {"name": "red.png"}))
    messages.append(PubsubMessage(b"not an image", {"name": "text"}))
    p = TestPipeline()
    results, dead = p | beam.Create(messages) | DetectPedestrians(CountingDetector())
    assert_that(
        results | beam.Map(lambda outcome: outcome.message.attributes["name"]),
        equal_to(list(good)),
        label="Results",
    )
    assert_that(
        dead
        | beam.Map(
            lambda outcome: (
                outcome.message.attributes["name"],
                outcome.message.attributes["error_stage"],
                outcome.message.attributes["error"],
            )
        ),
        equal_to(
            [
                ("red.png", "detect", "unexpected RuntimeError: model exploded"),
                ("text", "decode", "data is not a PNG or JPEG image"),
            ]
        ),
        label="DeadLetters",
    )
    result = p.run()
    result.wait_until_finish()
    assert counter(result, "frames_read") == 4
    assert counter(result, "frames_processed") == 2 and counter(result, "dead_letters") == 2
    assert counter(result, "pedestrians_found") == 1
    assert CountingDetector.loads == 1


def test_the_default_graph_is_looked_up_where_the_model_loads(monkeypatch, tmp_path):
    monkeypatch.delenv(MODELS_DIR_ENV, raising=False)
    pickled = pickler.dumps(PedestrianModelHandler(PedestrianDetector()))
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))  # the workers' image
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        pickler.loads(pickled).load_model()
    chosen = PedestrianModelHandler(PedestrianDetector(tmp_path / "mine.pb"))
    with pytest.raises(FileNotFoundError, match="mine.pb"):
        pickler.loads(pickler.dumps(chosen)).load_model()


# ---- the reason of a failed inference -------------------------------------------------------


class Exploded(RuntimeError):
    pass


class OddOutput(ValueError):
    pass


def as_beam_reports(error: BaseException):
    """What RunInference's exception handling hands over for `error` raised in a batch."""
    try:
        raise error
    except BaseException as raised:  # noqa: BLE001
        return type(raised), repr(raised), traceback.format_exception(raised)


@PROPERTY
@given(
    kind=st.sampled_from([RuntimeError, ValueError, KeyError, Exploded, OddOutput, MemoryError]),
    text=st.text(),
)
def test_a_failed_inference_reads_as_the_frame_failing_alone(kind, text):
    error = kind(text)
    assert reported_failure_reason(as_beam_reports(error)) == failure_reason(error)


def test_failure_reasons():
    assert reported_failure_reason(as_beam_reports(RuntimeError("boom"))) == (
        "unexpected RuntimeError: boom"
    )
    assert reported_failure_reason(as_beam_reports(OddOutput("no"))) == "no"
    assert reported_failure_reason(as_beam_reports(Exploded())) == "unexpected Exploded: "
    assert reported_failure_reason(RuntimeError("direct")) == "unexpected RuntimeError: direct"


# ---- the real detector ---------------------------------------------------------------------

DESIGN = markers.DESIGN


@markers.needs_detector
@markers.needs_design
def test_one_model_call_for_two_frames_finds_what_each_alone_finds():
    handler = PedestrianModelHandler(PedestrianDetector(), max_batch_frames=2)
    detector = handler.load_model()
    try:
        frames = [detector.decode((DESIGN / n).read_bytes()) for n in ("A_001.png", "B_001.png")]
        together = [r.inference for r in handler.run_inference(frames, detector)]
        alone = [detector.detect(frame) for frame in frames]
    finally:
        detector.close()
    assert len(together[0]) == len(alone[0]) == 1 and together[1] == alone[1] == []
    (box, score), (alone_box, alone_score) = together[0][0], alone[0][0]
    assert box == alone_box and score == pytest.approx(alone_score, abs=1e-4)
    record = frame_result("A_001.png", 1920, 1080, together[0])
    assert record["pedestrians"][0]["distance_m"] is not None
