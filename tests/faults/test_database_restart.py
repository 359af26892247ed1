"""PostgreSQL restarted under load, on a private server the test may stop: nothing accepted
is lost or done twice, and no request gets a 500 for it.

The private cluster (``initdb`` as the ``postgres`` user) starts from a dump of the suite's
test database, so the stack (gunicorn + worker + beat, private Redis) finds the schema and the
token the test made. During the restart an upload may be refused with 503 and Retry-After
(the database is an infrastructure fault, never the file's); every 202 must finish.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from lims import services
from lims.models import Instrument, InstrumentToken, Project
from tests.conftest import wait_for
from tests.faults.mounts import tmpfs
from tests.faults.test_processes import (  # noqa: F401 (report: the closing lines)
    REPORT,
    Redis,
    Stack,
    _file,
    _free_port,
    _upload,
    report,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres(*argv: str) -> None:
    # no pipes: a server started here would inherit them and the call would wait for ever
    subprocess.run(
        ["runuser", "-u", "postgres", "--", *argv],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )


class PrivatePostgres:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "pgdata"
        self.port = _free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/lims"

    def init_from(self, source: dict) -> None:
        self.dir.mkdir(parents=True)
        shutil.chown(self.dir, "postgres", "postgres")
        _as_postgres(str(PG_BIN / "initdb"), "-D", str(self.dir), "-A", "trust", "-U", "postgres")
        self.start()
        subprocess.run(
            ["createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "lims"],
            check=True,
        )
        dump = subprocess.run(
            [
                *("pg_dump", "-h", source["HOST"], "-p", str(source["PORT"])),
                *("-U", source["USER"], "--no-owner", source["NAME"]),
            ],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(
            ["psql", "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "lims"],
            input=dump,
            check=True,
            capture_output=True,
        )

    def _ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.dir), "-o", options, "-w", *args)

    def start(self) -> None:
        self._ctl("-l", str(self.dir / "log"), "start")

    def restart(self) -> float:
        started = time.monotonic()
        self._ctl("-l", str(self.dir / "log"), "-m", "fast", "restart")
        return time.monotonic() - started

    def stop(self) -> None:
        self._ctl("-m", "immediate", "stop")

    def rows(self, sql: str, *params: object) -> list[tuple]:
        with psycopg.connect(self.url, connect_timeout=5) as conn:
            return conn.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def private(
    django_db_setup, django_db_blocker, tmp_path_factory
) -> Iterator[tuple[Stack, PrivatePostgres, str]]:
    workdir = tmp_path_factory.mktemp("pg-restart")
    # the server runs as ``postgres``, which cannot enter pytest's private (0700) tmp dirs
    pg_home = Path(tempfile.mkdtemp(prefix="lims-faults-pg-"))
    shutil.chown(pg_home, "postgres", "postgres")
    pg = PrivatePostgres(pg_home)
    with django_db_blocker.unblock():  # committed, dumped to the private server, then removed
        project = Project.objects.create(name="PG restart", slug="pg-restart")
        token = services.instrument_token_create(
            instrument_name="cycler-pg", project=project, kind="cycler"
        ).key
        try:
            pg.init_from(settings.DATABASES["default"])
        finally:
            InstrumentToken.objects.filter(key=token).delete()
            Instrument.objects.filter(name="cycler-pg").delete()
            project.delete()
    redis = Redis(workdir)
    redis.start()
    with tmpfs(workdir / "store") as store:
        # connections kept between requests and tasks, as in production (CONN_MAX_AGE 60):
        # the restart kills them under the web and the worker
        stack = Stack(
            workdir, store, redis, database_url=pg.url, env={"LIMS_TEST_CONN_MAX_AGE": "60"}
        )
        try:
            yield stack, pg, token
        finally:
            stack.stop()
            redis.kill()
            pg.stop()
            shutil.rmtree(pg_home, ignore_errors=True)


def test_postgresql_restart_under_uploads_loses_nothing_and_answers_no_500(private):
    stack, pg, token = private
    answers: list[tuple[int, str]] = []

    def burst() -> None:
        for _ in range(12):
            response = _upload(stack, token, *_file())
            answers.append((response.status_code, response.text))
            time.sleep(0.1)

    sender = threading.Thread(target=burst)
    sender.start()
    wait_for(lambda: len(answers) >= 2, timeout=60, interval=0.02)
    took = pg.restart()
    sender.join(timeout=120)

    codes = [code for code, _ in answers]
    assert set(codes) <= {202, 503}, [a for a in answers if a[0] not in (202, 503)]
    accepted = [int(text.split('"id":', 1)[1].split(",", 1)[0]) for c, text in answers if c == 202]

    def finished() -> bool:
        rows = pg.rows(
            "SELECT count(*) FROM lims_ingestionjob WHERE id = ANY(%s) AND status = ANY(%s)",
            accepted,
            ["succeeded", "needs_linking", "failed"],
        )
        return rows[0][0] == len(accepted)

    wait_for(finished, timeout=90, interval=0.5)
    failed = pg.rows(
        "SELECT id, error FROM lims_ingestionjob WHERE id = ANY(%s) AND status = 'failed'",
        accepted,
    )
    tests = pg.rows(
        "SELECT j.id, count(t.id) FROM lims_ingestionjob j LEFT JOIN cells_cyclingtest t "
        "ON t.raw_file_id = j.raw_file_id WHERE j.id = ANY(%s) GROUP BY j.id",
        accepted,
    )
    dup = sum(n - 1 for _, n in tests if n > 1)
    REPORT.append(
        f"PostgreSQL restart ({took:.1f} s) under 12 uploads: {codes.count(202)} answered 202, "
        f"{codes.count(503)} 503, 0 500; {len(failed)} lost, {dup} duplicates"
    )
    assert failed == [] and dup == 0
    assert codes.count(202) >= 6
