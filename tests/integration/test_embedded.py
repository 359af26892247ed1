"""Smoke test of the embedded mode: SQLite + filesystem broker, real web and worker processes."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, wait_for

pytestmark = pytest.mark.embedded

MPR = (
    ROOT / "tests/fixtures/cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_embedded_stack_ingests_a_real_file(tmp_path: Path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "LIMS_ENV")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="lims.settings.base",
        LIMS_DATA_DIR=str(tmp_path / "var"),
    )
    py = sys.executable
    bin_dir = Path(py).parent
    port = _free_port()

    def manage(*args: str) -> str:
        done = subprocess.run(
            [py, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    manage("migrate", "--noinput")
    out = manage("lims_demo", "--port", str(port))
    assert "demo-lims" in out
    token = re.search(r"token ([0-9a-f]{40})", out).group(1)  # type: ignore[union-attr]
    again = manage("lims_demo", "--port", str(port))
    assert token in again  # idempotent: the same token, no duplicates

    logs = tmp_path / "logs"
    logs.mkdir()
    worker_log = (logs / "worker.log").open("wb")
    web_log = (logs / "web.log").open("wb")
    procs = [
        subprocess.Popen(
            [
                str(bin_dir / "celery"),
                "-A",
                "lims",
                "worker",
                "--concurrency=1",
                "--queues=lims",
                "--without-mingle",
                "--without-gossip",
                "--loglevel=INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [py, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT,
            env=env,
            stdout=web_log,
            stderr=subprocess.STDOUT,
        ),
    ]
    # make run's announcer (Procfile.dev): the login and curl lines once web and worker answer
    announce_log = logs / "demo.log"
    procs.append(
        subprocess.Popen(
            [py, "manage.py", "lims_demo", "--announce", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=announce_log.open("wb"),
            stderr=subprocess.STDOUT,
        )
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def up():
            try:
                return requests.get(f"{base}/login/", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False

        announced = wait_for(
            lambda: "curl" in (text := announce_log.read_text()) and text, timeout=120
        )
        assert up() and token in announced and "stack up after" in announced
        assert procs[-1].poll() is None  # it stays, or honcho would stop the others
        headers = {"Authorization": f"Token {token}"}
        with MPR.open("rb") as fh:
            r = requests.post(
                f"{base}/api/v1/ingest/",
                headers=headers,
                files={"file": fh},
                data={"cell": "DEMO-NMC811-001"},
                timeout=60,
            )
        assert r.status_code == 202, r.text

        def finished():
            body = requests.get(r.json()["job"]["url"], headers=headers, timeout=10).json()
            return body if body["status"] not in ("pending", "running") else None

        job = wait_for(finished, timeout=120)
        assert job["status"] == "succeeded", job["error"]
        assert job["result"]["cell"] == "DEMO-NMC811-001"
        assert job["result"]["cycles"] == 7 and job["result"]["performance_record"]
        # the instrument's token reads its job, not the cell's data
        tests = requests.get(
            f"{base}/api/v1/cycling-tests/?cell=DEMO-NMC811-001", headers=headers, timeout=10
        )
        assert tests.status_code == 403
        assert (tmp_path / "var" / "lims.sqlite3").exists()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        worker_log.close()
        web_log.close()
