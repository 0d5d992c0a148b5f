"""checked_probabilities: every row of a batch's model output is a prediction or a reason."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.core.deadletters import to_json_line
from pipelines.mnist.records import prediction_lines, prediction_row
from pipelines.mnist.transforms import checked_probabilities

IDS = np.arange(4, dtype=np.int64) + 10


def test_float_rows_are_checked_in_bulk_and_bad_rows_say_why():
    scores = np.full((4, 10), 0.1, np.float32)
    scores[1, 3] = np.nan
    scores[3, 0] = np.inf
    rows, kept, reasons = checked_probabilities(IDS, scores)
    assert rows.tolist() == [True, False, True, False]
    assert kept.dtype == np.float32 and kept.shape == (2, 10)
    assert list(reasons) == [1, 3]
    assert all("not 10 finite probabilities" in r for r in reasons.values())


@pytest.mark.parametrize(
    "inference, predicted",
    [
        (np.ones((4, 10), np.int64), [0, 1, 2, 3]),  # not floats: fine row by row
        ([[0.1] * 10, [0.1] * 9, [0.1] * 10, None], [0, 2]),  # ragged rows and a None
        (np.full((3, 10), 0.1), [0, 1, 2]),  # one row short: the last has none
        (np.float32(0.5), []),  # not rows at all
    ],
)
def test_anything_else_is_checked_row_by_row_as_the_reference_does(inference, predicted):
    rows, kept, reasons = checked_probabilities(IDS, np.asarray(inference, dtype=object))
    assert np.flatnonzero(rows).tolist() == predicted
    assert sorted(reasons) == [r for r in range(4) if r not in predicted]  # each row once
    # What the batch formats is what the reference writes for the same row.
    reference = [to_json_line(prediction_row(IDS[r], inference[r])) for r in predicted]
    assert (prediction_lines(IDS[rows], kept).split("\n") if predicted else []) == reference
