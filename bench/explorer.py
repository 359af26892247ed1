"""Explorer benchmark: 1,000 cells with 100 cycles each, page and API server time.

Run on demand: ``.venv/bin/python bench/explorer.py [--cells 1000]``. Needs the machine's
PostgreSQL (scripts/services.sh starts it). Seeds a fresh database ``lims_bench_explorer``:
the demo's lineage (lot -> runs -> anneals -> composites, 20 cells through the real pipeline),
then bulk copies of cells built from the demo's annealed powders, each with one cycling test
of 100 cycle rows and a stitched record. Prints the server time and query count of the
explorer page (default view, and with 10 cells overlaid), its API, and the CSV export,
against a baseline measured in the same run: the same cells and records read as plain rows
(``values()``), the least any such page reads.
Target: the page with its plots <= 1 s at 1,000 cells, and a query count that does not grow.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB = "lims_bench_explorer"


def _setup() -> None:
    subprocess.run(["bash", str(ROOT / "scripts/services.sh")], check=True, capture_output=True)
    subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", DB], check=True)
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", DB], check=True)
    os.environ["DJANGO_SETTINGS_MODULE"] = "lims.settings.base"
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{DB}"
    os.environ["CELERY_BROKER_URL"] = "redis://127.0.0.1:6379/13"
    os.environ.setdefault("LIMS_DATA_DIR", tempfile.mkdtemp(prefix="lims-bench-explorer-"))
    os.environ["LIMS_LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)


def _seed(total: int):
    from decimal import Decimal
    from unittest import mock

    from django.contrib.auth import get_user_model

    from cells.models import Cell, CycleRecord, CyclingTest, StitchedRecord
    from lims import demo, services
    from lims.ingestion import services as ingest
    from lims.models import Membership, RawFile
    from samples.choices import OperationKind, SampleKind, SampleState
    from samples.models import Operation, OperationInput, OperationOutput, Sample

    project = services.project_get_or_create(name="Bench", slug="bench")
    user = get_user_model().objects.create_user("bench", password="bench-pw-2026")
    Membership.objects.create(project=project, user=user, role="editor")
    with mock.patch.object(ingest, "_dispatch", lambda job_id: None):
        demo.process_chain(project=project, user=user)
        demo.explorer_matrix(project=project, user=user)
    powders = list(Sample.objects.filter(code__startswith="NMC-R").order_by("code"))
    se = Sample.objects.get(code="LPSC-01")
    extra = total - Cell.objects.count()
    ops = Operation.objects.bulk_create(
        [
            Operation(project=project, kind=OperationKind.MIX, label=f"bench mix {i}")
            for i in range(extra)
        ]
    )
    composites = Sample.objects.bulk_create(
        [
            Sample(
                code=f"BENCH-CATH-{i:05d}",
                project=project,
                kind=SampleKind.COMPOSITE,
                quantity=Decimal("0.1"),
                remaining=Decimal("0.1"),
                state=SampleState.MIXED,
            )
            for i in range(extra)
        ]
    )
    OperationInput.objects.bulk_create(
        [
            OperationInput(operation=op, sample=powders[i % len(powders)], quantity=Decimal("0.07"))
            for i, op in enumerate(ops)
        ]
        + [OperationInput(operation=op, sample=se, quantity=Decimal("0.03")) for op in ops]
    )
    OperationOutput.objects.bulk_create(
        [
            OperationOutput(operation=op, sample=s, quantity=Decimal("0.1"))
            for op, s in zip(ops, composites, strict=True)
        ]
    )
    cells = Cell.objects.bulk_create(
        [
            Cell(
                code=f"BENCH-{i:05d}",
                project=project,
                format="bulk_pellet",
                cell_type="cathode_half",
                cathode_sample=s,
                cathode_active_material="NMC811",
                cathode_mass_mg=Decimal("12"),
                ratio_active=Decimal("70"),
                ratio_se=Decimal("30"),
                se_material="Li6PS5Cl",
            )
            for i, s in enumerate(composites)
        ]
    )
    raws = RawFile.objects.bulk_create(
        [
            RawFile(
                sha256=f"{i:064x}",
                size=1,
                original_name=f"bench-{i}.csv",
                project=project,
                storage_path=f"raw/bench/{i}",
            )
            for i in range(extra)
        ]
    )
    tests = CyclingTest.objects.bulk_create(
        [
            CyclingTest(
                cell=c,
                project=project,
                raw_file=r,
                parser_name="lims_csv",
                parser_version="1",
                chain_role=CyclingTest.ChainRole.MEMBER,
                chain_position=1,
                chain_cycle_offset=0,
            )
            for c, r in zip(cells, raws, strict=True)
        ]
    )
    rows = []
    for k, test in enumerate(tests):
        fade = 0.001 + 0.002 * (k % 7) / 7
        for n in range(1, 101):
            q = 180 * (1 - fade) ** (n - 1)
            rows.append(
                CycleRecord(
                    test=test,
                    cycle_index=n,
                    cycle_in_file=n,
                    charge_mah=q * 0.0084 * 1.01,
                    discharge_mah=q * 0.0084,
                    discharge_mah_g=q,
                    charge_mah_g=q * 1.01,
                    coulombic_efficiency=0.99,
                )
            )
    CycleRecord.objects.bulk_create(rows, batch_size=5000)
    StitchedRecord.objects.bulk_create(
        [
            StitchedRecord(
                cell=c,
                tests=1,
                cycles=100,
                first_discharge_mah_g=180.0,
                capacity_c100_mah_g=180 * (1 - 0.001 - 0.002 * (k % 7) / 7) ** 99,
                initial_ce=0.99,
                sources=[
                    {
                        "test": t.pk,
                        "file": r.original_name,
                        "raw_sha256": r.sha256,
                        "role": "member",
                    }
                ],
            )
            for k, (c, t, r) in enumerate(zip(cells, tests, raws, strict=True))
        ]
    )
    return user


def _time(fn, repeat: int = 5) -> tuple[float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    best = float("inf")
    queries = 0
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as ctx:
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        queries = len(ctx.captured_queries)
    return best, queries


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=1000)
    args = ap.parse_args()
    _setup()
    from django.test import Client

    from cells.models import Cell, StitchedRecord

    user = _seed(args.cells)
    client = Client()
    client.force_login(user)
    picked = "&".join(f"cell=BENCH-{i:05d}" for i in range(10))

    def baseline() -> None:
        list(Cell.objects.values())
        list(StitchedRecord.objects.values())

    def page(q: str = "") -> None:
        response = client.get(f"/cells/explorer/?{q}")
        assert response.status_code == 200, response.status_code

    def api() -> None:
        assert client.get("/api/v1/explorer/").status_code == 200

    def export() -> None:
        response = client.get("/cells/explorer/export.csv")
        b"".join(response.streaming_content)

    cases = [
        ("page, default view", page),
        ("page, 10 cells overlaid", lambda: page(picked)),
        ("API", api),
        ("CSV export", export),
    ]
    n = Cell.objects.count()
    print(f"explorer, {n} cells x 100 cycles (best of 5, in-process server time)")
    t_base, q_base = _time(baseline)
    print(f"  baseline: cells + records as plain rows {t_base * 1000:7.1f} ms  {q_base:3d} queries")
    for label, fn in cases:
        t, q = _time(fn)
        print(f"  {label:26s} {t * 1000:7.1f} ms  {q:3d} queries   {t / t_base:6.1f}x baseline")
    print("target: page with plots <= 1000 ms at 1,000 cells; query count constant (that it")
    print("does not grow with cells: tests/cells/test_explorer.py; compare --cells 100 here)")


if __name__ == "__main__":
    main()
