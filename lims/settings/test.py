"""Test settings: the machine's real PostgreSQL and Redis unless the environment says otherwise."""

import os
import tempfile

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lims")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
# One data dir per test session, inherited by the worker processes the tests start.
os.environ.setdefault("LIMS_DATA_DIR", tempfile.mkdtemp(prefix="lims-test-"))

from lims.settings.base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LIMS_WEBHOOK_BACKOFF_S = 0.2
# the tests' receivers listen on loopback (tests/lims/test_events.py)
LIMS_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
# Live-server threads die after each request: keeping their connections would leak them.
# A test that runs its own processes may keep them as production does (tests/faults).
DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("LIMS_TEST_CONN_MAX_AGE", "0"))  # noqa: F405
