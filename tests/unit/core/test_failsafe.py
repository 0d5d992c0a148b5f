"""Failsafe: a batch keeps its records' IDs, originals and values aligned when rows leave."""

from __future__ import annotations

import numpy as np

from pipelines.core.failsafe import Failsafe, Rows


def test_selecting_keeps_ids_originals_and_values_aligned():
    batch = Failsafe(Rows(np.array([7, 8, 9]), ("a", "b", "c")), np.array([[1.0], [2.0], [3.0]]))
    kept = batch.select(np.array([True, False, True]))
    assert kept.rows.ids.tolist() == [7, 9]
    assert kept.rows.originals == ("a", "c")
    assert kept.value.tolist() == [[1.0], [3.0]]
    assert kept.rows.answered


def test_a_batch_without_originals_stays_without():
    batch = Failsafe(Rows(np.array([7, 8])), np.zeros((2, 3)))
    kept = batch.select(np.array([False, True]))
    assert kept.rows.ids.tolist() == [8] and kept.rows.originals is None
    assert not kept.rows.answered


def test_it_is_runinferences_key_and_example_as_it_stands():
    rows, value = Failsafe(Rows(np.array([1])), np.zeros((1, 784)))
    assert isinstance(rows, Rows) and value.shape == (1, 784)
