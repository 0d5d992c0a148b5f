#!/usr/bin/env bash
# Runs every test. Sets up .venv first when it is missing or stale (scripts/setup.sh).
#   scripts/test.sh                 everything (what CI runs)
#   scripts/test.sh --fast          the unit tier only (tests/unit: pure logic and composites,
#                                   no emulator, no subprocess job runs), a couple of minutes
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit/words -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [[ ${1:-} == --fast ]]; then
  shift
  exec .venv/bin/python -m pytest tests/unit "$@"
fi
exec .venv/bin/python -m pytest "$@"
