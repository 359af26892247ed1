#!/usr/bin/env bash
# Creates .venv and installs the project (with dev tools) when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $PY"
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml harvester/pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "== installing dependencies"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  # the instrument-PC harvester (its own package, no Django): lims-harvest, tests/harvester
  .venv/bin/python -m pip install --quiet -e ./harvester
  rm -f .venv/.installed-*
  touch "$stamp"
fi
