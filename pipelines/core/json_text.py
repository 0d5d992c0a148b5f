"""JSON text the project did not write (messages, model files, the tools' files, gcloud's
answers to ops), read with one guard against nesting too deep.

json's C scanner recurses once per `[` or `{`, so a document nested deeper than the
interpreter's recursion limit (`"[" * 5000` is enough) raises RecursionError: not a
ValueError, so it would escape every reader's `except ValueError` and end a job's bundle or a
tool's run instead of being one reason. `read_json` turns it into `NestedTooDeep`, a
ValueError, which readers already handle; a reader that words its own reason for it catches
`NestedTooDeep` before ValueError.

It imports json alone: ops/gcloud.py and the tools import it as cheaply as the jobs do.
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
