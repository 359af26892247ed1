"""Embedded mode end to end: what `make run` starts (SQLite, filesystem broker, runserver,
a worker with 2 children, beat), on a fresh data dir with the demo data.

Measures
1. the demo's own curl line: seconds from `make run` printing it (``lims_demo --announce``, once
   the web answers and a worker ran a task) to its job being finished, from the POST to
   finished, and how long the stack took to come up;
2. N small cycler files (a real Battery Archive CSV, different bytes each) pushed at once by
   8 clients: files per second from the first POST to the last job finished.

    .venv/bin/python bench/embedded.py [--files 40]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BA = ROOT / "tests/fixtures/cycler/batteryarchive/synthetic_BA_cell_a_timeseries.csv"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(predicate, timeout: float, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"not within {timeout} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=40)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lims-embedded-bench-"))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "LIMS_ENV")
    }
    env.update(DJANGO_SETTINGS_MODULE="lims.settings.base", LIMS_DATA_DIR=str(tmp / "var"))
    py = sys.executable
    bin_dir = Path(py).parent
    port = _free_port()
    base = f"http://127.0.0.1:{port}"

    def manage(*argv: str) -> str:
        done = subprocess.run(
            [py, "manage.py", *argv], cwd=ROOT, env=env, capture_output=True, text=True
        )
        if done.returncode:
            raise SystemExit(done.stderr)
        return done.stdout

    manage("migrate", "--noinput")
    manage("lims_demo", "--load-only", "--port", str(port))
    logs = tmp / "logs"
    logs.mkdir()
    procfile = [  # as Procfile.dev
        ("web", [py, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"]),
        (
            "worker",
            [
                *(str(bin_dir / "celery"), "-A", "lims", "worker", "--loglevel=INFO"),
                *("--concurrency=2", "--queues=lims", "--hostname=bench@%h"),
            ],
        ),
        ("beat", [str(bin_dir / "celery"), "-A", "lims", "beat", "--loglevel=INFO"]),
        ("demo", [py, "manage.py", "lims_demo", "--announce", "--port", str(port)]),
    ]
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=(logs / f"{name}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for name, argv in procfile
    ]

    def finished(url: str):
        body = requests.get(url, headers=headers, timeout=30).json()
        return body if body["status"] not in ("pending", "running") else None

    try:

        def announced() -> str | None:
            text = (logs / "demo.log").read_text()
            return text if "curl" in text else None

        out = _wait(announced, 300)
        printed = time.monotonic()
        token = re.search(r"token ([0-9a-f]{40})", out).group(1)  # type: ignore[union-attr]
        curl = re.search(r"-F cell=(\S+) -F file=@(\S+) ", out)
        assert curl is not None, out
        cell, demo_file = curl.group(1), Path(curl.group(2))
        headers = {"Authorization": f"Token {token}"}

        def up() -> bool:
            try:
                return requests.get(f"{base}/login/", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        _wait(up, 120)
        posted = time.monotonic()
        with demo_file.open("rb") as fh:
            r = requests.post(
                f"{base}/api/v1/ingest/",
                headers=headers,
                files={"file": fh},
                data={"cell": cell},
                timeout=60,
            )
        r.raise_for_status()
        job = _wait(lambda: finished(r.json()["job"]["url"]), 120)
        done = time.monotonic()
        print(
            f"demo curl line: {job['status']}, {done - posted:.2f} s from POST to finished, "
            f"{done - printed:.2f} s from `make run` printing it (printed once web and worker "
            f"answered, {printed - started:.2f} s after the stack started)"
        )

        text = BA.read_text()
        files = [
            (f"ba-{n}.csv", text.replace(",25.0,25.5\n", f",25.0,{26 + n / 1000:.3f}\n", 1))
            for n in range(args.files)
        ]

        def push(item: tuple[str, str]) -> str:
            resp = requests.post(
                f"{base}/api/v1/ingest/",
                headers=headers,
                files={"file": (item[0], item[1].encode())},
                data={"cell": cell},
                timeout=120,
            )
            resp.raise_for_status()
            return str(resp.json()["job"]["url"])

        start = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            urls = list(pool.map(push, files))
        accepted = time.monotonic() - start
        statuses = {}
        for url in urls:
            job = _wait(lambda url=url: finished(url), 600, interval=0.05)
            statuses[job["status"]] = statuses.get(job["status"], 0) + 1
        total = time.monotonic() - start
        print(
            f"{args.files} small files pushed at once by 8 clients: accepted in {accepted:.2f} s, "
            f"all finished in {total:.2f} s = {args.files / total:.1f} files/s end to end "
            f"({statuses})"
        )
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        _task_summary(logs / "worker.log")
        if os.environ.get("KEEP_LOGS"):
            shutil.copy(logs / "worker.log", "/tmp/emb-worker.log")
        shutil.rmtree(tmp, ignore_errors=True)


def _task_summary(log: Path) -> None:
    """Tasks the worker ran, by name: count and total seconds (from its own log lines)."""
    runs: dict[str, list[float]] = {}
    for m in re.finditer(r"Task (\S+)\[[^]]+\] succeeded in ([0-9.]+)s", log.read_text()):
        runs.setdefault(m.group(1), []).append(float(m.group(2)))
    for name, secs in sorted(runs.items()):
        print(f"  worker: {name} x{len(secs)}, {sum(secs):.2f} s in all")


if __name__ == "__main__":
    main()
