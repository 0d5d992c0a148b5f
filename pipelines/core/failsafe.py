"""The element a batched job carries from its input to its outputs: DataflowTemplates'
FailsafeElement (the original, the current value, the error), for a batch of records.

A stage that works per batch (one vectorised parse, one model call) receives a `Failsafe`:
`rows`, which records it holds (their IDs and, when the job answers each input, the inputs
themselves), and `value`, their current value (pixels, then scores), one row per record. A
record that fails leaves the batch there and then as one dead letter, with its original and
the reason (pipelines/core/deadletters.py): the error half of a FailsafeElement is where it
ends, not a field carried along. Every other record goes on in the batch, so each record
ends in exactly one output or one dead letter.

`Failsafe` is a pair on purpose: it is RunInference's (key, example) as it stands, so the
same element goes in and comes back out with the model's result beside `rows`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple


class Rows(NamedTuple):
    """The records of a batch: their IDs (an array) and their originals, in order, when the
    job must answer each input with its own outcome (a stream's messages), else None (the
    job rebuilds what a dead letter keeps from the parsed values, instead of carrying every
    input through the model for the few that might fail there)."""

    ids: Any
    originals: Sequence | None = None

    @property
    def answered(self) -> bool:
        """Whether each outcome answers its own input (the originals ride along)."""
        return self.originals is not None

    def select(self, keep) -> Rows:
        """The records where the boolean array `keep` is true, in order."""
        if self.originals is None:
            return Rows(self.ids[keep])
        return Rows(self.ids[keep], tuple(o for o, k in zip(self.originals, keep) if k))


class Failsafe(NamedTuple):
    """A batch of records and their current value (row `i` of `value` is record `i`)."""

    rows: Rows
    value: Any

    def select(self, keep) -> Failsafe:
        return Failsafe(self.rows.select(keep), self.value[keep])
