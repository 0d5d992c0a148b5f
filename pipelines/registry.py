"""Every Flex Template this repository builds: template name -> job module.

A template is a job module (with a `TEMPLATE` and `run()`) and a line here; then
`python -m tools.generate` writes its entry file, console metadata, Cloud Build steps and
the line ops/flex reads. Whether it streams is its `TEMPLATE.streaming`, nowhere else.
"""

from __future__ import annotations

import importlib

TEMPLATES = {
    "wordcount": "pipelines.wordcount",
    "wordcount2": "pipelines.wordcount2",
    "mnist_batch": "pipelines.mnist.batch",
    "mnist_stream": "pipelines.mnist.stream",
    "pedestrian_depth": "pipelines.pedestrian.job",
}


def job_module(name: str):
    return importlib.import_module(TEMPLATES[name])
