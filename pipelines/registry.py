"""Every Flex Template this repository builds: template name -> job module.

`templates/<name>.py`, `metadata/<name>.json` and a build and registration step in
`cloudbuild.yaml` exist for each name here; tests/test_templates.py checks that they do.
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
