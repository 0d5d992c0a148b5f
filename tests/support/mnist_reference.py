"""The row-by-row reference of the MNIST jobs' batched parsing and formatting: what each
record's outcome must be, one record at a time. Tests and benches compare the batched
paths (pipelines/mnist/) with it; the jobs themselves never call it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from pipelines.mnist.records import BadRecord, parse_id, parse_image


def parse_row(row: Mapping[str, Any]) -> tuple[int, np.ndarray]:
    """(ID, pixels) of a row {"ID", "Image"}; BadRecord says why not."""
    if not isinstance(row, Mapping):
        raise BadRecord(f"expected an object with ID and Image, got {type(row).__name__}")
    return parse_id(row.get("ID")), parse_image(row.get("Image"))
