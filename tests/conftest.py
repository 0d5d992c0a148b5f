"""Shared fixtures. Emulators start once per session and only when a test asks for them."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from tests.support.gcs_emulator import running_gcs_emulator
from tests.support.markers import IN_CI, MARKER, missing
from tests.support.processes import REPO
from tests.support.pubsub_emulator import running_pubsub_emulator

# Property tests that do not fix their own example count take it from here: 1,000 per test in
# CI (CI=true), fewer on a developer's machine. tests/support/properties.py's PROPERTY keeps
# 1,000 everywhere for the tests that ask for it.
_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile("ci", max_examples=1000, deadline=None, suppress_health_check=_SLOW_OK)
settings.register_profile("dev", max_examples=100, deadline=None, suppress_health_check=_SLOW_OK)
settings.load_profile("ci" if IN_CI else "dev")

# Jobs and tools that tests start as processes import this checkout, not whichever one the
# venv's editable install points at (a second worktree shares the venv).
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
)


def pytest_configure(config):
    config.addinivalue_line("markers", f"{MARKER}(reason): needs a tool the repository lacks")


def pytest_runtest_setup(item):
    for marker in item.iter_markers(MARKER):
        if marker.args and marker.args[0]:
            missing(marker.args[0])


@pytest.fixture(scope="session")
def repo() -> object:
    return REPO


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory):
    """Base URL of a local Cloud Storage API, for STORAGE_EMULATOR_HOST."""
    log = tmp_path_factory.mktemp("gcs") / "emulator.log"
    try:
        with running_gcs_emulator(log) as host:
            yield host
    except FileNotFoundError as absent:
        missing(str(absent))


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory):
    """host:port of the Cloud SDK's Pub/Sub emulator; PUBSUB_EMULATOR_HOST is set meanwhile."""
    log = tmp_path_factory.mktemp("pubsub") / "emulator.log"
    try:
        with running_pubsub_emulator(log) as host:
            yield host
    except FileNotFoundError as absent:
        missing(str(absent))


@pytest.fixture(scope="session")
def javascript():
    """Node evaluating regexes as the console's JavaScript does (tests/support/jsregex.py)."""
    try:
        from tests.support.jsregex import JavaScriptRegexes

        engine = JavaScriptRegexes()
    except FileNotFoundError as absent:
        missing(str(absent))
    yield engine
    engine.close()
