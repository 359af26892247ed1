"""Shared fixtures: factories' objects, API clients and a real Celery worker process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


@pytest.fixture
def fixture_path() -> Path:
    return FIXTURES


@pytest.fixture
def project(db):
    from lims.models import Project

    return Project.objects.create(name="ASSB coatings", slug="assb")


@pytest.fixture
def user(db, project):
    from django.contrib.auth import get_user_model

    from lims.models import Membership

    u = get_user_model().objects.create_user("alice", password="pw-alice-123")
    Membership.objects.create(project=project, user=u, role=Membership.Role.EDITOR)
    return u


@pytest.fixture
def instrument_token(db, project):
    from lims import services

    return services.instrument_token_create(
        instrument_name="cycler-test", project=project, kind="cycler"
    )


@pytest.fixture
def instrument_client(instrument_token):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {instrument_token.key}")
    return client


@pytest.fixture
def user_client(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def cell(db, project):
    from decimal import Decimal

    from cells import services

    return services.cell_create(
        project=project,
        code="C-001",
        format="bulk_pellet",
        cell_type="cathode_half",
        cathode_active_material="NMC811",
        ratio_active=Decimal("70"),
        ratio_se=Decimal("30"),
        ratio_carbon=Decimal("0"),
        cathode_mass_mg=Decimal("10"),
    )


# the suite's worker process, once a test has started it (it lives to the end of the session)
_WORKER: subprocess.Popen[bytes] | None = None


def _worker_hostname() -> str:
    import socket

    return f"test-worker@{socket.gethostname()}"


def _worker_busy() -> bool:
    """Messages still queued, or tasks the worker holds (running or prefetched)."""
    import redis

    from lims.celery import app

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    if broker.llen(settings.CELERY_TASK_DEFAULT_QUEUE):
        return True
    inspect = app.control.inspect(destination=[_worker_hostname()], limit=1, timeout=2)
    for reply in (inspect.active(), inspect.reserved()):
        if reply is None or any(reply.values()):
            return True
    return False


@pytest.fixture(autouse=True)
def _worker_idle_before_flush(request) -> Iterator[None]:
    """A transactional test ends with a flush (TRUNCATE of every table). Work the test left
    to the worker (an event relayed on commit, a re-run job) would race it: a deadlock that
    fails the flush and leaves rows to break the next test. Wait for the worker to go quiet
    first; set up after the database fixture, so torn down before it."""
    marker = request.node.get_closest_marker("django_db")
    transactional = (marker is not None and marker.kwargs.get("transaction", False)) or bool(
        {"transactional_db", "live_server"} & set(request.fixturenames)
    )
    if not transactional:
        yield
        return
    request.getfixturevalue("_django_db_helper")
    yield
    if _WORKER is None or _WORKER.poll() is not None:
        return
    deadline = time.monotonic() + 60
    quiet = 0
    while quiet < 2 and time.monotonic() < deadline:  # twice: a task may enqueue another
        quiet = 0 if _worker_busy() else quiet + 1
        if quiet < 2:
            time.sleep(0.1)


def _broker_flush() -> None:
    import redis

    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker) -> Iterator[subprocess.Popen[bytes]]:
    """A real worker process on the real broker, reading the test database."""
    from lims.celery import app

    _broker_flush()
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lims.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "LIMS_DATA_DIR": str(settings.DATA_DIR),
    }
    log = open(Path(settings.DATA_DIR) / "worker.log", "wb")  # noqa: SIM115
    celery = shutil.which("celery", path=str(Path(sys.executable).parent)) or "celery"
    proc = subprocess.Popen(
        [
            celery,
            "-A",
            "tests.celery_worker",
            "worker",
            "--concurrency=2",
            "--max-memory-per-child=1500000",
            "--queues=lims",
            "--loglevel=INFO",
            f"--hostname={_worker_hostname()}",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited: see {log.name}")
        if app.control.ping(timeout=0.5):
            break
    else:
        proc.terminate()
        raise RuntimeError("worker did not answer a ping within 60 s")
    global _WORKER
    _WORKER = proc
    yield proc
    _WORKER = None
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def ingest_file(fixture_path: Path, project, rel: str, capture, **params):
    """Submit a fixture file (fresh bytes) and run its job here, as the worker would; the job.

    ``capture`` is pytest-django's ``django_capture_on_commit_callbacks``: nothing is sent to
    the broker from inside the test's transaction."""
    from lims.ingestion import services as ingest

    with (fixture_path / rel).open("rb") as fh, capture(execute=False):
        job, created = ingest.ingest_submit(
            stream=fh, filename=rel.rsplit("/", 1)[-1], project=project, params=params
        )
    assert created, "fresh bytes"
    with capture(execute=False):
        done = ingest.job_run(job_id=job.pk)
    assert done is not None
    return done


def wait_for(predicate, *, timeout: float = 60.0, interval: float = 0.2):
    """Poll until ``predicate()`` is truthy; return its value or fail the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout} s")


def api_upload(url: str, token: str, name: str, content: bytes, **data: str):
    """``POST /api/v1/ingest/`` over HTTP as an instrument does (integration tests)."""
    import requests

    return requests.post(
        f"{url}/api/v1/ingest/",
        headers={"Authorization": f"Token {token}"},
        files={"file": (name, content)},
        data=data,
        timeout=120,
    )


def api_finished_job(url: str, token: str, job_id: int) -> dict:
    """Poll a job over HTTP until it leaves pending/running; its JSON."""
    import requests

    def poll():
        body = requests.get(
            f"{url}/api/v1/jobs/{job_id}/", headers={"Authorization": f"Token {token}"}, timeout=30
        ).json()
        return body if body["status"] not in ("pending", "running") else None

    return wait_for(poll, timeout=90)


@pytest.fixture
def labview_run(project):
    """A run on a LabVIEW tool whose recipe matches the fixture run's shape, except for its
    30 s purges (the log has 20 s ones, which the purge check catches)."""
    from depositions import services as dep
    from depositions.inputs import BlockInput, StepInput, SubCycleInput
    from lims.models import Instrument

    def _step(kind: str, seconds: str, label: str = "") -> StepInput:
        return StepInput(kind=kind, duration_s=Decimal(seconds), source_label=label)

    instrument = Instrument.objects.create(name="LabVIEW ALD", kind="ald_tool", project=project)
    tool = dep.tool_create(instrument=instrument, reactor_type="cross_flow")
    dep.tool_source_create(
        tool=tool, label="P1", reactant="TMA", delivery="vapour_draw", log_channel="Mod8/do1"
    )
    dep.tool_source_create(
        tool=tool, label="P2", reactant="H2O", delivery="vapour_draw", log_channel="Mod8/do2"
    )
    recipe = dep.recipe_create(
        project=project,
        name="TMA/H2O 50 + TMA 10 + TMA/H2O 20",
        subcycles=[
            SubCycleInput(
                "Al2O3",
                [
                    _step("pulse", "1", "TMA"),
                    _step("purge", "30"),
                    _step("pulse", "2", "H2O"),
                    _step("purge", "30"),
                ],
                gpc_angstrom=Decimal("1.1"),
            ),
            SubCycleInput("TMA only", [_step("pulse", "1", "TMA"), _step("purge", "30")]),
        ],
        blocks=[BlockInput("Al2O3", 50), BlockInput("TMA only", 10), BlockInput("Al2O3", 20)],
        supercycle_repeats=1,
    )
    return dep.run_create(project=project, code="LV-RUN1", tool=tool, recipe=recipe)
