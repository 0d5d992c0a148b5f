"""Writes (or checks) metadata/<template>.json from the jobs' declared parameters.

    python -m pipelines.metadata           # rewrite metadata/*.json
    python -m pipelines.metadata --check   # exit 1 if any file differs from the code
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipelines.registry import TEMPLATES, job_module

METADATA_DIR = Path(__file__).resolve().parents[1] / "metadata"


def render(name: str) -> str:
    return json.dumps(job_module(name).TEMPLATE.metadata(), indent=2, ensure_ascii=False) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report drift")
    parser.add_argument("--dir", type=Path, default=METADATA_DIR)
    args = parser.parse_args(argv)
    stale = []
    for name in TEMPLATES:
        path = args.dir / f"{name}.json"
        text = render(name)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    verb = "out of date" if args.check else "written"
    for path in stale:
        print(f"{verb}: {path}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
