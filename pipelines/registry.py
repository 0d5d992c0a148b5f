"""Every Flex Template this repository builds: template name -> job module.

A template is a job module (with a `TEMPLATE`, `preflight` and `build_pipeline`) and a line
here; then `python -m tools.generate` writes its entry file (which calls `run_template`),
console metadata and Cloud Build steps, and ops/flex reads it here (with its parameters'
`lab` values). Whether it streams is its `TEMPLATE.streaming`, nowhere else. The top of
`pipelines`: it imports the launch and, by name, the jobs; nothing imports it back.
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import Sequence

TEMPLATES = {
    "wordcount": "pipelines.jobs.wordcount",
    "wordcount2": "pipelines.jobs.wordcount2",
    "mnist_batch": "pipelines.jobs.mnist_batch",
    "mnist_stream": "pipelines.jobs.mnist_stream",
    "pedestrian_depth": "pipelines.jobs.pedestrian_depth",
}


def job_module(name: str):
    return importlib.import_module(TEMPLATES[name])


def load_template(name: str):
    """The job `name`, imported for a launch (Beam, the launch and the job's modules).

    What a launch imports lives as long as its process, so the garbage collector would only
    walk it again and again: with collection off while importing (Beam's import alone runs
    some 350 collections, ~0.1 s of CPU) and those objects frozen after, the build's full
    collections and the one at exit (~0.3 s) skip them. The price: the few cycles the
    imports leave unreachable (~2,000 objects) are never freed."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        import pipelines.core.launch  # noqa: F401 - imported here, with collection off

        return job_module(name)
    finally:
        gc.freeze()
        if collecting:
            gc.enable()


def run_template(name: str, argv: Sequence[str] | None = None):
    """What a template's entry file runs: the job `name`, from the command line."""
    job = load_template(name)  # first: it imports the launch too
    from pipelines.core.launch import run_job

    return run_job(job, argv)
