"""Finds Beam's private names in source files, for the tests that keep each package's in its
one module (pipelines/core/beam_private.py, local_runtime/beam_private.py)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

# Private names reached through a Beam module or class (attribute access, not an import).
_PRIVATE_ATTRIBUTES = re.compile(
    r"\b(?:transform_evaluator|bigquery_tools|pipeline_options|_te)\._\w+"
    r"|\w+\._(?:add_argparse_args|delete_table|PubSubReadEvaluator|get_subscriber_client\w*"
    r"|subscriber_client_cache|read_from_pubsub)\b"
    r"|\bPipelineOptions\.__subclasses__\b"
)


def private_beam_names(path: Path) -> list[str]:
    """`file: name` for each private Beam name `path` uses."""
    text = path.read_text()
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("apache_beam"):
            found += [a.name for a in node.names if a.name.startswith("_")]
    found += _PRIVATE_ATTRIBUTES.findall(text)
    return [f"{path.name}: {name}" for name in found]


def private_beam_names_outside(folder: Path, allowed: Path) -> list[str]:
    return [
        name
        for path in sorted(folder.rglob("*.py"))
        if path != allowed
        for name in private_beam_names(path)
    ]
