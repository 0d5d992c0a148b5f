"""Checks run INSIDE a built template image (`buildah run`), with the image's own Python.

    python /checks/in_image_check.py --template NAME --image-uri URI [--model mnist ...]

Mounted read-only at /checks by tests/system/image/test_image.py (tests/ is not in the image); the
bundled samples are mounted at /data. Prints one JSON object on its last line:
{"CHECK": "ok" | "FAILED: why", ..., "info": {...}}; exits 0 either way, the test asserts.
Only the standard library at the top: what it checks must not be what it needs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path

# Where Dataflow looks: the launcher binary (copied from the launcher base) and the worker
# boot loader (the Beam SDK image's ENTRYPOINT).
LAUNCHER = Path("/opt/google/dataflow/python_template_launcher")
BOOT = Path("/opt/apache/beam/boot")
LOCK = Path("/template/requirements.lock")
DATA = Path("/data")

results: dict[str, str] = {}
info: dict[str, object] = {}


def check(name):
    def run(fn):
        try:
            fn()
            results[name] = "ok"
        except Exception as error:  # noqa: BLE001 - every failure is reported, not raised
            detail = "".join(traceback.format_exception_only(type(error), error)).strip()
            results[name] = f"FAILED: {detail}"
        return fn

    return run


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--template", required=True)
    parser.add_argument("--image-uri", required=True)
    parser.add_argument("--model", action="append", default=[], choices=["mnist", "pedestrian"])
    args = parser.parse_args()
    info["python"] = sys.version.split()[0]

    @check("environment")
    def _():
        py_file = os.environ.get("FLEX_TEMPLATE_PYTHON_PY_FILE")
        assert py_file == f"/template/templates/{args.template}.py", (
            f"FLEX_TEMPLATE_PYTHON_PY_FILE={py_file!r}"
        )
        assert Path(py_file).is_file(), f"{py_file} (FLEX_TEMPLATE_PYTHON_PY_FILE) is missing"
        image = os.environ.get("SDK_CONTAINER_IMAGE")
        assert image == args.image_uri, (
            f"SDK_CONTAINER_IMAGE={image!r}, built with {args.image_uri!r}"
        )
        for name in ("FLEX_TEMPLATE_PYTHON_REQUIREMENTS_FILE", "FLEX_TEMPLATE_PYTHON_SETUP_FILE"):
            # Either would make the launcher stage packages and every worker reinstall them.
            assert name not in os.environ, f"{name} is set: launch would pip-install"
        for path in (LAUNCHER, BOOT):
            assert path.is_file() and os.access(path, os.X_OK), f"{path} is not an executable file"
        assert sys.version_info[:2] == (3, 11), f"Python {sys.version}: the SDK image's is 3.11"

    @check("locked_versions")
    def _():
        pins = {}
        for line in LOCK.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                name, version = line.split("==")
                pins[normalize(name)] = version.strip()
        installed = {normalize(d.metadata["Name"]): d.version for d in metadata.distributions()}
        wrong = {n: (v, installed.get(n)) for n, v in pins.items() if installed.get(n) != v}
        assert not wrong, f"locked vs installed: {wrong}"
        info["locked_packages"] = len(pins)

    @check("imports")
    def _():
        start = time.monotonic()
        import apache_beam
        import tensorflow as tf

        info["apache_beam"] = apache_beam.__version__
        info["tensorflow"] = tf.__version__
        info["import_seconds"] = round(time.monotonic() - start, 1)
        # The Beam image tag (2.77.0) must equal the SDK the pipeline is built with.
        assert apache_beam.__version__ == "2.77.0", apache_beam.__version__

    @check("entry_file")
    def _():
        # What the launcher runs: FLEX_TEMPLATE_PYTHON_PY_FILE, with Python. Executing it as a
        # module that is not __main__ runs its whole import chain without starting the job.
        import runpy

        py_file = os.environ["FLEX_TEMPLATE_PYTHON_PY_FILE"]
        runpy.run_path(py_file, run_name="flex_template_entry")
        # The job code comes from the installed package, not a copy of the sources.
        import pipelines

        assert "site-packages" in pipelines.__file__ or "dist-packages" in pipelines.__file__, (
            pipelines.__file__
        )
        assert not Path("/template/pipelines").exists(), "/template/pipelines left in the image"

    @check("entry_help")
    def _():
        # `--help` builds the parser from the job's parameters and formats every help text.
        py_file = os.environ["FLEX_TEMPLATE_PYTHON_PY_FILE"]
        done = subprocess.run(
            [sys.executable, py_file, "--help"], capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, (
            f"--help exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"
        )
        from pipelines.registry import job_module

        names = [p.name for p in job_module(args.template).TEMPLATE.parameters]
        missing = [n for n in names if f"--{n}" not in done.stdout]
        assert not missing, f"--help does not list {missing}: {done.stdout[-1000:]}"

    @check("launch_imports_no_tensorflow")
    def _():
        # The launcher VM has 10 minutes to build the graph: importing the job must not
        # import TensorFlow (models load on workers).
        code = (
            "import sys; from pipelines.registry import job_module; "
            f"job_module({args.template!r}); print('tensorflow' in sys.modules)"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == "False", "importing the job module imports tensorflow"

    @check("no_local_runtime")
    def _():
        # The image is what Dataflow runs: the DirectRunner stream runtime (local_runtime/ of
        # a checkout) is not installed, and a local stream run says so in one line, exit 2.
        import importlib.util

        assert importlib.util.find_spec("local_runtime") is None, "local_runtime is importable"
        ours = metadata.distribution("dataflow-flex-lab").files or []
        stray = [str(f) for f in ours if str(f).startswith("local_runtime")]
        assert not stray, f"the installed package holds {stray[:3]}"
        from pipelines.core.launch import NO_LOCAL_RUNTIME, local_stream_runtime
        from pipelines.registry import job_module

        assert local_stream_runtime() is None
        if not job_module(args.template).TEMPLATE.streaming:
            return
        done = subprocess.run(
            [
                sys.executable,
                os.environ["FLEX_TEMPLATE_PYTHON_PY_FILE"],
                "--input=projects/lab-project/subscriptions/in-sub",
                "--output=projects/lab-project/topics/out",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and lines == [f"{args.template}: error: {NO_LOCAL_RUNTIME}"], (
            f"exit {done.returncode}: {lines[-3:]}"
        )

    if "mnist" in args.model:

        @check("model_mnist")
        def _():
            from pipelines.mnist.handler import load_model
            from pipelines.mnist.location import resolve_model

            path = resolve_model(None)  # the template's default: no --model given
            assert path == "/opt/models/mnist", f"default model path {path!r}"
            start = time.monotonic()
            model = load_model(path)
            info["mnist_load_seconds"] = round(time.monotonic() - start, 1)
            import numpy as np

            images, labels = read_mnist_sample()
            scores = model.predict(images)
            assert scores.shape == (len(images), 10), scores.shape
            assert np.allclose(scores.sum(axis=1), 1.0, atol=1e-4), "scores are not probabilities"
            accuracy = float((scores.argmax(axis=1) == labels).mean())
            info["mnist_sample_accuracy"] = accuracy
            assert accuracy >= 0.95, f"accuracy {accuracy} on the bundled sample"

    if "pedestrian" in args.model:

        @check("model_pedestrian")
        def _():
            import numpy as np

            from pipelines.pedestrian.detector import PedestrianDetector, default_graph_path

            path = default_graph_path()
            assert str(path).startswith("/opt/models/"), f"default graph path {path}"
            assert path.is_file(), f"{path} missing"
            start = time.monotonic()
            detector = PedestrianDetector().load()
            info["pedestrian_load_seconds"] = round(time.monotonic() - start, 1)
            num, scores, boxes, classes = detector.run_model(np.zeros((1, 300, 300, 3), np.uint8))
            assert boxes.shape[0] == 1 and boxes.shape[-1] == 4, boxes.shape
            detector.close()

    print(json.dumps({**results, "info": info}))


def read_mnist_sample():
    import numpy as np

    with open(DATA / "mnist_sample.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(DATA / "mnist_sample_labels.csv", newline="") as f:
        labels = {row["ID"]: int(row["Label"]) for row in csv.DictReader(f)}
    images = np.array([[float(v) for v in row["Image"].split(",")] for row in rows], np.float32)
    return images, np.array([labels[row["ID"]] for row in rows])


if __name__ == "__main__":
    main()
