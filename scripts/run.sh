#!/usr/bin/env bash
# The README's run command: set up, migrate, load demo data, print a login and an instrument
# token, then serve web + a real Celery worker + beat (embedded mode unless the environment
# says otherwise). Ctrl-C stops all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
$PY manage.py migrate --noinput
$PY manage.py collectstatic --noinput -v 0
$PY manage.py lims_demo --load-only --port "${LIMS_PORT:-8000}"
exec .venv/bin/honcho -f Procfile.dev start
