"""Flex Template entry point (FLEX_TEMPLATE_PYTHON_PY_FILE) for the mnist_batch job."""

from pipelines.mnist import batch

if __name__ == "__main__":
    batch.run()
