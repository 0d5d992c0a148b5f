"""Flex Template entry point (FLEX_TEMPLATE_PYTHON_PY_FILE) for the pedestrian_depth job."""

from pipelines.pedestrian import job

if __name__ == "__main__":
    job.run()
