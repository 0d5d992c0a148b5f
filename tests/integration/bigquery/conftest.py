"""Fixtures: a local BigQuery API server that Beam's BigQuery IO talks to.

``bigquery_emulator`` (session)
    A running bqemulator (REST + Storage gRPC) sharing files with a running
    gcp-storage-emulator (for ``WriteToBigQuery`` FILE_LOADS).  Skips when
    bqemulator is not installed.  ``.subprocess_env()`` gives the env for a
    job subprocess (redirect on PYTHONPATH, ``BIGQUERY_EMULATOR_*``,
    ``STORAGE_EMULATOR_HOST``); ``.client()`` a google-cloud-bigquery client;
    ``.gcs.bucket`` a bucket for ``--temp_location gs://BUCKET/tmp``.

``bq_client``
    google-cloud-bigquery client on the emulator.

``bq_dataset``
    A fresh dataset id (created) per test, so tests sharing the emulator
    never see each other's tables.

``beam_bigquery_redirect``
    In-process redirect of Beam's BigQuery clients (and env for GCS) for one
    test; undone afterwards.

On a failing test that used the emulator, the tail of its log is attached to
the report.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.support import bigquery_emulator as bqe
from tests.support.markers import missing

_LOG_KEY = pytest.StashKey[object]()


@pytest.fixture(scope="session")
def bigquery_emulator(tmp_path_factory, request):
    try:
        import bqemulator  # noqa: F401
    except ImportError as exc:
        missing(f"bqemulator is not importable ({exc}); install requirements-dev.lock")
    workdir: Path = tmp_path_factory.mktemp("bqemulator")
    gcs = None
    try:
        import gcp_storage_emulator  # noqa: F401
    except ImportError:
        pass  # FILE_LOADS tests skip themselves (emulator.gcs is None)
    else:
        gcs = bqe.start_gcs_emulator(workdir)
    try:
        emulator = bqe.start_bigquery_emulator(workdir, gcs=gcs)
    except BaseException:
        if gcs is not None:
            gcs.stop()
        raise
    request.config.stash[_LOG_KEY] = emulator
    try:
        yield emulator
    finally:
        request.config.stash[_LOG_KEY] = None
        emulator.stop()
        if gcs is not None:
            gcs.stop()


@pytest.fixture
def bq_client(bigquery_emulator):
    return bigquery_emulator.client()


@pytest.fixture
def bq_dataset(bq_client):
    dataset = "t_" + uuid.uuid4().hex[:12]
    bqe.create_dataset(bq_client, dataset)
    return dataset


@pytest.fixture
def beam_bigquery_redirect(bigquery_emulator, monkeypatch):
    """Patch Beam in this process to use the emulator; yields the handle."""
    for key, value in bigquery_emulator.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    module = bqe.load_redirect_module()
    handle = module.install(
        rest_url=bigquery_emulator.rest_url,
        grpc_endpoint=bigquery_emulator.grpc_endpoint,
        project=bigquery_emulator.project,
        timeout=30,
    )
    try:
        yield handle
    finally:
        handle.uninstall()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and "bigquery_emulator" in getattr(item, "fixturenames", ()):
        emulator = item.config.stash.get(_LOG_KEY, None)
        if emulator is not None:
            report.sections.append(
                (f"bqemulator log ({emulator.log_path}, tail)", emulator.log_tail(4000))
            )
            if emulator.gcs is not None:
                report.sections.append(
                    ("gcs emulator log (tail)", emulator.gcs.server.log_tail(2000))
                )
    return report
