"""Flex Template entry point (FLEX_TEMPLATE_PYTHON_PY_FILE) for the wordcount job."""

from pipelines import wordcount

if __name__ == "__main__":
    wordcount.run()
