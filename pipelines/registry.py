"""Every Flex Template this repository builds: template name -> job module.

A template is a job module (`TEMPLATE`, `preflight`, `build_pipeline`) and a line here; then
`python -m tools.generate` writes its entry file, console metadata and Cloud Build steps,
and ops/flex reads it here (with its parameters' `lab` values). Whether it streams is its
`TEMPLATE.streaming`, nowhere else.
"""

from __future__ import annotations

import importlib

TEMPLATES = {
    "wordcount": "pipelines.jobs.wordcount",
    "wordcount2": "pipelines.jobs.wordcount2",
    "mnist_batch": "pipelines.jobs.mnist_batch",
    "mnist_stream": "pipelines.jobs.mnist_stream",
    "pedestrian_depth": "pipelines.jobs.pedestrian_depth",
}


def job_module(name: str):
    return importlib.import_module(TEMPLATES[name])
