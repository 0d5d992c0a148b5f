"""JSON text the project did not write, read with one guard for every reader of it (the
jobs' messages and model files, the tools' files and messages, gcloud's answers to ops).

json's C scanner recurses once per `[` or `{`, so a document nested deeper than the
interpreter's recursion limit (`"[" * 5000` is enough) raises RecursionError: not a
ValueError, so it would escape every reader's `except ValueError` and end a job's bundle or a
tool's run instead of being one reason. `read_json` turns it into `NestedTooDeep`, a
ValueError, which readers already handle; a reader that words its own reason for it catches
`NestedTooDeep` before ValueError.

Standard library only: tools/ and ops/ import it as well as the jobs.
"""

from __future__ import annotations

import json
from typing import Any


class NestedTooDeep(ValueError):
    """JSON nested deeper than the json module can read."""


def read_json(text: str | bytes, **options) -> Any:
    """json.loads(text, **options), but NestedTooDeep (a ValueError) for JSON nested too deep;
    json's own errors (json.JSONDecodeError, UnicodeDecodeError for bytes) are unchanged."""
    try:
        return json.loads(text, **options)
    except RecursionError:
        raise NestedTooDeep("JSON nested too deep") from None
