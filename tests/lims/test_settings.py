"""Production is configured by the environment only, and refuses to start half-configured."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

PROD_VARS = ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS")


def _run(env_extra: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in PROD_VARS}
    env.update(DJANGO_SETTINGS_MODULE="lims.settings.base", **env_extra)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_production_without_its_variables_refuses_to_start():
    done = _run({"LIMS_ENV": "production", "DJANGO_SECRET_KEY": "x" * 50}, "check")
    assert done.returncode != 0
    assert "DATABASE_URL" in done.stderr and "CELERY_BROKER_URL" in done.stderr
    assert "DJANGO_ALLOWED_HOSTS" in done.stderr


def test_production_settings_run_against_the_local_services():
    env = {
        "LIMS_ENV": "production",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/lims",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/13",
        "DJANGO_SECRET_KEY": "a-long-random-production-secret-for-the-test-" + "x" * 20,
        "DJANGO_ALLOWED_HOSTS": "lims.example.org",
    }
    done = _run(env, "check", "--database", "default")
    assert done.returncode == 0, done.stderr
    shown = _run(
        env,
        "shell",
        "--verbosity",
        "0",
        "-c",
        "from django.conf import settings as s; from lims.celery import app;"
        "print(s.DEBUG, s.DATABASES['default']['ENGINE'], app.conf.broker_url,"
        " s.ALLOWED_HOSTS)",
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == [
        "False",
        "django.db.backends.postgresql",
        "redis://127.0.0.1:6379/13",
        "['lims.example.org']",
    ]
