"""wordcount on one long line vs the same bytes in normal lines, DirectRunner.

    .venv/bin/python bench/long_lines_bench.py [--megabytes 10 20 50] [--template wordcount]

For each size, builds two inputs from data/kinglear.txt repeated: the text as it is
(~40-byte lines), and the same text with every line ending replaced by a space (one line).
Runs the template on each in a subprocess and prints wall time and peak RSS (the child's
ru_maxrss), and the ratios single/multi (target: time within ~2x).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_inputs(folder: Path, size: int) -> tuple[Path, Path]:
    text = (REPO / "data" / "kinglear.txt").read_bytes()
    lines = (text * (size // len(text) + 1))[:size]
    one_line = lines.replace(b"\r\n", b" ").replace(b"\n", b" ")
    one_line = one_line + b" " * (size - len(one_line))  # "\r\n" -> " " shrank it
    multi, single = folder / f"multi-{size}.txt", folder / f"single-{size}.txt"
    multi.write_bytes(lines)
    single.write_bytes(one_line)
    return multi, single


def measure(command: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of a subprocess; runs one at a time, so the peak is its own
    (wait4's rusage is per child, unlike RUSAGE_CHILDREN's running maximum)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    stderr = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{command} failed:\n{stderr[-3000:]}")
    return seconds, usage.ru_maxrss / 1024  # Linux reports KiB


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, nargs="+", default=[10, 20, 50])
    parser.add_argument("--template", default="wordcount", choices=["wordcount", "wordcount2"])
    args = parser.parse_args(argv)
    print(
        f"{'MB':>5} {'multi s':>8} {'single s':>9} {'ratio':>6}   "
        f"{'multi MB':>9} {'single MB':>10} {'ratio':>6}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for megabytes in args.megabytes:
            multi, single = make_inputs(folder, int(megabytes * 1e6))
            results = []
            for source in (multi, single):
                outputs = ["--output", str(folder / f"{source.stem}-out")]
                if args.template == "wordcount2":
                    outputs += ["--output2", str(folder / f"{source.stem}-out2")]
                results.append(
                    measure(
                        [
                            sys.executable,
                            str(REPO / "templates" / f"{args.template}.py"),
                            "--input",
                            str(source),
                            *outputs,
                        ]
                    )
                )
            (t_multi, m_multi), (t_single, m_single) = results
            print(
                f"{megabytes:>5g} {t_multi:>8.2f} {t_single:>9.2f} {t_single / t_multi:>6.2f}   "
                f"{m_multi:>9.0f} {m_single:>10.0f} {m_single / m_multi:>6.2f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
