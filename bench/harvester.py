"""Harvester benchmark: 1,000 small cycler files dropped at once into a watched folder.

Run on demand: ``.venv/bin/python bench/harvester.py [--files 1000] [--db lims_bench]
[--redis-db 14]``. Against real gunicorn + a Celery worker on PostgreSQL and Redis (the stack
of bench/ingest_cycler.py), it measures end to end, from the moment the files are written
until every job has finished:

  (a) the baseline: the same number of files (other bytes) posted by a plain sequential
      client loop (one ``requests`` session, one POST each), then waiting for the jobs;
  (b) lims-harvest run: the files written into its watched folder at once (settle time 1 s);

files/s of each and the ratio b/a (the harvester's overhead: settling, hashing, the sha256
check before each upload, the state file). Each file is checked to have exactly one raw file
and one succeeded job, and the harvester's state to have sent each once.
Needs the machine's PostgreSQL and Redis (scripts/services.sh starts them).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest_cycler import Stack  # noqa: E402

HEADER = "time_s,cycle,step,current_a,voltage_v,charge_capacity_ah,discharge_capacity_ah"


def small_cycler_csv(seed: int, cycles: int = 3, points: int = 20) -> bytes:
    """Constant-current cycles in the generic layout (as lims/demo.py writes them), ~6 KB;
    the first capacity carries the seed, so every file has its own bytes."""
    lines = [HEADER]
    t = 0.0
    for n in range(1, cycles + 1):
        cap_ah = (0.00126 + seed * 1e-9) * (1 - 0.002 * n)
        current = cap_ah / 10.0
        for half, sign in ((0, 1), (1, -1)):
            for k in range(1, points + 1):
                t += 1800
                frac = k / points
                volt = 3.6 + 0.6 * frac if sign > 0 else 4.2 - 1.2 * frac**1.5
                done = cap_ah * frac
                ch, dis = (done, 0.0) if sign > 0 else (0.0, done)
                lines.append(
                    f"{t:.0f},{n},{2 * n - 1 + half},{sign * current:.6e},{volt:.4f},"
                    f"{ch:.9e},{dis:.9e}"
                )
    return ("\n".join(lines) + "\n").encode()


CELLS = (
    "import django, sys; django.setup();"
    "from lims.models import Project; from cells import services as cs;"
    "p = Project.objects.get(slug='bench');"
    "[cs.cell_create(project=p, code=c, format='bulk_pellet', cell_type='cathode_half',"
    " cathode_mass_mg=10, ratio_active=70, ratio_se=30) for c in sys.argv[1:]]"
)


def make_cells(stack: Stack, codes: list[str]) -> None:
    """One cell per file: each job reaches its own cell (one cell for all would make every
    job re-stitch a chain of hundreds of tests, and the bench would measure that)."""
    subprocess.run([sys.executable, "-c", CELLS, *codes], cwd=ROOT, env=stack.env, check=True)


def jobs_of(dsn: str, shas: list[str]) -> dict[str, list[str]]:
    """sha256 -> statuses of its jobs, for the raw files of these bytes."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT r.sha256, array_agg(j.status) FROM lims_rawfile r"
            " JOIN lims_ingestionjob j ON j.raw_file_id = r.id"
            " WHERE r.sha256 = ANY(%s) GROUP BY r.sha256",
            (shas,),
        ).fetchall()
    return {sha: list(statuses) for sha, statuses in rows}


def wait_done(dsn: str, shas: list[str], timeout: float) -> float:
    """Wait until every file has a finished job; the moment (time.time) it was so."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = jobs_of(dsn, shas)
        if len(jobs) == len(shas) and all(
            s not in ("pending", "running") for v in jobs.values() for s in v
        ):
            return time.time()
        time.sleep(0.5)
    raise RuntimeError(f"not all {len(shas)} files finished within {timeout} s")


def check_once(dsn: str, shas: list[str]) -> None:
    jobs = jobs_of(dsn, shas)
    bad = {s: v for s, v in jobs.items() if v != ["succeeded"]}
    missing = set(shas) - jobs.keys()
    if bad or missing:
        raise RuntimeError(f"{len(missing)} missing, not exactly one succeeded job: {bad}")


def latest_finish(dsn: str, shas: list[str]) -> float:
    with psycopg.connect(dsn) as conn:
        (ts,) = conn.execute(
            "SELECT EXTRACT(EPOCH FROM MAX(j.finished_at)) FROM lims_ingestionjob j"
            " JOIN lims_rawfile r ON j.raw_file_id = r.id WHERE r.sha256 = ANY(%s)",
            (shas,),
        ).fetchone()
    return float(ts)


def baseline(stack: Stack, dsn: str, files: list[bytes]) -> tuple[float, float]:
    """A plain sequential loop: (seconds until all finished, seconds of the POSTs)."""
    shas = [hashlib.sha256(f).hexdigest() for f in files]
    session = requests.Session()
    session.headers["Authorization"] = f"Token {stack.token}"
    url = f"http://127.0.0.1:{stack.port}/api/v1/ingest/"
    start = time.time()
    for n, content in enumerate(files):
        r = session.post(
            url,
            files={"file": (f"plain-{n}.csv", content)},
            data={"cell": f"PB-{n:04d}"},
            timeout=60,
        )
        if r.status_code != 202:
            raise RuntimeError(f"plain upload {n}: {r.status_code} {r.text[:200]}")
    posted = time.time() - start
    wait_done(dsn, shas, timeout=1800)
    check_once(dsn, shas)
    return latest_finish(dsn, shas) - start, posted


def harvested(stack: Stack, dsn: str, files: list[bytes], work: Path) -> tuple[float, float]:
    """lims-harvest run on a folder the files are dropped into: (seconds until all finished,
    seconds until the harvester had sent them all)."""
    folder = work / "instrument"
    folder.mkdir(parents=True)
    config = work / "harvest.toml"
    config.write_text(
        f'server = "http://127.0.0.1:{stack.port}"\ntoken = "{stack.token}"\n'
        "rescan_seconds = 30\nheartbeat_seconds = 60\n"
        f"[[folders]]\npath = '{folder}'\npatterns = ['*.csv']\nkind = 'cycler'\n"
        "settle_seconds = 1\n"
        "[[folders.rules]]\nmatch = '^cell-(?P<n>\\d+)'\nfields = { cell = 'HB-{n}' }\n"
    )
    log = (work / "harvest.log").open("wb")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "lims-harvest"),
            "run",
            "--config",
            str(config),
            "--log-format=json",
            "--log-level=WARNING",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(2)  # started and watching
        shas = [hashlib.sha256(f).hexdigest() for f in files]
        start = time.time()
        for n, content in enumerate(files):  # dropped at once: as a copy of a folder writes
            (folder / f"cell-{n:04d}.csv").write_bytes(content)
        state = work / "harvest.state.sqlite"
        sent_at = 0.0
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            db = sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=10)
            try:
                (sent,) = db.execute("SELECT COUNT(*) FROM files WHERE status = 'sent'").fetchone()
            finally:
                db.close()
            if sent == len(files):
                sent_at = time.time() - start
                break
            time.sleep(0.2)
        wait_done(dsn, shas, timeout=1800)
        check_once(dsn, shas)
        db = sqlite3.connect(state)
        outcomes = dict(db.execute("SELECT outcome, COUNT(*) FROM sends GROUP BY outcome"))
        distinct = db.execute("SELECT COUNT(DISTINCT path) FROM sends").fetchone()[0]
        db.close()
        if outcomes != {"uploaded": len(files)} or distinct != len(files):
            raise RuntimeError(f"the harvester did not send each file once: {outcomes}")
        return latest_finish(dsn, shas) - start, sent_at
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--db", default="lims_bench")
    ap.add_argument("--redis-db", type=int, default=14)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lims-bench-harvest-"))
    plain_files = [small_cycler_csv(n) for n in range(args.files)]
    harvest_files = [small_cycler_csv(10**6 + n) for n in range(args.files)]
    size_kb = sum(map(len, plain_files)) / len(plain_files) / 1024
    dsn = f"postgresql://postgres@127.0.0.1:5432/{args.db}"
    stack = Stack(tmp / "stack", db=args.db, redis_db=args.redis_db).__enter__()
    try:
        make_cells(stack, [f"{p}-{n:04d}" for p in ("PB", "HB") for n in range(args.files)])
        t_plain, t_posted = baseline(stack, dsn, plain_files)
        t_harvest, t_sent = harvested(stack, dsn, harvest_files, tmp / "harvest")
    finally:
        stack.__exit__(None, None, None)
        shutil.rmtree(tmp, ignore_errors=True)
    n = args.files
    result = {
        "files": n,
        "mean_file_kb": round(size_kb, 1),
        "plain_loop_s": round(t_plain, 1),
        "plain_loop_files_per_s": round(n / t_plain, 1),
        "plain_posts_s": round(t_posted, 1),
        "harvester_s": round(t_harvest, 1),
        "harvester_files_per_s": round(n / t_harvest, 1),
        "harvester_all_sent_s": round(t_sent, 1),
        "ratio_harvester_over_plain": round(t_harvest / t_plain, 2),
    }
    print(
        f"{n} files of {size_kb:.1f} KB, end to end until every job finished (1 worker):\n"
        f"  (a) plain sequential POST loop: {t_plain:6.1f} s = {n / t_plain:6.1f} files/s"
        f" (POSTs alone {t_posted:.1f} s)\n"
        f"  (b) lims-harvest run, dropped at once: {t_harvest:6.1f} s ="
        f" {n / t_harvest:6.1f} files/s (all sent after {t_sent:.1f} s, settle 1 s)\n"
        f"  b/a = {t_harvest / t_plain:.2f}; each file: one raw file, one succeeded job, sent once"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
