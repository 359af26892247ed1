#!/usr/bin/env bash
# The README's test command: quality gates, then the whole suite on PostgreSQL + Redis
# with real worker processes, plus the embedded-mode smoke test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export DJANGO_SETTINGS_MODULE=lims.settings.test
PY=.venv/bin/python

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy lims cells samples depositions harvester/lims_harvester
echo "== import contracts"
.venv/bin/lint-imports --no-cache
bash scripts/services.sh
# System packages the tests use: Debian's Chromium (browser tests) and mdbtools (Arbin .res
# fallback reader). Installed here, never by hand, so a new machine passes too.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v mdb-export >/dev/null 2>&1 || missing+=(mdbtools)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "== django checks"
$PY manage.py check --fail-level WARNING
$PY manage.py makemigrations --check --dry-run
echo "== OpenAPI schema is up to date"
mkdir -p var
$PY manage.py spectacular --file var/schema.generated.yml --validate
diff -u schema.yml var/schema.generated.yml
[ "${1:-}" = "--lint-only" ] && exit 0
echo "== tests"
$PY -m pytest "$@"
