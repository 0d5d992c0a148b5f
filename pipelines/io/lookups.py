"""What the launch's lookups of Google Cloud resources share (Pub/Sub topics and
subscriptions in pubsub.py, BigQuery tables and datasets in bigquery.py): their time limit, a
service's answer that a name is invalid, and an error told in one line."""

from __future__ import annotations

from typing import NamedTuple

LOOKUP_TIMEOUT_SECONDS = 10
_REASON_CHARS = 300


class Refused(NamedTuple):
    """The service's answer that a name is invalid (Pub/Sub's InvalidArgument, BigQuery's
    400), with its reason: a refusal of the parameter, not "cannot tell"."""

    reason: str


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    if not text:
        return type(error).__name__
    line = text.splitlines()[0]
    return line if len(line) <= _REASON_CHARS else line[: _REASON_CHARS - 3] + "..."
