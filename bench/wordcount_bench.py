"""wordcount vs Beam's own example on the same ~20 MB text, DirectRunner, back to back.

    .venv/bin/python bench/wordcount_bench.py [--megabytes 20] [--rounds 3]

Prints each run's wall time and the ratio ours/Beam's (median of the rounds; the target is
at most 1.0, the goal below 0.8). Runs alternate so machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_text(path: Path, megabytes: float) -> None:
    chunk = (REPO / "data" / "kinglear.txt").read_bytes()
    copies = max(1, round(megabytes * 1e6 / len(chunk)))
    with open(path, "wb") as out:
        out.writelines(chunk for _ in range(copies))


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        command, check=True, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "text.txt"
        make_text(text, args.megabytes)
        print(f"input: {text.stat().st_size / 1e6:.1f} MB")
        ours_cmd = [
            sys.executable,
            str(REPO / "templates" / "wordcount.py"),
            "--input",
            str(text),
            "--output",
            f"{tmp}/ours",
        ]
        beam_cmd = [
            sys.executable,
            "-m",
            "apache_beam.examples.wordcount",
            "--input",
            str(text),
            "--output",
            f"{tmp}/beam",
        ]
        ours, beams = [], []
        for round_ in range(args.rounds):
            beams.append(timed(beam_cmd))
            ours.append(timed(ours_cmd))
            print(
                f"round {round_ + 1}: beam example {beams[-1]:.2f} s, ours {ours[-1]:.2f} s, "
                f"ratio {ours[-1] / beams[-1]:.2f}"
            )
        ratio = statistics.median(o / b for o, b in zip(ours, beams))
        print(f"median ratio ours/beam: {ratio:.2f} (target <= 1.0, goal < 0.8)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
