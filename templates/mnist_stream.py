"""Flex Template entry point (FLEX_TEMPLATE_PYTHON_PY_FILE) for the mnist_stream job."""

from pipelines.registry import run_template

if __name__ == "__main__":
    run_template("mnist_stream")
