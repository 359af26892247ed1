"""All settings, driven by the environment.

With no environment variables the app runs embedded: SQLite and files under ``var/`` and a
Celery broker on the filesystem, still with a real worker process. ``LIMS_ENV=production``
switches to PostgreSQL + Redis from the environment and refuses to start without them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent
LIMS_ENV = os.environ.get("LIMS_ENV", "development")
PRODUCTION = LIMS_ENV == "production"

if PRODUCTION:
    _required = ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS")
    _missing = [name for name in _required if not os.environ.get(name)]
    if _missing:
        raise ImproperlyConfigured(
            "LIMS_ENV=production needs these environment variables: " + ", ".join(_missing)
        )

DATA_DIR = Path(os.environ.get("LIMS_DATA_DIR", BASE_DIR / "var"))
DATA_DIR.mkdir(parents=True, exist_ok=True)

_DEVELOPMENT_KEY = "embedded-development-key-not-for-production"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", _DEVELOPMENT_KEY)
DEBUG = os.environ.get("DJANGO_DEBUG", "0" if PRODUCTION else "1") == "1"
if PRODUCTION:
    # Django's own test (security.W009) made an error: a known or guessable key signs
    # sessions and password-reset links
    if (
        SECRET_KEY == _DEVELOPMENT_KEY
        or SECRET_KEY.startswith("django-insecure-")
        or len(SECRET_KEY) < 50
        or len(set(SECRET_KEY)) < 5
    ):
        raise ImproperlyConfigured(
            "LIMS_ENV=production needs a strong DJANGO_SECRET_KEY: at least 50 characters, "
            "5 of them different, not the development key (python -c 'import secrets; "
            "print(secrets.token_urlsafe(50))')"
        )
    if DEBUG:
        raise ImproperlyConfigured("LIMS_ENV=production refuses DJANGO_DEBUG=1")
ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")
    if h.strip()
]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "lims",
    "samples",
    "depositions",
    "cells",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "lims.middleware.RejectNulMiddleware",
    "lims.middleware.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "lims.changelog.ChangeContextMiddleware",
]

ROOT_URLCONF = "lims.urls"
WSGI_APPLICATION = "lims.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database() -> dict[str, Any]:
    url = os.environ.get("DATABASE_URL")
    if url:
        db = dict(dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True))
    else:
        db = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(DATA_DIR / "lims.sqlite3")}
    if db["ENGINE"] == "django.db.backends.sqlite3":
        # Web, worker and beat share one file: WAL lets readers run beside a writer,
        # IMMEDIATE takes the write lock up front (no upgrade deadlocks), and the busy
        # timeout makes a writer wait instead of failing with "database is locked".
        db["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
            " PRAGMA busy_timeout=30000;",
        }
    return db


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
# The lab's zone: instrument logs write naive local times, read in this zone.
TIME_ZONE = os.environ.get("LIMS_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
# Outside production, serve straight from the finders (no collectstatic needed to browse).
WHITENOISE_USE_FINDERS = not PRODUCTION
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}


def _plotly_dir() -> str:
    import plotly

    return str(Path(plotly.__file__).parent / "package_data")


# Plotting library served from our own static files (installed from PyPI), never a CDN.
STATICFILES_DIRS = [BASE_DIR / "static", ("vendor/plotly", _plotly_dir())]

# Raw files (content addressed) and derived series (Parquet) live here.
LIMS_STORAGE_DIR = Path(os.environ.get("LIMS_STORAGE_DIR", DATA_DIR / "store"))
LIMS_UPLOAD_MAX_BYTES = int(os.environ.get("LIMS_UPLOAD_MAX_BYTES", 2 * 1024**3))
# Everything that is not a file is held in memory: each ingest form field (metadata JSON
# included, lims/api/parsers.py) and, together, a browser form's fields or an API request's
# JSON/urlencoded body (Django's own cap, applied to the API by lims/api/parsers.py).
LIMS_FORM_FIELD_MAX_BYTES = int(os.environ.get("LIMS_FORM_FIELD_MAX_BYTES", 64 * 1024))
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("DATA_UPLOAD_MAX_MEMORY_SIZE", 2621440))
# A .gz/.zip upload (or a zip-based format) may inflate to this many bytes, and to at most
# this multiple of its own size (never below 64 MiB; 0 = no ratio limit): bombs fail fast.
LIMS_UNPACK_MAX_BYTES = int(os.environ.get("LIMS_UNPACK_MAX_BYTES", 4 * 1024**3))
LIMS_UNPACK_MAX_RATIO = float(os.environ.get("LIMS_UNPACK_MAX_RATIO", "200"))
FILE_UPLOAD_HANDLERS = ["lims.ingestion.uploads.LimitedTemporaryFileUploadHandler"]
FILE_UPLOAD_TEMP_DIR = os.environ.get("LIMS_UPLOAD_TEMP_DIR") or str(DATA_DIR / "tmp")
Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)

# Sample import (CSV/XLSX, read whole in the web process): bytes, data rows and, for XLSX,
# bytes once inflated. Over any of them: a 400 naming the limit.
LIMS_IMPORT_MAX_BYTES = int(os.environ.get("LIMS_IMPORT_MAX_BYTES", 10 * 1024**2))
LIMS_IMPORT_MAX_ROWS = int(os.environ.get("LIMS_IMPORT_MAX_ROWS", 10000))
LIMS_IMPORT_MAX_INFLATED_BYTES = int(os.environ.get("LIMS_IMPORT_MAX_INFLATED_BYTES", 64 * 1024**2))

# Webhooks may not target loopback/private/link-local addresses (lims.events.targets) except
# these hosts ("host" or "host:port", comma separated): the lab's own receiver.
LIMS_WEBHOOK_ALLOWED_HOSTS = [
    h.strip() for h in os.environ.get("LIMS_WEBHOOK_ALLOWED_HOSTS", "").split(",") if h.strip()
]
# A receiver refuses a signature whose timestamp is further than this from its clock.
LIMS_WEBHOOK_TOLERANCE_S = int(os.environ.get("LIMS_WEBHOOK_TOLERANCE_S", "300"))
LIMS_WEBHOOK_TIMEOUT_S = float(os.environ.get("LIMS_WEBHOOK_TIMEOUT_S", "10"))
# A failing delivery is retried with exponential backoff (5 s, 10 s, ... capped at 10 min) for a
# day after it was made, so a receiver down for hours still gets everything once it is back
# (within one capped interval); after that it fails and is resent by hand (API or admin).
LIMS_WEBHOOK_BACKOFF_S = float(os.environ.get("LIMS_WEBHOOK_BACKOFF_S", "5"))
LIMS_WEBHOOK_BACKOFF_MAX_S = float(os.environ.get("LIMS_WEBHOOK_BACKOFF_MAX_S", "600"))
LIMS_WEBHOOK_RETRY_FOR_S = float(os.environ.get("LIMS_WEBHOOK_RETRY_FOR_S", str(24 * 3600)))
# An instrument token silent this long shows as stale on the dashboard: lims-harvest calls at
# least every 5 minutes (its heartbeat), so three missed calls.
LIMS_HARVESTER_STALE_S = float(os.environ.get("LIMS_HARVESTER_STALE_S", "900"))
# A running job's progress is written once it has run this long (pages poll once a second).
LIMS_JOB_PROGRESS_AFTER_S = float(os.environ.get("LIMS_JOB_PROGRESS_AFTER_S", "1.0"))
# A pending job, event or delivery not taken for this long is sent again by the sweep (a
# lost message, a broker that was down when it was first sent): caught up within
# LIMS_STUCK_AFTER_S + LIMS_SWEEP_EVERY_S (50 s) of the broker's return.
LIMS_STUCK_AFTER_S = float(os.environ.get("LIMS_STUCK_AFTER_S", "30"))
# Running jobs hold a lease renewed by a heartbeat thread in the worker; the sweep (beat,
# every LIMS_SWEEP_EVERY_S) puts a job whose lease expired back to pending, and fails it
# after LIMS_JOB_MAX_LOST attempts whose worker died.
LIMS_JOB_LEASE_S = float(os.environ.get("LIMS_JOB_LEASE_S", "120"))
LIMS_JOB_LEASE_RENEW_S = float(os.environ.get("LIMS_JOB_LEASE_RENEW_S", "20"))
LIMS_JOB_MAX_LOST = int(os.environ.get("LIMS_JOB_MAX_LOST", "3"))
LIMS_SWEEP_EVERY_S = float(os.environ.get("LIMS_SWEEP_EVERY_S", "20"))
# Every stored raw file is re-hashed this often (lims.raw_files_verify; each read re-hashes too)
LIMS_RAW_VERIFY_EVERY_S = float(os.environ.get("LIMS_RAW_VERIFY_EVERY_S", str(24 * 3600)))
# The ingest task's limits; the broker's visibility timeout sits just above the hard one.
LIMS_INGEST_SOFT_TIME_LIMIT_S = int(os.environ.get("LIMS_INGEST_SOFT_TIME_LIMIT_S", "1800"))
LIMS_INGEST_HARD_TIME_LIMIT_S = LIMS_INGEST_SOFT_TIME_LIMIT_S + 60
# Hard cap on one pool child's data memory (RLIMIT_DATA, MiB; 0 = none): a file that needs
# more ends as a MemoryError (a failed job) instead of the machine's OOM killer.
# ``--max-memory-per-child`` on the worker command line recycles a child after a task.
LIMS_WORKER_MEMORY_LIMIT_MB = int(os.environ.get("LIMS_WORKER_MEMORY_LIMIT_MB", "4096"))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "lims.api.authentication.InstrumentTokenAuthentication",
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # instrument tokens: ingest and their own jobs only (a view's ``instrument_actions``)
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "lims.api.permissions.InstrumentScope",
        "lims.api.permissions.ProjectRoles",  # viewer reads, editor writes (lims.access)
    ],
    "EXCEPTION_HANDLER": "lims.api.exceptions.exception_handler",  # error texts bounded
    "DEFAULT_PARSER_CLASSES": [
        "lims.api.parsers.CappedJSONParser",
        "lims.api.parsers.CappedFormParser",
        "lims.api.parsers.CappedMultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "lims.api.schema.AutoSchema",  # documents the error answers
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ALD/ASSB LIMS API",
    "DESCRIPTION": "Samples, ALD/MLD depositions, cells, cycling data and instrument ingestion.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "SampleKindEnum": "samples.choices.SampleKind",
        "InstrumentKindEnum": "lims.models.projects.Instrument.Kind",
        "OperationKindEnum": "samples.choices.OperationKind",
        "SampleStateEnum": "samples.choices.SampleState",
        "CheckStatusEnum": "depositions.choices.CheckStatus",
        "RoleEnum": "depositions.choices.LoadRole",
        "MemberRoleEnum": "lims.models.projects.Membership.Role",
    },
}

# Celery: a filesystem broker when nothing else is configured, so the embedded mode
# still runs a real worker process and never executes tasks eagerly.
_broker_dir = DATA_DIR / "broker"
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("out", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        # kombu's default is ./control in the working directory (it ended up committed)
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # kombu waits this long whenever it finds the folder empty or its prefetch full,
        # which is after nearly every task: 1 s (its default) made a queue of 120 small
        # tasks take two minutes, 0.1 s capped 2 children at ~10 tasks/s (bench/embedded.py);
        # an idle poll is one listdir of a small folder
        "polling_interval": 0.02,
    }
else:
    # An unacknowledged message comes back after this: just above the longest task may run.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": LIMS_INGEST_HARD_TIME_LIMIT_S + 60}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
# A pool child killed mid-task (OOM killer, SIGKILL) puts its message back instead of acking it.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fix-up closes the database connection around every task unless this is
# set; lims.celery closes old connections itself, as Django does around a request
# (CONN_MAX_AGE, health checks). The fix-up still recycles them every this many tasks.
CELERY_DB_REUSE_MAX = 1000
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("LIMS_TASK_QUEUE", "lims")
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "sweep-stuck": {"task": "lims.sweep_stuck", "schedule": LIMS_SWEEP_EVERY_S},
    "worker-heartbeat": {"task": "lims.heartbeat", "schedule": 30.0},
    "raw-files-verify": {"task": "lims.raw_files_verify", "schedule": LIMS_RAW_VERIFY_EVERY_S},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LIMS_LOG_LEVEL", "INFO")},
}

if PRODUCTION:
    # HTTPS only (check --deploy clean). Behind a TLS-terminating proxy, set
    # DJANGO_TRUST_X_FORWARDED_PROTO=1 only if the proxy sets X-Forwarded-Proto itself.
    SESSION_COOKIE_SECURE = os.environ.get("DJANGO_SECURE_COOKIES", "1") == "1"
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    SECURE_SSL_REDIRECT = os.environ.get("DJANGO_SSL_REDIRECT", "1") == "1"
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", str(365 * 24 * 3600)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = os.environ.get("DJANGO_HSTS_SUBDOMAINS", "1") == "1"
    SECURE_HSTS_PRELOAD = os.environ.get("DJANGO_HSTS_PRELOAD", "1") == "1"
    if os.environ.get("DJANGO_TRUST_X_FORWARDED_PROTO", "0") == "1":
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
