"""Test-only sitecustomize: redirect Beam's BigQuery clients to an emulator.

Put this folder (``tests/bq_redirect``) first on ``PYTHONPATH`` of a
subprocess and set ``BIGQUERY_EMULATOR_HOST`` (plus ``BIGQUERY_EMULATOR_GRPC``
for DIRECT_READ); see ``beam_bigquery_redirect.py``.  Without that env var
this does nothing.  It shadows any other ``sitecustomize`` module, so it runs
the next one on ``sys.path`` (if any) first.
"""

import os
import sys


def _chain_next_sitecustomize() -> None:
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


try:
    _chain_next_sitecustomize()
except Exception:  # noqa: BLE001 - same leniency as site.py
    pass

if os.environ.get("BIGQUERY_EMULATOR_HOST"):
    try:
        import beam_bigquery_redirect

        beam_bigquery_redirect.install_from_env()
    except BaseException:  # noqa: BLE001 - refuse to run at all rather than against real GCP
        import traceback

        traceback.print_exc()
        sys.stderr.write(
            "sitecustomize: BIGQUERY_EMULATOR_HOST is set but the Beam BigQuery "
            "redirect could not be armed; refusing to run against real GCP.\n"
        )
        sys.stderr.flush()
        os._exit(86)
