"""The detector graph's raw outputs over hostile values (hypothesis): NaN, infinities, counts
beyond the arrays, boxes outside their tile. Each frame ends as a published record or as one
dead-letter line (frame_result's BadFrame, or the reason RunInference's exception handling
reports). docs/boundaries.md lists it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pipelines.pedestrian.detector import detections_from_outputs
from pipelines.pedestrian.frames import failure_reason, frame_result
from tests.support.hostile import one_line

WINDOWS = [(0, 0, 100, 100), (50, 0, 150, 100)]
K = 4
values = st.floats(width=32) | st.sampled_from([0.0, 0.5, 0.9, 1.0])


# A NaN class cast to int is some integer, never the person class's: numpy warns, and the
# box is dropped, which is the truth (no person was found there).
@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
@given(
    num=arrays(np.float32, len(WINDOWS), elements=st.floats(-2, 10, width=32) | st.just(np.nan)),
    scores=arrays(np.float32, (len(WINDOWS), K), elements=values),
    boxes=arrays(np.float32, (len(WINDOWS), K, 4), elements=values),
    classes=arrays(np.float32, (len(WINDOWS), K), elements=st.sampled_from([1.0, 2.0, np.nan])),
)
def test_any_graph_output_is_a_record_or_one_dead_letter_line(num, scores, boxes, classes):
    try:
        detections = detections_from_outputs(
            WINDOWS, num, scores, boxes, classes, 150, 100, score_threshold=0.5
        )
        record = frame_result("A_001.png", 150, 100, detections)
    except Exception as error:  # noqa: BLE001 - each one is a dead letter: its reason is what counts
        one_line(failure_reason(error))
        return
    json.loads(json.dumps(record, allow_nan=False))
    for pedestrian in record["pedestrians"]:
        x1, y1, x2, y2 = pedestrian["box"]
        assert 0 <= x1 <= 150 and 0 <= x2 <= 150 and 0 <= y1 <= 100 and 0 <= y2 <= 100
        assert 0 <= pedestrian["score"] <= 1
