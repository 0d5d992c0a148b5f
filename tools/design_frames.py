"""Where the lab's design frames are: the pedestrian job's camera frames and Labels.csv.

They are the course's data, not ours to publish, so nothing here copies them: the demo, the
tests and the benchmarks read them from DESIGN_FRAMES (default ../shared/design, beside the
checkout) and, when they are absent, say in one line where the lab publishes them.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "DESIGN_FRAMES"
DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "design"
# What the tests and benchmarks read: three frames from the occluding car's camera (A), one
# from the ego car's (B), and the labels the camera constants are fitted on.
SAMPLE = ("A_001.png", "A_002.png", "A_003.png", "B_001.png", "Labels.csv")
WHERE = (
    "the lab publishes them in its SOFE4630U-Design repository "
    "(github.com/GeorgeDaoud3/SOFE4630U-Design, Milestone 3: Labels.csv and the A_*/B_* "
    "frames of Dataset_Occluded_Pedestrian)"
)


def folder() -> Path:
    where = Path(os.environ.get(ENV) or DEFAULT)
    try:
        return where.expanduser()
    except RuntimeError:  # ~user of no such user: the folder as written, missing then
        return where


def missing(needed: tuple[str, ...] = SAMPLE) -> str | None:
    """None when every `needed` file is in folder(); else one line saying where to get them."""
    where = folder()
    absent = [name for name in needed if not _is_file(where / name)]
    if not absent:
        return None
    # The folder comes from the environment: a line break in it must not break the line.
    shown = str(where) if str(where).isprintable() else repr(str(where))
    return (
        f"the lab's design frames are not at {shown} (missing {', '.join(absent[:3])}"
        f"{', ...' if len(absent) > 3 else ''}): {WHERE}; copy them there or set "
        f"{ENV}=/path/to/them"
    )


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a DESIGN_FRAMES no file system takes (too long a name, ...)
        return False
