#!/usr/bin/env bash
# Runs every test. Sets up .venv first when it is missing or stale (scripts/setup.sh).
# Extra arguments go to pytest, e.g. scripts/test.sh tests/test_words.py -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
