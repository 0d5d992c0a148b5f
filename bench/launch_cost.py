"""What the Flex launcher pays to build each job's graph, against `import apache_beam`.

    .venv/bin/python bench/launch_cost.py [--rounds 5]

Each measurement is a fresh interpreter, as on the launcher VM: the baseline runs
`import apache_beam`; each job runs the launch's `build_job` (parse, check, preflight,
build; not run), then asserts TensorFlow was not imported. Target (issue 25): at most
TARGET times the baseline, median of the rounds, each job run paired with a baseline run.

Beside the target's ratio (wall time of the whole process, exit included) it prints the
same ratio in CPU time (steadier on a loaded machine), and both again with each process
ending in os._exit(0): without the interpreter's exit, which for Beam is a full garbage
collection of everything imported, ~0.3 s. The launch imports with collection off and
freezes what it imported (pipelines/registry.py: load_template), so its imports and its
exit cost less than the baseline's; the ratios without the exit show how much of the
margin that is.
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.registry import TEMPLATES

TARGET = 1.1  # issue 25: building a graph costs at most 1.1x `import apache_beam`

# Parameters that build a representative graph locally (inputs that exist; nothing runs).
LOCAL_PARAMETERS = {
    "wordcount": ["--input=data/kinglear.txt", "--output=/tmp/launch-cost/wc"],
    "wordcount2": [
        "--input=data/kinglear.txt",
        "--output=/tmp/launch-cost/a",
        "--output2=/tmp/launch-cost/b",
    ],
    "mnist_batch": ["--input=data/mnist_sample.csv", "--output=/tmp/launch-cost/predict"],
    "mnist_stream": [
        "--input=projects/lab-project/topics/mnist_image",
        "--output=projects/lab-project/topics/mnist_predict",
    ],
    "pedestrian_depth": [
        "--input=projects/lab-project/topics/camera_frames",
        "--output=projects/lab-project/topics/pedestrian_depth",
    ],
}

BASELINE = "import apache_beam"
# What a template's entry file runs (pipelines/registry.py: run_template), but the run.
BUILD_GRAPH = """
import sys
from pipelines.registry import load_template
job = load_template({name!r})
from pipelines.core.launch import build_job
build_job(job, {argv!r})
assert "tensorflow" not in sys.modules, "building the graph imported TensorFlow"
"""
NO_EXIT = "\nimport os\nos._exit(0)\n"


def timed(code: str) -> tuple[float, float]:
    """(wall, CPU) seconds of a fresh interpreter running `code`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def pair(base_code: str, job_code: str, job_first: bool):
    """(baseline, job) timings, run in the order asked."""
    if job_first:
        job = timed(job_code)
        return timed(base_code), job
    base = timed(base_code)
    return base, timed(job_code)


def paired_ratios(code: str, rounds: int) -> list[float]:
    """Medians of the (wall, CPU) ratios of `code` to a baseline run beside it, then the
    same without the exit; the order alternates so that neither always runs on a warmer
    machine."""
    ratios = [[], [], [], []]
    for round_ in range(rounds):
        for first, ending in ((0, ""), (2, NO_EXIT)):
            base, job = pair(BASELINE + ending, code + ending, job_first=round_ % 2 == 1)
            ratios[first].append(job[0] / base[0])
            ratios[first + 1].append(job[1] / base[1])
    return [statistics.median(r) for r in ratios]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    missing = set(TEMPLATES) - set(LOCAL_PARAMETERS)
    if missing:
        sys.exit(f"add LOCAL_PARAMETERS for {sorted(missing)}")
    # As in the image, whose `pip install .` compiles the package: the launcher loads our
    # modules from bytecode, as it does Beam's (an environment with PYTHONDONTWRITEBYTECODE
    # would otherwise compile them from source in every run, ~20 ms a job).
    compileall.compile_dir(REPO / "pipelines", quiet=1)
    baseline = [timed(BASELINE) for _ in range(args.rounds)]
    wall = statistics.median(run[0] for run in baseline)
    cpu = statistics.median(run[1] for run in baseline)
    print(
        f"baseline `import apache_beam`: {wall:.2f} s wall, {cpu:.2f} s CPU "
        f"(median of {args.rounds}); load average {os.getloadavg()[0]:.1f}"
    )
    worst = 0.0
    for name in TEMPLATES:
        code = BUILD_GRAPH.format(name=name, argv=LOCAL_PARAMETERS[name])
        ratio, cpu_ratio, work_ratio, work_cpu_ratio = paired_ratios(code, args.rounds)
        worst = max(worst, ratio)
        print(
            f"{name:18s} build graph: {ratio:.2f}x import apache_beam (CPU {cpu_ratio:.2f}x; "
            f"without the exit {work_ratio:.2f}x, CPU {work_cpu_ratio:.2f}x; "
            f"TensorFlow not imported)"
        )
    met = "met" if worst <= TARGET else "NOT met"
    print(
        f"worst: {worst:.2f}x (target <= {TARGET}x: {met}); load average {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
