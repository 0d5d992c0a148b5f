"""Shared fixtures. Emulators start once per session and only when a test asks for them."""

from __future__ import annotations

import pytest

from tests.support.gcs_emulator import running_gcs_emulator
from tests.support.processes import REPO
from tests.support.pubsub_emulator import running_pubsub_emulator


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
    except FileNotFoundError as missing:
        pytest.skip(str(missing))


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory):
    """host:port of the Cloud SDK's Pub/Sub emulator; PUBSUB_EMULATOR_HOST is set meanwhile."""
    log = tmp_path_factory.mktemp("pubsub") / "emulator.log"
    try:
        with running_pubsub_emulator(log) as host:
            yield host
    except FileNotFoundError as missing:
        pytest.skip(str(missing))
