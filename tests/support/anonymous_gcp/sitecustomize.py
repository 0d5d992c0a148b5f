"""Test-only: makes Beam connect to Google Cloud anonymously at once.

Put this folder on PYTHONPATH of a subprocess (tests/support/processes.py does) together
with BEAM_TEST_ANONYMOUS_GCP=1. Without it, Beam retries the default credentials for
about 40 seconds on a machine that has none before it goes anonymous anyway.
"""

import os

if os.environ.get("BEAM_TEST_ANONYMOUS_GCP") == "1":
    try:
        from apache_beam.internal.gcp import auth as _beam_auth

        _beam_auth._Credentials._get_service_credentials = classmethod(
            lambda cls, pipeline_options=None: None
        )
    except ImportError:  # Beam not installed in this interpreter: nothing to patch.
        pass
