"""Flex Template entry point (FLEX_TEMPLATE_PYTHON_PY_FILE) for the mnist_stream job."""

from pipelines.mnist import stream

if __name__ == "__main__":
    stream.run()
