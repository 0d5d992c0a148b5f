"""What the Flex launcher pays to build each job's graph, against `import apache_beam`.

    .venv/bin/python bench/launch_cost.py [--rounds 5]

Each measurement is a fresh interpreter, as on the launcher VM: the baseline runs
`import apache_beam`; each job parses its parameters and builds (does not run) its graph,
then asserts TensorFlow was not imported. Target: at most 1.3x the baseline (median).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.registry import TEMPLATES

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

BUILD_GRAPH = """
import sys
import apache_beam as beam
from pipelines.core.launch import is_dataflow, parse
from pipelines.registry import job_module
job = job_module({name!r})
_, args, options = parse(job.TEMPLATE, {argv!r})
job.preflight(args, options, on_dataflow=is_dataflow(options))
job.build_pipeline(beam.Pipeline(options=options), args)
assert "tensorflow" not in sys.modules, "building the graph imported TensorFlow"
"""


def timed(code: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    missing = set(TEMPLATES) - set(LOCAL_PARAMETERS)
    if missing:
        sys.exit(f"add LOCAL_PARAMETERS for {sorted(missing)}")
    baseline = [timed("import apache_beam") for _ in range(args.rounds)]
    base = statistics.median(baseline)
    print(f"baseline `import apache_beam`: {base:.2f} s (median of {args.rounds})")
    worst = 0.0
    for name in TEMPLATES:
        code = BUILD_GRAPH.format(name=name, argv=LOCAL_PARAMETERS[name])
        runs = []
        for _ in range(args.rounds):
            base_run = timed("import apache_beam")
            runs.append(timed(code) / base_run)
        ratio = statistics.median(runs)
        worst = max(worst, ratio)
        print(f"{name:18s} build graph: {ratio:.2f}x import apache_beam (TensorFlow not imported)")
    print(f"worst: {worst:.2f}x (target <= 1.3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
