"""Linking a spectrum by hand: how long the request takes and when the queued refit is stored,
beside what a refit in the request (the synchronous ``POST .../fits/``) would cost.

Run on demand (``.venv/bin/python bench/eis_link.py``), on the stack of bench/eis_fit.py
(gunicorn with 1 worker + a Celery worker, PostgreSQL + Redis; its own database and Redis db):
  1. six distinct 60-point spectra uploaded without a cell: each waits for linking (fitted at
     ingestion as a cell; the worker has imported impedance.py after the first);
  2. ``POST /api/v1/eis-spectra/<id>/link/`` with ``sample=`` for five of them, one after the
     other: the request's time (the first on a web process that never imported impedance.py)
     and, polling ``GET .../fits/``, when the refit ('blocking_pellet') is stored;
  3. the baseline, the other design: ``POST .../fits/`` (the fit in the request) on the same
     web process, first (cold: impedance.py imported by that request) and warm.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from eis_fit import EisStack, spectrum_csv  # noqa: E402  (bench/ is not a package)

USER = (
    "from django.contrib.auth import get_user_model; from rest_framework.authtoken.models import"
    " Token; from lims.models import Membership, Project; from samples import services as s;"
    "p = Project.objects.get(slug='bench');"
    "u = get_user_model().objects.create_user('bench-person', password='x');"
    "Membership.objects.create(project=p, user=u, role='editor');"
    "s.sample_create(project=p, code='PELLET-1', kind='powder', quantity='1',"
    " thickness_um=1000, area_cm2='0.785');"
    "print(Token.objects.create(user=u).key)"
)


def main() -> None:
    import requests

    with tempfile.TemporaryDirectory(prefix="eis-link-bench-") as tmp:
        tmpdir = Path(tmp)
        files = []
        for i in range(6):
            path = tmpdir / f"unlinked_{i}.csv"
            spectrum_csv(path, 2000.0 + 41 * i)
            files.append(path)
        with EisStack(tmpdir / "stack", db="lims_eis_ux_bench", redis_db=3) as stack:
            key = subprocess.run(
                [sys.executable, "-c", "import django;django.setup();" + USER],
                cwd=ROOT,
                env=stack.env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            person = {"Authorization": f"Token {key}"}
            api = f"http://127.0.0.1:{stack.port}/api/v1/eis-spectra"
            spectra = []
            for path in files:
                _, body = stack.ingest_eis(path, cell="", metadata=None)
                spectra.append(body["result"]["eis_spectrum"])

            link_s, stored_s = [], []
            for spectrum in spectra[:5]:
                t = time.perf_counter()
                response = requests.post(
                    f"{api}/{spectrum}/link/", json={"sample": "PELLET-1"}, headers=person
                )
                link_s.append(time.perf_counter() - t)
                assert response.status_code == 202, response.text
                refit = response.json()["refit"]["id"]
                while True:
                    fits = requests.get(f"{api}/{spectrum}/fits/", headers=person).json()
                    mine = next(f for f in fits if f["id"] == refit)
                    if mine["status"] != "queued":
                        break
                    time.sleep(0.02)
                stored_s.append(time.perf_counter() - t)
                assert mine["status"] == "ok" and mine["sigma_s_cm"], mine

            sync_s = []
            for _ in range(4):
                t = time.perf_counter()
                response = requests.post(
                    f"{api}/{spectra[5]}/fits/", json={"circuit": "blocking_pellet"}, headers=person
                )
                sync_s.append(time.perf_counter() - t)
                assert response.status_code == 201 and response.json()["status"] == "ok"

    print("Link a 60-point spectrum to a sample by hand (refit 'blocking_pellet' queued)")
    print(
        f"  link request:            first {link_s[0] * 1000:7.1f} ms (web never imported "
        f"impedance.py), then {min(link_s[1:]) * 1000:.1f}-{max(link_s[1:]) * 1000:.1f} ms"
    )
    print(
        f"  link -> refit stored:    {min(stored_s):.3f}-{max(stored_s):.3f} s "
        f"(worker warm; polled every 20 ms)"
    )
    print(
        f"  baseline, fit in the request (POST .../fits/): first {sync_s[0]:.3f} s "
        f"(cold web process), then {min(sync_s[1:]):.3f}-{max(sync_s[1:]):.3f} s"
    )


if __name__ == "__main__":
    main()
