"""The detector keeps today's detections on the lab's four frames.

reference_detections.json holds the boxes and distances the detector gave before it ran on
TensorFlow Lite (the graph on TensorFlow, commit named in the file). A faster way of running
the same detector must find the same pedestrians: every box within IoU 0.9 of its reference
and every distance within 0.05 m. To regenerate (only when the detections are meant to
change, e.g. a new model): run each frame through `PedestrianDetector().decode`, `detect`
and `frames.frame_result`, and write box, score and distance_m of each pedestrian.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from pipelines.pedestrian import detector as det
from pipelines.pedestrian import ssd
from pipelines.pedestrian.detector import PedestrianDetector, make_tile_batch
from pipelines.pedestrian.frames import frame_result
from pipelines.pedestrian.tiling import iou
from tests.support import markers

DESIGN = markers.DESIGN
REFERENCE = json.loads((Path(__file__).parent / "reference_detections.json").read_text())
MIN_IOU = 0.9
MAX_DISTANCE_CHANGE_M = 0.05

pytestmark = [markers.needs_detector, markers.needs_design]


@pytest.fixture(scope="module")
def detector():
    d = PedestrianDetector(intra_op_threads=1).load()
    yield d
    d.close()


def test_the_reference_covers_the_lab_frames():
    assert sorted(REFERENCE["frames"]) == ["A_001.png", "A_002.png", "A_003.png", "B_001.png"]
    assert sum(len(found) for found in REFERENCE["frames"].values()) == 3


@pytest.mark.parametrize("name", sorted(REFERENCE["frames"]))
def test_the_job_detector_finds_the_reference_pedestrians(detector, name):
    assert detector.lite  # the job's default is what is checked
    frame = detector.decode((DESIGN / name).read_bytes())
    result = frame_result(name, frame.width, frame.height, detector.detect(frame))
    found, reference = result["pedestrians"], REFERENCE["frames"][name]
    assert len(found) == len(reference), f"{name}: {found} vs {reference}"
    for pedestrian, ref in zip(found, reference):
        assert iou(pedestrian["box"], ref["box"]) >= MIN_IOU, f"{name}: {pedestrian} vs {ref}"
        assert abs(pedestrian["distance_m"] - ref["distance_m"]) <= MAX_DISTANCE_CHANGE_M


def test_lite_outputs_are_the_graphs_down_to_the_lowest_score(detector):
    # Score threshold 0: all 100 detections of every tile, not only the few the job keeps,
    # so that the anchors, box coder, suppression, ordering and clipping are all compared.
    frame = detector.decode((DESIGN / "A_002.png").read_bytes())
    batch = make_tile_batch(frame, detector.windows(frame.width, frame.height))
    detector.score_threshold = 0.0
    graph = PedestrianDetector(lite=False, intra_op_threads=1, inter_op_threads=1).load()
    try:
        (num, scores, boxes, classes), expected = detector.run_model(batch), graph.run_model(batch)
    finally:
        detector.score_threshold = det.DEFAULT_SCORE_THRESHOLD
        graph.close()
    assert num.tolist() == expected[0].tolist() == [100.0] * len(batch)
    np.testing.assert_allclose(scores, expected[1], atol=1e-5)
    np.testing.assert_allclose(boxes, expected[2], atol=1e-5)
    assert (classes == expected[3]).all()


def test_the_network_in_two_parts_gives_each_tiles_outputs_bit_for_bit(detector):
    # LiteModel runs the network cut in two, the tail on several tiles' features at once.
    # Batching must change nothing: every tile's outputs are the whole network's on that
    # tile alone, for any number of tiles (11: a full tail batch and a short one; then 1).
    import tensorflow as tf

    frame = detector.decode((DESIGN / "A_002.png").read_bytes())
    tiles = make_tile_batch(frame, detector.windows(frame.width, frame.height))
    tiles = np.concatenate([tiles, tiles[:3]])
    assert len(tiles) > det.TAIL_BATCH
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(detector.graph_path.read_bytes())
    whole = det._interpreter(
        det.convert_part(
            graph_def,
            ssd.FEATURES_INPUT,
            [1, det.INPUT_SIZE, det.INPUT_SIZE, 3],
            [ssd.BOX_ENCODINGS, ssd.CLASS_LOGITS],
        ),
        1,
    )
    whole.allocate_tensors()
    outputs = sorted(whole.get_output_details(), key=lambda o: -len(o["shape"]))
    parts = detector._lite.parts
    encodings, logits = [], []
    for tile in tiles:
        whole.set_tensor(
            whole.get_input_details()[0]["index"],
            tile[np.newaxis] * parts.pixel_scale - parts.pixel_shift,
        )
        whole.invoke()
        encodings.append(whole.get_tensor(outputs[0]["index"]))
        logits.append(whole.get_tensor(outputs[1]["index"]))
    for count in (len(tiles), 1):
        expected = ssd.postprocess(
            np.concatenate(encodings[:count]),
            np.concatenate(logits[:count]),
            parts.anchors,
            parts.settings,
            0.0,
        )
        got = detector._lite.run(tiles[:count], 0.0)
        assert got[0].tolist() == [100.0] * count
        for g, e in zip(got, expected):
            np.testing.assert_array_equal(g, e)
