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
.venv/bin/mypy lims cells samples depositions
bash scripts/services.sh
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
