#!/usr/bin/env bash
# Sets up .venv (scripts/setup.sh) and runs every template locally on the bundled data.
# Extra arguments go to tools/demo.py, e.g. scripts/demo.sh --no-stream
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m tools.demo "$@"
