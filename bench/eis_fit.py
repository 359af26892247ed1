"""Impedance benchmark: one 60-point spectrum from HTTP upload to a stored, fitted result.

Run on demand (``.venv/bin/python bench/eis_fit.py``). With a real Celery worker on PostgreSQL +
Redis and gunicorn (the stack of bench/ingest_cycler.py, on its own database and Redis db):
  (a) baseline: a bare numpy read of the file (np.loadtxt), best of 5;
  (b) the fit alone in process: Lin-KK + the 'blocking_pellet' fit, best of 5;
  (c) end to end: upload -> job succeeded with the EisSpectrum and its EisFit stored, the first
      impedance upload after start (cold: impedance.py imported in the worker) and the best of 5
      warm ones; beside it the worker's own KK + fit time (the job's ``timings_s.fit``).
Targets: (c) <= 2 s, the fit <= 0.5 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest_cycler import Stack  # noqa: E402  (bench/ is not a package)

METADATA = {"circuit": "blocking_pellet", "thickness_mm": 1.0, "area_cm2": 0.785}


def spectrum_csv(path: Path, r1: float) -> None:
    """60 points, 1 MHz .. 0.1 Hz, R0-p(R1,CPE1)-CPE2 with 0.3 % noise: f, Z', Z'' (no header)."""
    rng = np.random.default_rng(int(r1))
    f = np.logspace(6, -1, 60)
    jw = 2j * np.pi * f
    z = 5.0 + r1 / (1 + r1 * 1e-9 * jw**0.9) + 1 / (1e-6 * jw**0.8)
    z = z * (1 + 0.003 * rng.standard_normal(60))
    np.savetxt(path, np.column_stack([f, z.real, z.imag]), delimiter=",", fmt="%.8e")


class EisStack(Stack):
    def __init__(self, data_dir: Path, *, db: str = "lims_eis_wire_bench", redis_db: int = 11):
        super().__init__(data_dir, db=db, redis_db=redis_db)

    def __enter__(self) -> EisStack:
        super().__enter__()
        return self

    def ingest_eis(
        self, path: Path, *, cell: str = "BENCH-1", metadata: dict | None = METADATA
    ) -> tuple[float, dict]:
        """Upload and wait for the job; without a cell it must end ``needs_linking``."""
        import requests

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
                "kind=eis",
                *(["-F", f"cell={cell}"] if cell else []),
                "-F",
                "temperature_c=25",
                *(["-F", f"metadata={json.dumps(metadata)}"] if metadata else []),
                f"http://127.0.0.1:{self.port}/api/v1/ingest/",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        job_url = json.loads(out.stdout)["job"]["url"]
        while True:
            body = requests.get(
                job_url, headers={"Authorization": f"Token {self.token}"}, timeout=30
            ).json()
            if body["status"] not in ("pending", "running"):
                break
            time.sleep(0.05)
        if body["status"] != ("succeeded" if cell else "needs_linking"):
            raise RuntimeError(f"ingest ended {body['status']}: {body['error']} {body['result']}")
        finished = datetime.fromisoformat(body["finished_at"].replace("Z", "+00:00"))
        fit = body["result"].get("fit") or {}
        if fit.get("status") != "ok":
            raise RuntimeError(f"the fit did not succeed: {fit}")
        return finished.timestamp() - wall_start, body


def best(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="eis-bench-") as tmp:
        tmpdir = Path(tmp)
        files = []
        for i in range(6):
            path = tmpdir / f"pellet_{i}.csv"
            spectrum_csv(path, 1000.0 + 37 * i)  # distinct contents: no dedupe by sha256
            files.append(path)

        baseline = best(lambda: np.loadtxt(files[0], delimiter=","))
        from cells.eis.fit import fit_circuit, kramers_kronig

        data = np.loadtxt(files[0], delimiter=",")
        f, z = data[:, 0], data[:, 1] + 1j * data[:, 2]
        fit_alone = best(lambda: (kramers_kronig(f, z), fit_circuit(f, z, "blocking_pellet")))

        with EisStack(tmpdir / "stack") as stack:
            cold, body = stack.ingest_eis(files[0])
            cold_fit = body["result"]["timings_s"]["fit"]
            warm, worker_fit = [], []
            for path in files[1:]:
                elapsed, body = stack.ingest_eis(path)
                warm.append(elapsed)
                worker_fit.append(body["result"]["timings_s"]["fit"])
            sigma = body["result"]["fit"]["sigma_s_cm"]

    print("60-point spectrum, 'blocking_pellet' circuit (R0-p(R1,CPE1)-CPE2)")
    print(f"(a) baseline np.loadtxt of the file:   {baseline * 1000:8.2f} ms")
    print(f"(b) Lin-KK + fit in process (best):    {fit_alone * 1000:8.2f} ms   target <= 500 ms")
    print(
        f"(c) upload -> fitted, cold worker:     {cold:8.3f} s    (KK + fit in the job "
        f"{cold_fit:.3f} s, incl. importing impedance.py)"
    )
    print(
        f"    upload -> fitted, warm (best of {len(warm)}): {min(warm):8.3f} s    "
        f"median {sorted(warm)[len(warm) // 2]:.3f} s; KK + fit in the job "
        f"{min(worker_fit):.3f}-{max(worker_fit):.3f} s   target <= 2 s"
    )
    print(
        f"    ratios: fit/baseline {fit_alone / baseline:.0f}x, end-to-end/fit "
        f"{min(warm) / fit_alone:.1f}x; last sigma {sigma:.4g} S/cm"
    )


if __name__ == "__main__":
    main()
