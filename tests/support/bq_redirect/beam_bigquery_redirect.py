"""Test-only: point Apache Beam's BigQuery connectors at a local emulator.

Beam (2.77) has no endpoint option for BigQuery, so this monkeypatches the
few places where ``apache_beam.io.gcp`` builds its clients:

* ``bigquery_tools.BigQueryWrapper._bigquery_client`` -- the apitools
  ``BigqueryV2`` REST client used for tables, datasets and load/copy/query
  jobs.  Rebuilt with ``url=<emulator>/bigquery/v2/``, no credentials,
  ``get_credentials=False`` (otherwise apitools falls back to an interactive
  OAuth login when no credentials exist, and hangs), an ``httplib2`` timeout,
  few/short apitools retries, and "connection refused" turned into a
  non-retried error (Beam's retry decorators would otherwise spend minutes
  retrying a dead emulator).
* ``bigquery_tools.gcp_bigquery.Client`` -- the google-cloud-bigquery client
  that ``BigQueryWrapper()`` makes for streaming inserts.  Replaced (through a
  module proxy local to ``bigquery_tools``, the real module is untouched) by one
  with ``AnonymousCredentials`` and ``client_options.api_endpoint``.
* ``bigquery.bq_storage.BigQueryReadClient`` -- the Storage Read API client
  used by ``ReadFromBigQuery(method=DIRECT_READ)``.  Built on an insecure gRPC
  channel to the emulator's gRPC port (again through a local module proxy).
* ``BigQueryWrapper._delete_dataset`` -- only datasets whose id starts with
  Beam's temporary prefix ``beam_temp_dataset_`` may be deleted.  The
  emulator ignores the label filter of ``datasets.list``, so the DIRECT_READ
  clean-up (``_clean_up_beam_labelled_temporary_datasets``) would otherwise
  delete every dataset of the project, the source table's included.
* ``internal.gcp.auth._Credentials`` -- marked as resolved to "no
  credentials", so Beam never calls ``google.auth.default()`` (with its
  retries and GCE metadata probes); GCS then uses an anonymous
  google-cloud-storage client, which honours ``STORAGE_EMULATOR_HOST``.
* ``gce_metadata_util._fetch_metadata`` -- returns "" instead of asking
  ``http://metadata/`` (a non-loopback host) for a Dataflow job id.

Configuration, all from the environment unless passed to :func:`install`:

``BIGQUERY_EMULATOR_HOST``     REST base URL, e.g. ``http://127.0.0.1:9050``
                               (google-cloud-bigquery also reads this one).
``BIGQUERY_EMULATOR_GRPC``     ``host:port`` of the Storage API gRPC server.
``BIGQUERY_EMULATOR_PROJECT``  default project of the redirected clients
                               (default ``test-project``).
``BIGQUERY_EMULATOR_TIMEOUT``  seconds for each REST request (default 60).

Nothing happens unless ``BIGQUERY_EMULATOR_HOST`` is set (or ``install`` is
called with a URL).  In a subprocess, ``sitecustomize.py`` next to this file
calls :func:`install_from_env` (it only arms an import hook; Beam is patched
when the job imports ``apache_beam.io.gcp.bigquery``).  In-process, call
:func:`install` and ``uninstall()`` the returned handle.
"""

from __future__ import annotations

import importlib.abc
import logging
import os
import socket
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

_LOG = logging.getLogger("beam_bigquery_redirect")

ENV_REST = "BIGQUERY_EMULATOR_HOST"
ENV_GRPC = "BIGQUERY_EMULATOR_GRPC"
ENV_PROJECT = "BIGQUERY_EMULATOR_PROJECT"
ENV_TIMEOUT = "BIGQUERY_EMULATOR_TIMEOUT"
DEFAULT_PROJECT = "test-project"
TRIGGER_MODULE = "apache_beam.io.gcp.bigquery"

_lock = threading.RLock()
_active: Redirect | None = None


class _ModuleProxy(types.ModuleType):
    """Looks like ``module`` but with a few attributes overridden."""

    def __init__(self, module: types.ModuleType, **overrides: Any) -> None:
        super().__init__(module.__name__, module.__doc__)
        self.__dict__["_real_module"] = module
        self.__dict__.update(overrides)

    def __getattr__(self, name: str) -> Any:  # only called for missing attrs
        return getattr(self.__dict__["_real_module"], name)


def _normalise_rest_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url


class Redirect:
    """The applied patches; :meth:`uninstall` restores Beam as it was."""

    def __init__(
        self, rest_url: str, grpc_endpoint: str | None, project: str, timeout: float
    ) -> None:
        self.rest_url = _normalise_rest_url(rest_url)
        self.grpc_endpoint = grpc_endpoint
        self.project = project
        self.timeout = timeout
        self._undo: list[Callable[[], None]] = []
        self.applied = False

    # -- client factories -------------------------------------------------

    def apitools_client(self, pipeline_options: Any = None):
        import apache_beam
        import httplib2
        from apache_beam.io.gcp.internal.clients import bigquery as bq_v2
        from apache_beam.utils.retry import PermanentException

        rest_url = self.rest_url

        class EmulatorUnreachable(PermanentException, ConnectionError):
            """Not retried by Beam or apitools: the local server is gone."""

        class _Http(httplib2.Http):
            def request(self, *args: Any, **kwargs: Any):
                try:
                    return super().request(*args, **kwargs)
                except ConnectionRefusedError as exc:
                    raise EmulatorUnreachable(
                        f"BigQuery emulator at {rest_url} refused the connection"
                    ) from exc

        client = bq_v2.BigqueryV2(
            url=rest_url + "/bigquery/v2/",
            credentials=None,
            get_credentials=False,
            http=_Http(timeout=self.timeout),
            response_encoding="utf8",
            additional_http_headers={"user-agent": f"apache-beam-{apache_beam.__version__}"},
        )
        # apitools retries socket errors 5 times, waiting up to 60 s each.
        client.num_retries = 2
        client.max_retry_wait = 2
        return client

    def gcp_client(self, *args: Any, **kwargs: Any):
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        kwargs.pop("credentials", None)
        kwargs.pop("client_options", None)
        kwargs.setdefault("project", self.project)
        return bigquery.Client(
            *args,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=self.rest_url),
            **kwargs,
        )

    def read_client(self, *args: Any, **kwargs: Any):
        if not self.grpc_endpoint:
            raise RuntimeError(
                f"{ENV_GRPC} is not set: the BigQuery Storage Read API "
                "(ReadFromBigQuery method=DIRECT_READ) cannot be redirected"
            )
        import grpc
        from google.cloud import bigquery_storage_v1
        from google.cloud.bigquery_storage_v1.services.big_query_read.transports import (
            BigQueryReadGrpcTransport,
        )

        channel = grpc.insecure_channel(
            self.grpc_endpoint,
            options=[
                ("grpc.max_receive_message_length", -1),
                ("grpc.max_send_message_length", -1),
            ],
        )
        transport = BigQueryReadGrpcTransport(channel=channel)
        client = bigquery_storage_v1.BigQueryReadClient(transport=transport)
        # The gapic defaults allow a ReadRows stream a whole day; a stalled
        # local server must fail the job instead of hanging it.
        timeout = self.timeout
        for name in ("create_read_session", "read_rows", "split_read_stream"):
            method = getattr(client, name)

            def with_timeout(*args: Any, _method=method, **kwargs: Any):
                kwargs.setdefault("timeout", timeout)
                return _method(*args, **kwargs)

            setattr(client, name, with_timeout)
        return client

    # -- patching ----------------------------------------------------------

    def _set(self, obj: Any, name: str, value: Any) -> None:
        missing = object()
        old = obj.__dict__.get(name, missing) if hasattr(obj, "__dict__") else missing
        setattr(obj, name, value)

        def undo() -> None:
            if old is missing:
                delattr(obj, name)
            else:
                setattr(obj, name, old)

        self._undo.append(undo)

    def apply(self) -> None:
        """Patch Beam now (imports ``apache_beam.io.gcp.bigquery``)."""
        if self.applied:
            return
        import importlib

        beam_bq = importlib.import_module(TRIGGER_MODULE)  # may be mid-import (hook)
        from apache_beam.internal.gcp import auth
        from apache_beam.io.gcp import bigquery_tools, gce_metadata_util

        redirect = self
        wrapper = bigquery_tools.BigQueryWrapper

        # 1. apitools REST client
        self._set(
            wrapper,
            "_bigquery_client",
            staticmethod(lambda pipeline_options=None: redirect.apitools_client(pipeline_options)),
        )

        # 2. google-cloud-bigquery client made by BigQueryWrapper.__init__
        if bigquery_tools.gcp_bigquery is not None:
            self._set(
                bigquery_tools,
                "gcp_bigquery",
                _ModuleProxy(bigquery_tools.gcp_bigquery, Client=self.gcp_client),
            )

        # 3. Storage Read API client
        real_storage = getattr(beam_bq, "bq_storage", None)
        if real_storage is not None:
            self._set(
                beam_bq,
                "bq_storage",
                _ModuleProxy(real_storage, BigQueryReadClient=self.read_client),
            )

        # 4. never delete a dataset that is not one of Beam's temporary ones
        original_delete = wrapper._delete_dataset
        temp_prefix = wrapper.TEMP_DATASET

        def _delete_dataset(self_, project_id, dataset_id, delete_contents=True):
            if not str(dataset_id).startswith(temp_prefix):
                _LOG.warning(
                    "bigquery emulator redirect: not deleting dataset %s:%s "
                    "(not a Beam temporary dataset; the emulator ignores "
                    "datasets.list label filters)",
                    project_id,
                    dataset_id,
                )
                return None
            return original_delete(self_, project_id, dataset_id, delete_contents)

        self._set(wrapper, "_delete_dataset", _delete_dataset)

        # 5. no google.auth.default(): Beam's clients go anonymous
        creds = auth._Credentials
        with creds._credentials_lock:
            old_init, old_creds = creds._credentials_init, creds._credentials
            creds._credentials_init, creds._credentials = True, None

        def undo_creds() -> None:
            with creds._credentials_lock:
                creds._credentials_init, creds._credentials = old_init, old_creds

        self._undo.append(undo_creds)
        # apitools/httplib2 also honour the global socket timeout
        if socket.getdefaulttimeout() is None:
            socket.setdefaulttimeout(self.timeout)
            self._undo.append(lambda: socket.setdefaulttimeout(None))

        # 6. no GCE metadata lookups (http://metadata/ is not on loopback)
        self._set(gce_metadata_util, "_fetch_metadata", lambda key: "")

        self.applied = True
        _LOG.info(
            "Beam BigQuery redirected to %s (gRPC %s, project %s)",
            self.rest_url,
            self.grpc_endpoint,
            self.project,
        )

    def uninstall(self) -> None:
        global _active
        with _lock:
            while self._undo:
                self._undo.pop()()
            self.applied = False
            if _active is self:
                _active = None


def install(
    rest_url: str | None = None,
    grpc_endpoint: str | None = None,
    project: str | None = None,
    timeout: float | None = None,
) -> Redirect:
    """Patch Beam now; arguments default to the env vars. Returns the handle."""
    global _active
    rest_url = rest_url or os.environ.get(ENV_REST)
    if not rest_url:
        raise RuntimeError(f"no emulator URL: pass rest_url or set {ENV_REST}")
    with _lock:
        if _active is not None:
            _active.uninstall()
        redirect = Redirect(
            rest_url,
            grpc_endpoint or os.environ.get(ENV_GRPC) or None,
            project or os.environ.get(ENV_PROJECT) or DEFAULT_PROJECT,
            float(timeout or os.environ.get(ENV_TIMEOUT) or 60),
        )
        redirect.apply()
        _active = redirect
        return redirect


# -- lazy install for subprocesses (sitecustomize) ---------------------------


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    """Runs ``callback`` right after module ``target`` has been executed."""

    def __init__(self, target: str, callback: Callable[[], None]) -> None:
        self.target = target
        self.callback = callback

    def find_spec(self, fullname, path, target=None):
        if fullname != self.target:
            return None
        self._remove()
        spec = None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        callback = self.callback
        original_exec = loader.exec_module

        class _Loader(importlib.abc.Loader):
            def create_module(self, spec_):
                return loader.create_module(spec_)

            def exec_module(self, module):
                original_exec(module)
                try:
                    callback()
                except BaseException as exc:
                    # apache_beam.io swallows ImportError from this module; a
                    # half-redirected job must never reach real GCP, so fail
                    # loudly with something that is not an ImportError.
                    raise RuntimeError(
                        f"beam_bigquery_redirect: patching Beam failed: {exc!r}"
                    ) from exc

            def __getattr__(self, name):
                return getattr(loader, name)

        spec.loader = _Loader()
        return spec

    def _remove(self) -> None:
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass


def install_from_env() -> bool:
    """If ``BIGQUERY_EMULATOR_HOST`` is set, patch Beam when it gets imported.

    Returns whether a redirect was armed (or applied, if Beam's BigQuery
    module is already imported).
    """
    if not os.environ.get(ENV_REST):
        return False
    # google-auth: never probe the GCE metadata server.
    os.environ.setdefault("NO_GCE_CHECK", "True")
    if TRIGGER_MODULE in sys.modules:
        _install_and_announce()
    else:
        sys.meta_path.insert(0, _PatchAfterImport(TRIGGER_MODULE, _install_and_announce))
    return True


def _install_and_announce() -> None:
    redirect = install()
    # Jobs usually configure logging only after importing Beam: say it plainly.
    sys.stderr.write(
        f"beam_bigquery_redirect: Beam BigQuery redirected to {redirect.rest_url} "
        f"(gRPC {redirect.grpc_endpoint}, project {redirect.project})\n"
    )
    sys.stderr.flush()


def active() -> Redirect | None:
    return _active
