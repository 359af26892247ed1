"""lims-harvest against the real server: gunicorn and a Celery worker on PostgreSQL with a
private Redis (the processes of tests/faults), the harvester as its own process.

A folder where files appear, grow, are renamed and deleted; the web server stopped while
files arrive and started again; the harvester SIGKILLed in the middle of a (throttled)
upload and started again. Each checks the server's raw files and jobs: one raw file per
distinct content, one job each, every job finished; nothing lost, nothing sent twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from cells import services as cell_services
from cells.models import CyclingTest
from lims import services
from lims.demo import _cycling_csv
from lims.models import IngestionJob, Project, RawFile
from tests.conftest import ROOT, wait_for
from tests.faults.test_processes import Redis, Stack, _bin

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FINAL = ("succeeded", "needs_linking", "failed")


class WebStack(Stack):
    """The faults stack, whose web server can be stopped and started again on its port."""

    def stop_web(self) -> None:
        os.killpg(self.web.pid, signal.SIGTERM)
        self.web.wait(timeout=20)

    def start_web(self) -> None:
        self.web = self._spawn(
            "web",
            [
                *(_bin("gunicorn"), "lims.wsgi:application", "-b", f"127.0.0.1:{self.port}"),
                *("-w", "2", "--timeout", "60"),
            ],
        )

        def up() -> bool:
            try:
                return requests.get(f"{self.url}/login/", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        wait_for(up, timeout=60)


@pytest.fixture(scope="module")
def stack(django_db_setup, tmp_path_factory) -> Iterator[WebStack]:
    workdir = tmp_path_factory.mktemp("harvest-stack")
    redis = Redis(workdir)
    redis.start()
    store = workdir / "store"
    store.mkdir()
    running = WebStack(workdir, store, redis)
    try:
        yield running
    finally:
        running.stop()
        redis.kill()


@pytest.fixture
def lab(stack):
    """A project with cell H-001 and an instrument token."""
    project = Project.objects.create(name="Harvest", slug="harvest")
    cell_services.cell_create(
        project=project,
        code="H-001",
        format="bulk_pellet",
        cell_type="cathode_half",
        cathode_active_material="NMC811",
        ratio_active=Decimal("70"),
        ratio_se=Decimal("30"),
        ratio_carbon=Decimal("0"),
        cathode_mass_mg=Decimal("10"),
    )
    token = services.instrument_token_create(
        instrument_name="harvest-cycler", project=project, kind="cycler"
    )
    return project, token.key


def cycler_csv(cycles: int, seed: float) -> bytes:
    """A small constant-current file the generic parser reads; ``seed`` makes it unique."""
    return _cycling_csv([180.0 - seed - 0.3 * n for n in range(cycles)], active_g=0.007)


class Harvest:
    """One lims-harvest process with its own folder, config and state file."""

    def __init__(self, root: Path, url: str, token: str, **settings: object) -> None:
        self.folder = root / "instrument"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config = root / "harvest.toml"
        self.state = root / "harvest.state.sqlite"
        self.log = root / "harvest.log"
        extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())
        self.config.write_text(
            f'server = "{url}"\ntoken = "{token}"\n'
            "rescan_seconds = 2\nheartbeat_seconds = 2\ntimeout_seconds = 30\n"
            f"{extra}"
            "[backoff]\ninitial_seconds = 0.3\nmax_seconds = 1.5\n"
            f"[[folders]]\npath = '{self.folder}'\n"
            'patterns = ["*.csv"]\nkind = "cycler"\n'
            "settle_seconds = 0.5\nresend_after_seconds = 0\n"
            "[[folders.rules]]\nmatch = '^(?P<cell>H-\\d+)_'\non = \"name\"\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [_bin("lims-harvest"), *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [_bin("lims-harvest"), "run", "--config", str(self.config), "--log-format=json"],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)

    def rows(self) -> dict[str, sqlite3.Row]:
        if not self.state.exists():
            return {}
        db = sqlite3.connect(f"file:{self.state}?mode=ro", uri=True, timeout=10)
        db.row_factory = sqlite3.Row
        try:
            return {Path(r["path"]).name: r for r in db.execute("SELECT * FROM files")}
        finally:
            db.close()

    def sends(self) -> list[tuple[str, str]]:
        db = sqlite3.connect(f"file:{self.state}?mode=ro", uri=True, timeout=10)
        try:
            return [(Path(p).name, o) for p, o in db.execute("SELECT path, outcome FROM sends")]
        finally:
            db.close()

    def status(self) -> dict:
        done = self.cli("status", "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest.fixture
def harvest(stack, lab, tmp_path) -> Iterator[Harvest]:
    running = Harvest(tmp_path, stack.url, lab[1])
    yield running
    if running.proc is not None and running.proc.poll() is None:
        running.kill(signal.SIGTERM)


def write(path: Path, content: bytes) -> None:
    """As an instrument writes: in pieces, in place."""
    with path.open("wb") as fh:
        for start in range(0, len(content), 4096):
            fh.write(content[start : start + 4096])
            fh.flush()


def accounted(project: Project, expected: int, timeout: float = 60) -> list[IngestionJob]:
    """Wait for ``expected`` raw files, each with one finished job; the jobs."""

    def done() -> bool:
        return (
            RawFile.objects.filter(project=project).count() >= expected
            and IngestionJob.objects.filter(project=project, status__in=FINAL).count() >= expected
        )

    wait_for(done, timeout=timeout, interval=0.2)
    raws = list(RawFile.objects.filter(project=project))
    assert len(raws) == expected, [r.original_name for r in raws]
    jobs = list(IngestionJob.objects.filter(project=project).select_related("raw_file"))
    assert sorted(j.raw_file_id for j in jobs) == sorted(r.pk for r in raws)  # one job each
    return jobs


def test_files_appear_grow_are_renamed_and_deleted(lab, harvest):
    project, _ = lab
    harvest.start()
    first = cycler_csv(3, seed=1.0)
    data = harvest.folder / "H-001_run.csv"
    with data.open("wb") as fh:  # written in bursts with pauses shorter than the settle time
        for start in range(0, len(first), len(first) // 4 + 1):
            fh.write(first[start : start + len(first) // 4 + 1])
            fh.flush()
            time.sleep(0.25)
    (harvest.folder / "~$H-001_run.csv").write_bytes(b"lock file of an editor")  # ignored
    (harvest.folder / "notes.txt").write_text("not a pattern")  # ignored
    jobs = accounted(project, 1)
    assert jobs[0].raw_file.sha256 == hashlib.sha256(first).hexdigest()  # whole, not a piece

    # a writer holding an exclusive lock long past the settle time: not taken until it lets go
    held = harvest.folder / "H-001_held.csv"
    held_bytes = cycler_csv(2, seed=2.0)
    with held.open("wb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        fh.write(held_bytes)
        fh.flush()
        time.sleep(2.0)  # four settle times
        assert harvest.rows()["H-001_held.csv"]["status"] == "waiting"
        assert RawFile.objects.filter(project=project).count() == 1
    accounted(project, 2)

    grown = cycler_csv(6, seed=1.0)
    assert grown.startswith(first)  # the same test, three cycles more
    with data.open("ab") as fh:  # the running test appends
        fh.write(grown[len(first) :])
    jobs = accounted(project, 3)
    assert {j.raw_file.sha256 for j in jobs} == {
        hashlib.sha256(first).hexdigest(),
        hashlib.sha256(held_bytes).hexdigest(),
        hashlib.sha256(grown).hexdigest(),
    }

    data.rename(harvest.folder / "H-001_run_final.csv")  # same bytes: asked, not sent
    wait_for(
        lambda: (harvest.rows().get("H-001_run_final.csv") or {"status": ""})["status"] == "sent"
    )
    row = harvest.rows()["H-001_run_final.csv"]
    assert row["outcome"] == "present" and row["sha256"] == hashlib.sha256(grown).hexdigest()
    wait_for(lambda: harvest.rows()["H-001_run.csv"]["status"] == "gone")

    (harvest.folder / "H-001_run_final.csv").unlink()
    wait_for(lambda: harvest.rows()["H-001_run_final.csv"]["status"] == "gone")
    time.sleep(1.5)  # a rescan or two: nothing more goes out
    jobs = accounted(project, 3)
    assert {j.status for j in jobs} == {"succeeded"}, [j.error for j in jobs]
    assert set(CyclingTest.objects.filter(job__in=jobs).values_list("cell__code", flat=True)) == {
        "H-001"
    }
    # the first version of the grown file holds only cycles the second has: a duplicate
    tests = {t.raw_file.sha256: t for t in CyclingTest.objects.select_related("raw_file")}
    first_test = tests[hashlib.sha256(first).hexdigest()]
    assert first_test.duplicate_of_id == tests[hashlib.sha256(grown).hexdigest()].pk
    assert sorted(o for _, o in harvest.sends()) == ["present", "uploaded", "uploaded", "uploaded"]
    assert "~$H-001_run.csv" not in harvest.rows() and "notes.txt" not in harvest.rows()
    status = harvest.status()
    assert status["queue"] == 0 and status["last_success_at"] is not None
    assert status["offline_since"] is None


def test_server_stopped_and_started_again_loses_nothing(stack, lab, harvest):
    project, _ = lab
    harvest.start()
    write(harvest.folder / "H-001_warm.csv", cycler_csv(2, seed=9.0))
    accounted(project, 1)

    stack.stop_web()
    try:
        for n in range(4):
            write(harvest.folder / f"H-001_part{n}.csv", cycler_csv(2, seed=10.0 + n))
        wait_for(lambda: harvest.status()["offline_since"] is not None, timeout=30)
        wait_for(
            lambda: sum(r["status"] == "queued" for r in harvest.rows().values()) == 4,
            timeout=30,
        )
        assert RawFile.objects.filter(project=project).count() == 1
    finally:
        stack.start_web()
    jobs = accounted(project, 5, timeout=60)
    assert {j.status for j in jobs} == {"succeeded"}, [j.error for j in jobs]
    wait_for(lambda: harvest.status()["queue"] == 0, timeout=20)
    status = harvest.status()
    assert status["offline_since"] is None and status["sends"] == {"uploaded": 5}
    assert any("ConnectError" in e["message"] for e in status["recent_errors"])


def test_harvester_killed_mid_upload_resumes_without_loss_or_duplicate(stack, lab, tmp_path):
    project, token = lab
    # a 2.4 MB file sent at 1 MB/s: the kill lands inside the upload
    harvest = Harvest(tmp_path, stack.url, token, max_upload_bytes_per_second=1_000_000)
    big = cycler_csv(1000, seed=20.0)
    assert len(big) > 2_000_000
    harvest.start()
    try:
        write(harvest.folder / "H-001_long.csv", big)
        wait_for(
            lambda: (harvest.rows().get("H-001_long.csv") or {"status": ""})["status"] == "sending",
            timeout=30,
            interval=0.05,
        )
        time.sleep(0.8)
        harvest.kill(signal.SIGKILL)
        time.sleep(0.5)
        assert harvest.rows()["H-001_long.csv"]["status"] == "sending"
        assert RawFile.objects.filter(project=project).count() == 0  # the cut upload: nothing

        harvest.start()  # resumes: asks by sha256 (not there), sends it whole
        jobs = accounted(project, 1, timeout=60)
        assert jobs[0].raw_file.sha256 == hashlib.sha256(big).hexdigest()
        assert jobs[0].raw_file.size == len(big) and jobs[0].status == "succeeded"
        wait_for(lambda: harvest.rows()["H-001_long.csv"]["status"] == "sent")
        harvest.kill(signal.SIGKILL)
    finally:
        if harvest.proc is not None and harvest.proc.poll() is None:
            harvest.kill()

    # killed after the server stored the bytes but before the state file said so: the file
    # is queued again, and the check by sha256 keeps it from being sent twice
    db = sqlite3.connect(harvest.state)
    db.execute("UPDATE files SET status = 'sending' WHERE path LIKE '%H-001_long.csv'")
    db.commit()
    db.close()
    done = harvest.cli("once", "--drain", "20", "--log-format=json")
    assert done.returncode == 0, done.stderr
    assert '"event": "recovered"' in done.stderr and '"event": "present"' in done.stderr
    assert harvest.rows()["H-001_long.csv"]["outcome"] == "present"
    assert sorted(o for _, o in harvest.sends()) == ["present", "uploaded"]
    accounted(project, 1)
    assert IngestionJob.objects.filter(project=project).count() == 1
