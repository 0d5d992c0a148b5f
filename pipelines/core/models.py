"""Where the models are: the image's /opt/models, or a source checkout's models/ folder."""

from __future__ import annotations

import os
from pathlib import Path

# The image sets PIPELINES_MODELS_DIR=/opt/models; a checkout (the image copies the
# repository as it is) falls back to its own models/ folder.
MODELS_DIR_ENV = "PIPELINES_MODELS_DIR"


def models_dir() -> Path:
    # Read on every call, not at import: a DoFn looks the folder up where it runs.
    default = Path(__file__).resolve().parents[2] / "models"
    return Path(os.environ.get(MODELS_DIR_ENV) or default)
