"""Change-log hash chain: what the chained append costs and how fast the chain verifies.

Run on demand against your own database (it writes cells and change-log rows there):
  DJANGO_SETTINGS_MODULE=lims.settings.test DATABASE_URL=postgres://.../lims_<you> \
      .venv/bin/python bench/audit_chain.py [N]
Measures, in the same run:
  (a) baseline: N cell updates each logged the old way (a plain ObjectChange insert);
  (b) chained: the same N updates logged through the chain (advisory lock, head read, sha256);
  (c) both again from 4 threads at once (the lock serialises appends to the chain);
  (d) chain_verify over the whole log (entries per second).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lims.settings.test")

import django  # noqa: E402

django.setup()

from django.db import connections, transaction  # noqa: E402

from cells import services  # noqa: E402
from cells.models import Cell  # noqa: E402
from lims import changelog  # noqa: E402
from lims.models import ObjectChange, Project  # noqa: E402

_chained_record = changelog._record
_seq_lock = threading.Lock()
_seq = [10**12]  # baseline rows sit far above the chain and are removed afterwards


def _plain_record(instance, action, before, after):  # type: ignore[no-untyped-def]
    """The log as it was: one insert, no lock, no head read, no hash."""
    from django.contrib.contenttypes.models import ContentType

    with _seq_lock:
        _seq[0] += 1
        seq = _seq[0]
    ObjectChange.objects.create(
        user_name="bench",
        context="shell",
        request_id="bench",
        action=action,
        content_type=ContentType.objects.get_for_model(type(instance)),
        object_id=str(instance.pk),
        object_repr=str(instance)[:200],
        prechange=before,
        postchange=after,
        seq=seq,
        prev_hash="",
        hash="",
    )


def _updates(cells: list[Cell], n: int, tag: str) -> None:
    for i in range(n):
        cell = cells[i % len(cells)]
        with transaction.atomic():
            services.cell_update(cell=cell, notes=f"{tag} {i}")


def _run(record, cells: list[Cell], n: int, threads: int, tag: str) -> float:  # type: ignore[no-untyped-def]
    changelog._record = record
    per = n // threads
    chunks = [cells[k::threads] for k in range(threads)]

    def work(k: int) -> None:
        try:
            _updates(chunks[k], per, f"{tag}-{k}")
        finally:
            connections.close_all()

    start = time.perf_counter()
    if threads == 1:
        _updates(cells, n, tag)
    else:
        ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    return time.perf_counter() - start


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    project, _ = Project.objects.get_or_create(slug="bench-audit", defaults={"name": "bench audit"})
    cells = [
        Cell.objects.filter(project=project, code=f"BA-{i}").first()
        or services.cell_create(project=project, code=f"BA-{i}", format="coin", cell_type="full")
        for i in range(8)
    ]
    rows = []
    for threads in (1, 4):
        base = _run(_plain_record, cells, n, threads, "base")
        ObjectChange.objects.filter(seq__gt=10**12).delete()  # the baseline rows (not chained)
        chained = _run(_chained_record, cells, n, threads, "chain")
        rows.append((threads, base, chained))
    changelog._record = _chained_record
    fields = ObjectChange.objects.order_by("-seq").values(*changelog.HASHED_FIELDS[:-1]).first()
    assert fields is not None
    fields = {**fields, "content_type": "cells.cell", "prev_hash": "0" * 64}
    start = time.perf_counter()
    for _ in range(2000):
        changelog.entry_digest(fields)
    digest_us = (time.perf_counter() - start) / 2000 * 1e6
    start = time.perf_counter()
    report = changelog.chain_verify()
    verify_s = time.perf_counter() - start
    print(f"{n} logged cell updates per run (PostgreSQL, each update its own transaction)")
    print("threads  plain ms/change  chained ms/change  ratio  chained changes/s")
    for threads, base, chained in rows:
        print(
            f"{threads:>7}  {base / n * 1e3:>15.3f}  {chained / n * 1e3:>17.3f}  "
            f"{chained / base:>5.2f}  {n / chained:>17.0f}"
        )
    print(f"entry_digest alone: {digest_us:.0f} us per entry")
    print(
        f"chain_verify: {report.entries} entries in {verify_s:.2f} s "
        f"({report.entries / verify_s:.0f}/s), break: {report.first_break}"
    )


if __name__ == "__main__":
    main()
