"""wordcount vs Beam's own example on the same ~20 MB text, DirectRunner, back to back.

    .venv/bin/python bench/wordcount_bench.py [--megabytes 20] [--rounds 5]

Prints each run's CPU time (user + system of the whole process, what a shared machine's
load disturbs least) and wall time, and the ratio ours/Beam's of each: the median over the
rounds. Issue 25's target: CPU at most 0.5x Beam's. Runs alternate, and so does which goes
first, so that machine noise hits both alike. Also checks that both wrote the same lines.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.5  # issue 25: ours/Beam's CPU time


def make_text(path: Path, megabytes: float) -> None:
    chunk = (REPO / "data" / "kinglear.txt").read_bytes()
    copies = max(1, round(megabytes * 1e6 / len(chunk)))
    with open(path, "wb") as out:
        out.writelines(chunk for _ in range(copies))


def timed(command: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of running `command` to its end."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        command, check=True, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, wall


def output_lines(prefix: str) -> list[str]:
    folder, name = os.path.split(prefix)
    shards = sorted(Path(folder).glob(f"{name}-*-of-*"))
    return sorted(line for shard in shards for line in shard.read_text().splitlines())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=5)
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
        runs = {"ours": ours_cmd, "beam": beam_cmd}
        cpu, wall = {name: [] for name in runs}, {name: [] for name in runs}
        for round_ in range(args.rounds):
            for name in runs if round_ % 2 else reversed(runs):
                seconds, elapsed = timed(runs[name])
                cpu[name].append(seconds)
                wall[name].append(elapsed)
            print(
                f"round {round_ + 1}: CPU beam example {cpu['beam'][-1]:.2f} s, ours "
                f"{cpu['ours'][-1]:.2f} s, ratio {cpu['ours'][-1] / cpu['beam'][-1]:.2f}; wall "
                f"{wall['beam'][-1]:.2f} s, {wall['ours'][-1]:.2f} s"
            )
        same = output_lines(f"{tmp}/ours") == output_lines(f"{tmp}/beam")
        ratio = statistics.median(o / b for o, b in zip(cpu["ours"], cpu["beam"]))
        wall_ratio = statistics.median(o / b for o, b in zip(wall["ours"], wall["beam"]))
        print(
            f"median ratio ours/beam: CPU {ratio:.2f} (target <= {TARGET:g}: "
            f"{'met' if ratio <= TARGET else 'NOT MET'}), wall {wall_ratio:.2f}; "
            f"same lines as Beam's: {'yes' if same else 'NO'}; load average "
            f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}"
        )
        if not same:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
