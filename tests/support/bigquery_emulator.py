"""Test helpers: a local BigQuery API server (bqemulator) and a GCS emulator.

Nothing here is used by the jobs themselves.  The helpers start the emulators
as subprocesses on free loopback ports, wait (bounded) until they answer, stop
them by pid, and give a ``google.cloud.bigquery.Client`` pointed at the local
server to create, fill and inspect tables.

Two emulators are involved when a Beam job writes with ``FILE_LOADS``:

* ``bqemulator`` (DuckDB-backed) serves the BigQuery REST API and the Storage
  Read/Write gRPC APIs.  Its load jobs resolve ``gs://BUCKET/PATH`` to
  ``$BQEMU_GCS_LOCAL_ROOT/BUCKET/PATH`` on the local disk.
* ``gcp-storage-emulator`` serves the GCS JSON API (Beam's ``gcsio`` reaches it
  through ``STORAGE_EMULATOR_HOST``) and stores object ``BUCKET/PATH`` at
  ``DATA_DIR/.cloudstorage/BUCKET/PATH``.

Pointing ``BQEMU_GCS_LOCAL_ROOT`` at ``DATA_DIR/.cloudstorage`` makes the
files Beam stages in GCS visible to the BigQuery load jobs.

How Beam's own clients are redirected to these servers lives in
``tests/support/bq_redirect/`` (see ``beam_bigquery_redirect.py`` there).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.pubsub_emulator import free_port

DEFAULT_PROJECT = "test-project"
REDIRECT_DIR = Path(__file__).resolve().parent / "bq_redirect"

# Env var names understood by tests/support/bq_redirect (kept in one place).
ENV_REST = "BIGQUERY_EMULATOR_HOST"  # http://127.0.0.1:PORT (google-cloud-bigquery reads it too)
ENV_GRPC = "BIGQUERY_EMULATOR_GRPC"  # 127.0.0.1:PORT (Storage Read API, insecure channel)
ENV_PROJECT = "BIGQUERY_EMULATOR_PROJECT"  # default project for the redirected clients
ENV_STORAGE = "STORAGE_EMULATOR_HOST"  # http://127.0.0.1:PORT (google-cloud-storage reads it)


def load_redirect_module():
    """Import ``tests/support/bq_redirect/beam_bigquery_redirect.py`` (for in-process use).

    Registered as ``beam_bigquery_redirect``, the name ``sitecustomize`` uses.
    """
    import importlib.util

    name = "beam_bigquery_redirect"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REDIRECT_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


class EmulatorError(RuntimeError):
    """An emulator could not be started or misbehaved."""


# --------------------------------------------------------------------------
# small process / port utilities
# --------------------------------------------------------------------------


def _tail(path: Path, max_chars: int = 6000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:  # pragma: no cover - diagnostics only
        return f"<could not read {path}: {exc}>"
    return text[-max_chars:]


def _http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (OSError, ValueError):
        return False


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM ``pid`` (a process this module started), SIGKILL after ``timeout``."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child (or already reaped): poll existence
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            done = 0
        if done == pid:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


@dataclass
class _Server:
    process: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, max_chars: int = 6000) -> str:
        return _tail(self.log_path, max_chars)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM by pid, SIGKILL if still alive after ``timeout``."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def _die_with_parent() -> None:  # runs in the child before exec (Linux)
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort, not on every libc
        pass


def _spawn(
    argv: Sequence[str], log_path: Path, env: Mapping[str, str], cwd: Path
) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=str(cwd),
            start_new_session=True,  # Ctrl-C in pytest must not reach it; we stop it by pid
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    # Also stop it if the test process ends without running the fixture teardown.
    atexit.register(_Server(proc, log_path).stop)
    return proc


# --------------------------------------------------------------------------
# DuckDB extensions (bqemulator runs "INSTALL spatial" / "INSTALL avro")
# --------------------------------------------------------------------------


def ensure_duckdb_extensions(names: Iterable[str] = ("spatial", "avro")) -> list[str]:
    """Install DuckDB extensions from their PyPI wheels if not installed yet.

    bqemulator refuses to start without ``spatial`` and silently lacks Avro
    without ``avro``; offline, ``INSTALL x`` can only succeed when the
    extension is already in DuckDB's extension directory (``~/.duckdb``).
    The ``duckdb-extension-<name>`` wheels ship the binaries, and
    ``duckdb_extensions.import_extension`` installs them there.  Returns the
    names that were installed by this call.
    """
    import duckdb

    installed_now: list[str] = []
    con = duckdb.connect(":memory:")
    try:
        have = {
            row[0]
            for row in con.execute(
                "SELECT extension_name FROM duckdb_extensions() WHERE installed"
            ).fetchall()
        }
        for name in names:
            if name in have:
                continue
            try:
                import duckdb_extensions
            except ImportError as exc:
                raise EmulatorError(
                    f"DuckDB extension {name!r} is not installed and the "
                    "'duckdb-extensions' package (plus 'duckdb-extension-"
                    f"{name}') is missing to install it offline"
                ) from exc
            duckdb_extensions.import_extension(name, con=con)
            installed_now.append(name)
    finally:
        con.close()
    return installed_now


# --------------------------------------------------------------------------
# GCS emulator
# --------------------------------------------------------------------------


@dataclass
class GcsEmulator:
    """A running ``gcp-storage-emulator`` (disk-backed)."""

    url: str  # http://127.0.0.1:PORT
    data_dir: Path
    bucket: str
    server: _Server

    @property
    def objects_root(self) -> Path:
        """Where object ``BUCKET/PATH`` is stored on disk (``BQEMU_GCS_LOCAL_ROOT``)."""
        return self.data_dir / ".cloudstorage"

    def env(self) -> dict[str, str]:
        return {ENV_STORAGE: self.url}

    def stop(self) -> None:
        self.server.stop()


def start_gcs_emulator(
    workdir: Path, bucket: str = "beam-temp", timeout: float = 30.0
) -> GcsEmulator:
    """Start ``gcp-storage-emulator`` with ``bucket`` created, storing under ``workdir``."""
    workdir = Path(workdir)
    data_dir = workdir / "gcs-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "gcs-emulator.log"
    last_error = ""
    for _attempt in range(3):  # the free port can be taken between probe and bind
        port = free_port()
        argv = [
            sys.executable, "-m", "gcp_storage_emulator", "-d", str(data_dir),
            "start", "--host", "127.0.0.1", "--port", str(port),
            "--default-bucket", bucket,
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k != ENV_STORAGE}
        server = _Server(_spawn(argv, log_path, env, workdir), log_path)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and server.alive():
            if _http_ok(f"{url}/storage/v1/b/{bucket}"):
                return GcsEmulator(url=url, data_dir=data_dir, bucket=bucket, server=server)
            time.sleep(0.1)
        last_error = "exited early" if not server.alive() else f"not ready in {timeout}s"
        server.stop()
    raise EmulatorError(f"gcp-storage-emulator {last_error}; log {log_path}:\n{_tail(log_path)}")


# --------------------------------------------------------------------------
# BigQuery emulator
# --------------------------------------------------------------------------


@dataclass
class BigQueryEmulator:
    """A running bqemulator server."""

    rest_url: str  # http://127.0.0.1:PORT
    grpc_endpoint: str  # 127.0.0.1:PORT
    project: str
    server: _Server
    gcs: GcsEmulator | None = None
    _clients: list[Any] = field(default_factory=list, repr=False)

    @property
    def pid(self) -> int:
        return self.server.pid

    @property
    def log_path(self) -> Path:
        return self.server.log_path

    def log_tail(self, max_chars: int = 6000) -> str:
        return self.server.log_tail(max_chars)

    def env(self) -> dict[str, str]:
        """Env vars a job subprocess needs (see tests/support/bq_redirect)."""
        env = {
            ENV_REST: self.rest_url,
            ENV_GRPC: self.grpc_endpoint,
            ENV_PROJECT: self.project,
            # Keep google-auth away from the GCE metadata server (a non-loopback
            # address): no probe, and any lookup goes to a closed loopback port.
            "NO_GCE_CHECK": "True",
            "GCE_METADATA_HOST": "127.0.0.1:9",
            "GCE_METADATA_IP": "127.0.0.1:9",
            "GOOGLE_CLOUD_PROJECT": self.project,
        }
        if self.gcs is not None:
            env.update(self.gcs.env())
        return env

    def subprocess_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: os.environ) + :meth:`env` + the redirect on PYTHONPATH.

        Credentials env vars are dropped so nothing can pick real ones up.
        """
        env = dict(os.environ if base is None else base)
        for key in ("GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG"):
            env.pop(key, None)
        env.update(self.env())
        paths = [str(REDIRECT_DIR)]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def client(self):
        """A google-cloud-bigquery Client talking to this emulator."""
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        client = bigquery.Client(
            project=self.project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=self.rest_url),
        )
        self._clients.append(client)
        return client

    def stop(self) -> None:
        for client in self._clients:
            with contextlib.suppress(Exception):
                client.close()
        self._clients.clear()
        self.server.stop()


def _parse_listen_ports(log_path: Path) -> tuple[int | None, int | None]:
    rest = grpc = None
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return None, None
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("event") == "rest.listen":
            rest = int(rec["port"])
        elif rec.get("event") == "grpc.listen":
            grpc = int(rec["port"])
    return rest, grpc


def start_bigquery_emulator(
    workdir: Path,
    project: str = DEFAULT_PROJECT,
    gcs: GcsEmulator | None = None,
    timeout: float = 60.0,
    log_level: str = "info",
) -> BigQueryEmulator:
    """Start ``bqemulator`` (ephemeral, in-memory) on random loopback ports.

    The server picks its own free ports (``--rest-port 0 --grpc-port 0``) and
    logs them as JSON; this waits until both are logged and ``/healthz``
    answers, or raises :class:`EmulatorError` with the log tail.  With
    ``gcs``, load jobs read ``gs://`` URIs from that GCS emulator's disk.
    """
    ensure_duckdb_extensions()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "bqemulator.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BQEMU_")}
    env.pop(ENV_REST, None)
    if gcs is not None:
        gcs.objects_root.mkdir(parents=True, exist_ok=True)
        env["BQEMU_GCS_LOCAL_ROOT"] = str(gcs.objects_root)
    argv = [
        sys.executable, "-m", "bqemulator", "start",
        "--rest-host", "127.0.0.1", "--rest-port", "0",
        "--grpc-host", "127.0.0.1", "--grpc-port", "0",
        "--ephemeral", "--project", project,
        "--log-format", "json", "--log-level", log_level,
    ]  # fmt: skip
    server = _Server(_spawn(argv, log_path, env, workdir), log_path)
    deadline = time.monotonic() + timeout
    rest = grpc = None
    try:
        while time.monotonic() < deadline:
            if not server.alive():
                raise EmulatorError(
                    f"bqemulator exited with {server.process.returncode}; "
                    f"log {log_path}:\n{server.log_tail()}"
                )
            rest, grpc = _parse_listen_ports(log_path)
            if rest and grpc and _http_ok(f"http://127.0.0.1:{rest}/healthz"):
                return BigQueryEmulator(
                    rest_url=f"http://127.0.0.1:{rest}",
                    grpc_endpoint=f"127.0.0.1:{grpc}",
                    project=project,
                    server=server,
                    gcs=gcs,
                )
            time.sleep(0.1)
        raise EmulatorError(
            f"bqemulator not ready after {timeout}s (rest={rest}, grpc={grpc}); "
            f"log {log_path}:\n{server.log_tail()}"
        )
    except BaseException:
        server.stop()
        raise


# --------------------------------------------------------------------------
# data helpers (google-cloud-bigquery client pointed at the emulator)
# --------------------------------------------------------------------------

SchemaSpec = Sequence[
    Any
]  # SchemaField | (name, type) | (name, type, mode) | {"name":..,"type":..}


def table_id(spec: str, project: str | None = None) -> str:
    """Normalise ``P:D.T``, ``P.D.T`` or ``D.T`` to ``P.D.T``."""
    if ":" in spec:
        proj, rest = spec.split(":", 1)
        return f"{proj}.{rest}"
    parts = spec.split(".")
    if len(parts) == 3:
        return spec
    if len(parts) == 2 and project:
        return f"{project}.{spec}"
    raise ValueError(f"not a table spec: {spec!r} (want P:D.T, P.D.T or D.T with a project)")


def schema_fields(schema: SchemaSpec):
    from google.cloud import bigquery

    fields = []
    for item in schema:
        if isinstance(item, bigquery.SchemaField):
            fields.append(item)
        elif isinstance(item, Mapping):
            fields.append(bigquery.SchemaField.from_api_repr(dict(item)))
        else:
            name, typ, *mode = item
            fields.append(bigquery.SchemaField(name, typ, mode=mode[0] if mode else "NULLABLE"))
    return fields


def create_dataset(client, dataset: str, exists_ok: bool = True):
    """Create ``dataset`` (``D`` or ``P.D``) in the client's project."""
    from google.cloud import bigquery

    ds_id = dataset if "." in dataset else f"{client.project}.{dataset}"
    return client.create_dataset(bigquery.Dataset(ds_id), exists_ok=exists_ok, timeout=30)


def create_table(
    client,
    spec: str,
    schema: SchemaSpec,
    rows: Sequence[Mapping[str, Any]] = (),
    replace: bool = True,
):
    """Create table ``spec`` with ``schema`` (dataset too) and load ``rows``.

    Rows go in with ``insertAll`` (google-cloud-bigquery's load-from-JSON
    uses a multipart upload whose ``*/*`` part bqemulator rejects); the
    emulator makes streamed rows visible to tabledata.list and the Storage
    Read API at once.
    """
    from google.cloud import bigquery

    tid = table_id(spec, client.project)
    create_dataset(client, tid.rsplit(".", 1)[0])
    if replace:
        client.delete_table(tid, not_found_ok=True, timeout=30)
    table = client.create_table(bigquery.Table(tid, schema=schema_fields(schema)), timeout=30)
    rows = [dict(r) for r in rows]
    for start in range(0, len(rows), 500):
        errors = client.insert_rows_json(table, rows[start : start + 500], timeout=30)
        if errors:
            raise EmulatorError(f"inserting rows into {tid} failed: {errors[:5]}")
    return table


def read_rows(client, spec: str, order_by: str | None = None) -> list[dict[str, Any]]:
    """All rows of table ``spec`` as dicts (tabledata.list, no query engine)."""
    tid = table_id(spec, client.project)
    rows = [dict(row.items()) for row in client.list_rows(tid, timeout=30)]
    if order_by:
        rows.sort(key=lambda r: (r.get(order_by) is None, r.get(order_by)))
    return rows


def table_schema(client, spec: str) -> list[tuple[str, str, str]]:
    """``[(name, type, mode), ...]`` of table ``spec`` (types as the API reports them)."""
    table = client.get_table(table_id(spec, client.project), timeout=30)
    return [(f.name, f.field_type, f.mode or "NULLABLE") for f in table.schema]


def table_exists(client, spec: str) -> bool:
    from google.api_core.exceptions import NotFound

    try:
        client.get_table(table_id(spec, client.project), timeout=30)
    except NotFound:
        return False
    return True


def list_datasets(client) -> list[str]:
    return sorted(d.dataset_id for d in client.list_datasets(timeout=30))


def run_script(
    env: dict,
    script: Path,
    args: list[str],
    cwd: Path,
    timeout: float,
    label: str,
    log_dir: Path | None = None,
) -> tuple[float, str]:
    """`script ARGS` in a fresh interpreter with `env`; returns (seconds, output).

    Never hangs: stdin is closed (an auth prompt reads EOF instead of waiting) and the
    process group is killed after `timeout`. A non-zero exit fails the test with the log tail.
    """
    import pytest

    log_path = Path(log_dir or cwd) / f"{label}-{time.monotonic_ns()}.log"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(script), *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(cwd),
            start_new_session=True,
        )
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: only its processes
            proc.wait(timeout=10)
            rc = None
    elapsed = time.monotonic() - started
    output = log_path.read_text(errors="replace")
    if rc != 0:
        state = "timed out" if rc is None else f"exited {rc}"
        pytest.fail(f"{label} {state} after {elapsed:.1f}s; output tail:\n{output[-8000:]}")
    return elapsed, output
