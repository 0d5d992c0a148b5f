"""Flex Template entry point (FLEX_TEMPLATE_PYTHON_PY_FILE) for the wordcount2 job."""

from pipelines import wordcount2

if __name__ == "__main__":
    wordcount2.run()
