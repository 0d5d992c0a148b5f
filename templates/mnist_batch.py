"""Flex Template entry point (FLEX_TEMPLATE_PYTHON_PY_FILE) for the mnist_batch job."""

from pipelines.registry import run_template

if __name__ == "__main__":
    run_template("mnist_batch")
