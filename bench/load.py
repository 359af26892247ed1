"""Load benchmark: many instrument clients pushing real cycler files at once.

Run on demand: ``.venv/bin/python bench/load.py [--clients 50] [--files 4] [--workers 1 2 4]``.
Needs the machine's PostgreSQL and Redis (scripts/services.sh starts them). Starts gunicorn
(4 sync web workers) and, per run, a Celery worker with ``--concurrency`` 1, 2 and 4 on a fresh
database ``lims_bench_load`` and Redis db 15. Each client is a thread with its own instrument
token pushing ``--files`` copies of a real Arbin CSV export
(``tests/fixtures/cycler/arbin/bdtk_arbin_example.csv``, 2,142 rows) made unique by one changed
digit in the last row, so every upload is a new raw file and a real parse.

The stack runs in production mode and is warmed by one unmeasured round. Two tables, each
per worker count: **end to end** (the worker runs while the clients push; files/s from the
first request to the last job finished, and the CPU each part used per file, bench/cpu.py)
and **drain** (the clients push with no worker running, then the worker starts on the
backlog; files/s from the first job started to the last finished: the worker processes' own
throughput). Each row: accept latency p50/p99 (request sent -> 202, the file's transfer
included: the files are 200 KB on loopback), errors, files/s and the speed-up against 1
worker process (target >= 1.8x from 1 to 2). Then list endpoints at ``--list-cells``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import requests
from cpu import CpuWindow, describe

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests/fixtures/cycler/arbin/bdtk_arbin_example.csv"
DB = "lims_bench_load"
REDIS_DB = 15


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _variant(base: bytes, n: int) -> bytes:
    """The export with its last row's last digit of voltage moved by ``n`` in the 9th place:
    other bytes, the same physics."""
    newline = b"\r\n" if base.endswith(b"\r\n") else b"\n"
    head, _, last = base.rstrip(b"\r\n").rpartition(b"\n")
    fields = last.split(b",")
    fields[-1] = fields[-1] + str(n).encode()  # more digits of the same number
    return head + b"\n" + b",".join(fields) + newline


class Stack:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = _free_port()
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "lims.settings.base",
            # production mode, as deployed (DEBUG off: no query log, no debug cursors); plain
            # HTTP on loopback, so no redirect to HTTPS
            "LIMS_ENV": "production",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SSL_REDIRECT": "0",
            "DJANGO_SECURE_COOKIES": "0",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB}",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
            "LIMS_DATA_DIR": str(data_dir),
            "LIMS_LOG_LEVEL": "WARNING",
        }
        self.log = (data_dir / "load-stack.log").open("wb")
        self.web: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None

    def _manage(self, *args: str) -> str:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    def start(self) -> None:
        subprocess.run(["bash", str(ROOT / "scripts/services.sh")], check=True, capture_output=True)
        subprocess.run(
            ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", DB], check=True
        )
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", DB], check=True)
        subprocess.run(
            ["redis-cli", "-n", str(REDIS_DB), "flushdb"], check=True, capture_output=True
        )
        self._manage("migrate", "--noinput", "-v", "0")
        bin_dir = Path(sys.executable).parent
        self.web = subprocess.Popen(
            [
                str(bin_dir / "gunicorn"),
                "lims.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "4",
                "--timeout",
                "120",
                "--log-level",
                "warning",
                "--preload",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{self.port}/login/", timeout=10)
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError("the web server did not come up")

    def tokens(self, n: int, project: str) -> list[str]:
        return [
            self._manage(
                "create_instrument_token", f"load-{i:03d}", "--project", project, "--kind", "cycler"
            ).split()[-1]
            for i in range(n)
        ]

    def start_worker(self, concurrency: int) -> None:
        self.stop_worker()
        bin_dir = Path(sys.executable).parent
        self.worker = subprocess.Popen(
            [
                str(bin_dir / "celery"),
                "-A",
                "lims",
                "worker",
                f"--concurrency={concurrency}",
                "--queues=lims",
                "--loglevel=WARNING",
                "--without-mingle",
                "--without-gossip",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        time.sleep(4)  # boot and import the parsers before the clock starts

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.terminate()
            self.worker.wait(timeout=30)
            self.worker = None

    def stop(self) -> None:
        self.stop_worker()
        if self.web is not None:
            self.web.terminate()
            self.web.wait(timeout=30)


def _jobs_done(after_id: int) -> tuple[int, int, float | None, float | None]:
    """(busy, failed, last finished, first started) of the jobs after ``after_id``."""
    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={DB}") as conn:
        row = conn.execute(
            "select count(*) filter (where status in ('pending','running')),"
            " count(*) filter (where status not in ('succeeded','needs_linking',"
            " 'pending','running')), extract(epoch from max(finished_at)),"
            " extract(epoch from min(started_at))"
            " from lims_ingestionjob where id > %s",
            (after_id,),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), row[2], row[3]


def _max_job_id() -> int:
    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={DB}") as conn:
        row = conn.execute("select coalesce(max(id), 0) from lims_ingestionjob").fetchone()
    return int(row[0]) if row else 0


def run(
    stack: Stack, tokens: list[str], files: int, concurrency: int, offset: int, drain: bool = False
) -> dict:
    """One run. End to end (default): the worker runs while the clients push, files/s from
    the first request to the last job finished. ``drain``: the clients push with no worker
    running, then the worker starts on the backlog: files/s from the first job started to
    the last finished, the worker processes' own throughput without the web's share of the
    cores."""
    base = FIXTURE.read_bytes()
    url = f"http://127.0.0.1:{stack.port}/api/v1/ingest/"
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(len(tokens) + 1)
    if drain:
        stack.stop_worker()
    else:
        stack.start_worker(concurrency)
    first_id = _max_job_id()

    def client(i: int, token: str) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        start.wait()
        for k in range(files):
            content = _variant(base, offset + i * files + k)
            t = time.perf_counter()
            try:
                r = session.post(url, files={"file": (f"arbin_{i}_{k}.csv", content)}, timeout=120)
                ok = r.status_code == 202
                what = f"{r.status_code} {r.text[:120]}"
            except requests.RequestException as exc:
                ok, what = False, repr(exc)
            elapsed = time.perf_counter() - t
            with lock:
                latencies.append(elapsed)
                if not ok:
                    errors.append(what)

    # warm every web worker (URLconf, DRF, the first connection) before the clock starts
    warm = [
        threading.Thread(
            target=requests.get,
            args=(f"http://127.0.0.1:{stack.port}/api/v1/jobs/",),
            kwargs={"headers": {"Authorization": f"Token {tokens[0]}"}, "timeout": 60},
        )
        for _ in range(16)
    ]
    for w in warm:
        w.start()
    for w in warm:
        w.join()
    threads = [threading.Thread(target=client, args=(i, t)) for i, t in enumerate(tokens)]
    for t in threads:
        t.start()
    cpu = CpuWindow()
    cpu.start()
    start.wait()
    t0 = time.time()
    for t in threads:
        t.join()
    if drain:
        stack.start_worker(concurrency)
    while True:
        busy, failed, last, first_started = _jobs_done(first_id)
        if not busy:
            break
        time.sleep(0.5)
    usage = cpu.stop()
    total = len(tokens) * files
    if drain:
        t0 = float(first_started) if first_started is not None else t0
    elapsed = (float(last) if last is not None else time.time()) - t0
    latencies.sort()
    return {
        "concurrency": concurrency,
        "files": total,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "errors": len(errors) + failed,
        "error_examples": errors[:3],
        "files_per_s": total / elapsed,
        # a drain's window would hold the worker's boot (it starts after the uploads)
        "cpu": "" if drain else describe(usage, total),
        "drain": drain,
    }


def seed_lists(cells: int, tests: int, cycles_per_test: int) -> None:
    """``cells`` cells, ``tests`` cycling tests (raw file each) with ``cycles_per_test`` cycle
    rows, written with COPY straight into the bench database (the list endpoints read them
    as any other rows)."""
    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={DB}") as conn:
        project = conn.execute("select id from lims_project where slug = 'load'").fetchone()
        assert project is not None
        pid = project[0]
        with conn.cursor() as cur:
            with cur.copy(
                "COPY cells_cell (code, project_id, format, cell_type, cathode_active_material,"
                " ratio_active, ratio_se, cathode_mass_mg, se_material, anode_kind,"
                " anode_description, notes, created_at, updated_at)"
                " FROM STDIN"
            ) as copy:
                for i in range(cells):
                    copy.write_row(
                        (
                            f"SEED-{i:06d}",
                            pid,
                            "bulk_pellet",
                            "cathode_half",
                            "NMC811",
                            70,
                            30,
                            12,
                            "Li6PS5Cl",
                            "li_in",
                            "",
                            "",
                            "now",
                            "now",
                        )
                    )
            with cur.copy(
                "COPY lims_rawfile (sha256, size, original_name, content_type, encoding,"
                " storage_path, project_id, received_at) FROM STDIN"
            ) as copy:
                for i in range(tests):
                    copy.write_row(
                        (f"{i:064x}", 1, f"seed-{i}.csv", "", "", f"raw/seed/{i}", pid, "now")
                    )
            cur.execute(
                "INSERT INTO cells_cyclingtest (cell_id, project_id, raw_file_id, parser_name,"
                " parser_version, vendor, protocol, channel, series_path, row_count, conventions,"
                " metadata, warnings, created_at, chain_detached, chain_role, chain_notes)"
                " SELECT c.id, %s, r.id, 'lims_csv', '1', '', '', '', '', 0, '{}', '{}', '[]',"
                " now(), false, 'member', '[]'"
                " FROM (SELECT id, row_number() OVER (ORDER BY id) n FROM lims_rawfile"
                "       WHERE storage_path LIKE 'raw/seed/%%') r"
                " JOIN (SELECT id, row_number() OVER (ORDER BY id) n FROM cells_cell"
                "       WHERE code LIKE 'SEED-%%') c ON c.n = r.n",
                (pid,),
            )
            cur.execute(
                "INSERT INTO cells_cyclerecord (test_id, cycle_index, cycle_in_file, charge_mah,"
                " discharge_mah) SELECT t.id, g, g, 1.0, 0.99 FROM cells_cyclingtest t,"
                " generate_series(1, %s) g WHERE t.parser_name = 'lims_csv' AND t.raw_file_id IN"
                " (SELECT id FROM lims_rawfile WHERE storage_path LIKE 'raw/seed/%%')",
                (cycles_per_test,),
            )
        conn.execute("ANALYZE")


def list_latency(stack: Stack, token: str, repeat: int = 20) -> list[tuple[str, float, float]]:
    """p50 and p95 (ms) of list endpoints a person's scripts and pages hit."""
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    base = f"http://127.0.0.1:{stack.port}/api/v1"
    out = []
    for label, path in (
        ("cells, first page", "/cells/"),
        ("cells, page 200", "/cells/?page=200"),
        ("cells, search", "/cells/?q=SEED-0999"),
        ("cycling tests, first page", "/cycling-tests/"),
        ("one test's 100 cycles", "/cycling-tests/{test}/cycles/"),
    ):
        if "{test}" in path:
            first = session.get(f"{base}/cycling-tests/", timeout=60).json()["results"][0]["id"]
            path = path.format(test=first)
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            r = session.get(base + path, timeout=120)
            times.append(time.perf_counter() - t)
            assert r.status_code == 200, (path, r.status_code, r.text[:200])
        times.sort()
        out.append((label, statistics.median(times) * 1000, times[int(len(times) * 0.95)] * 1000))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--files", type=int, default=4, help="files per client per run")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--list-cells", type=int, default=100_000, help="0: skip the list part")
    ap.add_argument("--list-tests", type=int, default=10_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lims-bench-load-"))
    stack = Stack(tmp)
    try:
        stack.start()
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import django;django.setup();from lims import services;"
                "services.project_get_or_create(name='Load', slug='load')",
            ],
            cwd=ROOT,
            env=stack.env,
            check=True,
        )
        tokens = stack.tokens(args.clients, "load")
        print(
            f"{args.clients} instrument clients x {args.files} Arbin CSVs (2,142 rows) per run; "
            "gunicorn 4 workers; PostgreSQL + Redis"
        )
        # warm the stack (PostgreSQL's caches, each web worker's first upload, the parsers)
        # so the first measured run, the baseline, is not also the cold one
        run(stack, tokens, 1, 2, offset=900_000)
        for drain in (False, True):
            print(
                "\nend to end: the worker runs while the clients push (web, worker, PostgreSQL,"
                " Redis and the clients share the cores)"
                if not drain
                else "\ndrain: the clients push with no worker running, then the worker starts on"
                " the backlog (files/s from the first job started to the last finished)"
            )
            print(
                f"{'worker procs':>12} {'files':>6} {'accept p50':>11} {'p99':>9} {'errors':>7} "
                f"{'files/s':>8} {'vs 1':>6}"
            )
            base_rate = None
            for i, concurrency in enumerate(args.workers):
                offset = (i + (len(args.workers) if drain else 0)) * 100_000
                r = run(stack, tokens, args.files, concurrency, offset=offset, drain=drain)
                base_rate = base_rate or r["files_per_s"]
                print(
                    f"{r['concurrency']:>12} {r['files']:>6} {r['p50_ms']:>9.0f}ms "
                    f"{r['p99_ms']:>7.0f}ms {r['errors']:>7} {r['files_per_s']:>8.1f} "
                    f"{r['files_per_s'] / base_rate:>5.2f}x",
                    flush=True,
                )
                if r["cpu"]:
                    print("   ", r["cpu"])
                if r["error_examples"]:
                    print("   errors:", r["error_examples"])
        print("targets: 0 errors; >= 1.8x files/s from 1 to 2 worker processes")
        if args.list_cells:
            stack.stop_worker()
            t = time.perf_counter()
            seed_lists(args.list_cells, args.list_tests, 100)
            print(
                f"\nlist endpoints with {args.list_cells:,} cells and "
                f"{args.list_tests * 100:,} cycle rows (seeded in {time.perf_counter() - t:.0f} s),"
                " a member's token, p50 / p95 of 20:"
            )
            person = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import django;django.setup();"
                    "from django.contrib.auth import get_user_model;"
                    "from rest_framework.authtoken.models import Token;"
                    "from lims.models import Membership, Project;"
                    "u=get_user_model().objects.create_user('loadreader', password='x-load-2026');"
                    "Membership.objects.create(project=Project.objects.get(slug='load'), user=u);"
                    "print(Token.objects.create(user=u).key)",
                ],
                cwd=ROOT,
                env=stack.env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            for label, p50, p95 in list_latency(stack, person):
                print(f"  {label:28s} {p50:8.0f} ms {p95:8.0f} ms")
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
