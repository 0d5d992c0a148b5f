"""A local Cloud Storage API (gcp-storage-emulator) that Beam's GCS IO talks to."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.processes import free_port, wait_for_port

PROJECT = "some-project-123"


def emulator_command() -> list[str] | None:
    found = shutil.which("gcp-storage-emulator") or str(
        Path(sys.executable).parent / "gcp-storage-emulator"
    )
    return [found] if Path(found).exists() else None


@contextlib.contextmanager
def running_gcs_emulator(log_path: Path):
    command = emulator_command()
    if command is None:
        raise FileNotFoundError("gcp-storage-emulator is not installed (requirements-dev.lock)")
    port = free_port()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*command, "start", "--host=127.0.0.1", f"--port={port}", "--in-memory"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, timeout=30, process=process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def storage_client(host: str):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(
        project=PROJECT, credentials=AnonymousCredentials(), client_options={"api_endpoint": host}
    )
