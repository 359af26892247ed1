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


# -- security review finding 8 (issue 12) ---------------------------------------------------

_GOOD_ENV = {
    "LIMS_ENV": "production",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/lims",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/13",
    "DJANGO_SECRET_KEY": "Zr8#kq2!Vn4xWp7-LmT9sYb3@Hc6Jd0&Fg5^Qa1*Ue8(Ko2)Ri7",
    "DJANGO_ALLOWED_HOSTS": "lims.example.org",
}


def test_production_passes_check_deploy_without_a_warning():
    done = _run(_GOOD_ENV, "check", "--deploy", "--fail-level", "WARNING")
    assert done.returncode == 0, done.stderr + done.stdout


def test_production_refuses_the_development_or_a_weak_secret_and_debug():
    for key in ("embedded-development-key-not-for-production", "short-key", "a" * 60):
        done = _run({**_GOOD_ENV, "DJANGO_SECRET_KEY": key}, "check")
        assert done.returncode != 0, key
        assert "DJANGO_SECRET_KEY" in done.stderr, done.stderr[-500:]
    debug = _run({**_GOOD_ENV, "DJANGO_DEBUG": "1"}, "check")
    assert debug.returncode != 0 and "DJANGO_DEBUG" in debug.stderr


def test_the_image_and_compose_default_to_production_with_secure_cookies():
    dockerfile = (ROOT / "Dockerfile").read_text()
    env_lines = [line for line in dockerfile.splitlines() if line.startswith("ENV ")]
    assert any("LIMS_ENV=production" in line for line in env_lines), env_lines
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "DJANGO_SECURE_COOKIES:-0" not in compose
    assert "DJANGO_SECURE_COOKIES: ${DJANGO_SECURE_COOKIES:-1}" in compose
