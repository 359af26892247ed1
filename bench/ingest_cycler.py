"""Cycler ingestion benchmark: our parser and the full pipeline against polars' own limit.

Run on demand (``make bench`` or ``.venv/bin/python bench/ingest_cycler.py [--rows 1e6 1e7]``).
Prints, for generated constant-current CSVs of 1 M and 10 M rows (1,000 cycles):
  (a) polars scan_csv -> per-cycle summary: the limit, the baseline of this run;
  (b) the project's parser + per-cycle summary, in process;
  (c) the full ingest: HTTP upload -> job succeeded, with a real Celery worker on PostgreSQL +
      Redis (raw file and Parquet stored, cycle rows and performance record written);
the ratios b/a and c/a and the worker's peak RSS. Then the BioLogic .mpr and Neware .ndax paths
on the largest fixtures against the reader library's bare read of the same file.
Needs the machine's PostgreSQL and Redis (scripts/services.sh starts them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FIXTURES = ROOT / "tests" / "fixtures" / "cycler"
COLUMNS = [
    "time_s",
    "cycle",
    "step",
    "current_a",
    "voltage_v",
    "charge_capacity_ah",
    "discharge_capacity_ah",
]


def generate_csv(path: Path, rows: int, cycles: int = 1000) -> None:
    """Constant-current cycling: per cycle a charge then a discharge step, capacity per step."""
    per_cycle = rows // cycles
    half = per_cycle // 2
    dt = 10.0
    current = 0.002  # 2 mA
    chunk_cycles = 50
    with path.open("wb") as out:
        header = True
        for start in range(0, cycles, chunk_cycles):
            n_c = min(chunk_cycles, cycles - start)
            idx = np.arange(n_c * per_cycle)
            cyc = start + 1 + idx // per_cycle
            pos = idx % per_cycle
            charging = pos < half
            k = np.where(charging, pos, pos - half)
            fade = 1.0 - 0.0002 * (cyc - 1)
            frac = k / half
            volt = np.where(charging, 3.0 + 1.2 * frac**0.7, 4.2 - 1.3 * frac**1.3 * fade)
            cap = (k + 1) * dt * current / 3600.0
            df = pl.DataFrame(
                {
                    "time_s": (start * per_cycle + idx) * dt,
                    "cycle": cyc,
                    "step": np.where(charging, 1, 2) + 2 * (cyc - 1),
                    "current_a": np.where(charging, current, -current),
                    "voltage_v": np.round(volt, 5),
                    "charge_capacity_ah": np.where(charging, cap, 0.0),
                    "discharge_capacity_ah": np.where(charging, 0.0, cap * fade),
                }
            )
            df.write_csv(out, include_header=header, float_precision=7)
            header = False


def limit_summary(path: Path) -> pl.DataFrame:
    """(a): the fastest honest per-cycle summary polars can do on this CSV."""
    return (
        pl.scan_csv(path)
        .group_by("cycle")
        .agg(
            pl.col("charge_capacity_ah").max().alias("charge"),
            pl.col("discharge_capacity_ah").max().alias("discharge"),
            pl.col("voltage_v").filter(pl.col("current_a") > 0).mean().alias("v_ch"),
            pl.col("voltage_v").filter(pl.col("current_a") < 0).mean().alias("v_dis"),
            pl.col("time_s").min().alias("t0"),
            pl.col("time_s").max().alias("t1"),
        )
        .sort("cycle")
        .collect(engine="streaming")
    )


def project_summary(path: Path) -> pl.DataFrame:
    """(b): detection + parser + summary exactly as the worker runs them."""
    from cells.parsers import PARSERS
    from cells.parsers.summary import summarize_cycles
    from lims.ingestion import registry
    from lims.ingestion.parsing import ParseContext
    from lims.ingestion.registry import detect_parser

    registry.register_parsers(PARSERS)  # what cells.apps does when Django starts
    head = path.open("rb").read(65536)
    parser = detect_parser(head, path.name, "cycler")
    assert parser is not None, "no parser for the generated CSV"
    data = parser.parse(path, ParseContext(filename=path.name, size=path.stat().st_size))
    return summarize_cycles(data.series)


def timed(fn, *args, repeat: int = 3):
    best = float("inf")
    result = None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - t)
    return best, result


class Stack:
    """PostgreSQL database + Redis broker + a real worker + a web server, for (c)."""

    def __init__(self, data_dir: Path, *, db: str = "lims_bench", redis_db: int = 14) -> None:
        self.data_dir = data_dir
        self.db = db
        self.redis_db = redis_db  # flushed at start: a bench gets its own
        self.port = _free_port()
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "lims.settings.base",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{self.db}",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{redis_db}",
            "LIMS_DATA_DIR": str(data_dir),
            "LIMS_LOG_LEVEL": "WARNING",
        }
        self.procs: list[subprocess.Popen[bytes]] = []
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log = (data_dir / "bench-stack.log").open("wb")
        self.peak_rss = 0
        self._stop = threading.Event()

    def __enter__(self) -> Stack:
        subprocess.run(["bash", str(ROOT / "scripts/services.sh")], check=True, capture_output=True)
        subprocess.run(
            ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", self.db], check=True
        )
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", self.db], check=True)
        subprocess.run(
            ["redis-cli", "-n", str(self.redis_db), "flushdb"], check=True, capture_output=True
        )
        py = sys.executable
        self._manage("migrate", "--noinput", "-v", "0")
        self.token = self._manage("create_instrument_token", "bench-cycler", "--project", "bench")
        bin_dir = Path(py).parent
        self.worker = subprocess.Popen(
            [
                str(bin_dir / "celery"),
                "-A",
                "lims",
                "worker",
                "--concurrency=1",
                f"--pool={os.environ.get('BENCH_POOL', 'prefork')}",
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
        web = subprocess.Popen(
            [
                str(bin_dir / "gunicorn"),
                "lims.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "1",
                "--timeout",
                "600",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.procs = [self.worker, web]  # both log to bench-stack.log in the data dir
        threading.Thread(target=self._watch_rss, daemon=True).start()
        _wait_port(self.port)
        # Warm up: the first request imports the URLconf, the first task imports polars.
        warm = self.data_dir / "warmup.csv"
        generate_csv(warm, 20_000, cycles=10)
        self.ingest(warm)
        return self

    def _manage(self, *args: str) -> str:
        if args[0] == "create_instrument_token":
            code = (
                "from lims import services; from cells import services as cs;"
                "p = services.project_get_or_create(name='Bench', slug='bench');"
                "cs.cell_create(project=p, code='BENCH-1', format='bulk_pellet',"
                " cell_type='cathode_half', cathode_mass_mg=10, ratio_active=70, ratio_se=30)"
            )
            subprocess.run(
                [sys.executable, "-c", "import django;django.setup();" + code],
                cwd=ROOT,
                env=self.env,
                check=True,
            )
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    def _watch_rss(self) -> None:
        proc = psutil.Process(self.worker.pid)
        while not self._stop.is_set():
            try:
                rss = proc.memory_info().rss + sum(
                    c.memory_info().rss for c in proc.children(recursive=True)
                )
                self.peak_rss = max(self.peak_rss, rss)
            except psutil.Error:
                pass
            time.sleep(0.05)

    def ingest(self, path: Path) -> float:
        import requests

        t = time.perf_counter()
        wall_start = time.time()
        out = subprocess.run(
            [
                "curl",
                "-sS",
                "-H",
                f"Authorization: Token {self.token}",
                "-F",
                f"file=@{path}",
                "-F",
                "cell=BENCH-1",
                f"http://127.0.0.1:{self.port}/api/v1/ingest/",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        uploaded = time.perf_counter() - t
        job_url = json.loads(out.stdout)["job"]["url"]
        while True:
            body = requests.get(
                job_url, headers={"Authorization": f"Token {self.token}"}, timeout=30
            ).json()
            if body["status"] not in ("pending", "running"):
                break
            time.sleep(0.25)  # light polling: a busy poll would steal a core from the worker
        # Elapsed to the job's own finish time (same machine clock), not to the poll that saw it.
        finished = datetime.fromisoformat(body["finished_at"].replace("Z", "+00:00"))
        elapsed = finished.timestamp() - wall_start
        if body["status"] != "succeeded":
            raise RuntimeError(f"ingest ended {body['status']}: {body['error']} {body['result']}")
        self.last_breakdown = (
            f"upload+store {uploaded:.2f}s, job run {body['duration_s']:.2f}s"
            f" (series+summary {body['result']['timings_s']['series_and_summary']:.2f}s,"
            f" database {body['result']['timings_s']['database']:.2f}s)"
        )
        return elapsed

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port}")


def vendor_paths() -> None:
    """Largest .mpr and .ndax fixtures: our parser against the reader library alone.

    galvani's ``MPRfile(...).data`` is a zero-copy numpy view of the bytes it read, so a
    second baseline materialises it as a polars table (what any use of the data needs);
    fastnda already returns a polars frame.
    """
    import fastnda
    from galvani import BioLogic

    from cells.parsers import PARSERS
    from cells.parsers.summary import summarize_cycles
    from lims.ingestion import registry
    from lims.ingestion.parsing import ParseContext
    from lims.ingestion.registry import get_parser

    registry.register_parsers(PARSERS)
    mpr = FIXTURES / "biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"
    ndax = FIXTURES / "neware/fastnda_nw4-120-1-6-53.ndax"
    cases = [
        (
            "BioLogic .mpr",
            mpr,
            "biologic_mpr",
            lambda: BioLogic.MPRfile(str(mpr)).data,
            lambda: pl.from_numpy(BioLogic.MPRfile(str(mpr)).data),
        ),
        ("Neware .ndax", ndax, "neware_nda", lambda: fastnda.read(str(ndax)), None),
    ]
    print("\nVendor binaries (best of 20, ms): parser (parse + collect) and parser + summary")
    print("against the reader library's bare read (ratio target <= 1.5)")
    for label, path, parser_name, bare, table in cases:
        parser = get_parser(parser_name)
        ctx = ParseContext(filename=path.name, size=path.stat().st_size)
        t_bare, _ = timed(bare, repeat=20)
        t_parse, _ = timed(lambda p=parser, f=path, c=ctx: p.parse(f, c).collect(), repeat=20)
        t_sum, _ = timed(
            lambda p=parser, f=path, c=ctx: summarize_cycles(p.parse(f, c).series), repeat=20
        )
        line = (
            f"  {label:14s} bare read {t_bare * 1000:7.1f}   parser {t_parse * 1000:7.1f}"
            f" ({t_parse / t_bare:5.2f}x)   parser+summary {t_sum * 1000:7.1f}"
            f" ({t_sum / t_bare:5.2f}x)"
        )
        if table is not None:
            t_table, _ = timed(table, repeat=20)
            line += (
                f"   | read as a table {t_table * 1000:6.1f} -> parser {t_parse / t_table:5.2f}x"
            )
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=float, nargs="+", default=[1e6, 1e7])
    ap.add_argument("--no-full", action="store_true", help="skip (c), the full ingest")
    args = ap.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lims.settings.base")
    tmp = Path(tempfile.mkdtemp(prefix="lims-bench-"))
    os.environ.setdefault("LIMS_DATA_DIR", str(tmp / "inproc"))
    import django

    django.setup()
    try:
        print(
            f"{'rows':>10} {'MB':>7} {'(a) limit':>10} {'(b) parser':>11} {'b/a':>6} "
            f"{'(c) full':>9} {'c/a':>6} {'worker peak RSS':>16}"
        )
        stack = None if args.no_full else Stack(tmp / "stack").__enter__()
        try:
            for rows in (int(r) for r in args.rows):
                path = tmp / f"cc_{rows}.csv"
                generate_csv(path, rows)
                mb = path.stat().st_size / 1e6
                t_a, ref = timed(limit_summary, path)
                t_b, ours = timed(project_summary, path)
                assert ours.height == ref.height, (ours.height, ref.height)
                line = f"{rows:>10,} {mb:7.0f} {t_a:9.3f}s {t_b:10.3f}s {t_b / t_a:6.2f}"
                if stack is not None:
                    stack.peak_rss = 0
                    t_c = stack.ingest(path)
                    line += f" {t_c:8.2f}s {t_c / t_a:6.2f} {stack.peak_rss / 2**20:13.0f} MiB"
                print(line, flush=True)
                if stack is not None:
                    print(f"{'':>10} full ingest: {stack.last_breakdown}", flush=True)
                path.unlink()
        finally:
            if stack is not None:
                stack.__exit__(None, None, None)
        print(
            "targets (issue 9): b/a <= 1.5 at 10 M rows; c/a <= 5 at 1 M, <= 4 at 10 M;"
            " worker peak RSS <= 1 GiB at 10 M"
        )
        vendor_paths()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
