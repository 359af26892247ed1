"""The cell page of a cell with a cycler file, a second split test and a spectrum between them
(all through the worker): the Nyquist plot, the stitched block with R_interface vs cycle, and
the dQ/dV plot are drawn."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.conftest import FIXTURES, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MPR = FIXTURES / "cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"
START = "2020-10-26T12:49:58+00:00"  # the .mpr's own start time


def _submit(path: Path, project, **params):
    from lims.ingestion import services as ingest
    from lims.models import IngestionJob

    with path.open("rb") as fh:
        job, _ = ingest.ingest_submit(stream=fh, filename=path.name, project=project, params=params)
    done = wait_for(
        lambda: IngestionJob.objects.filter(pk=job.pk, status="succeeded").first(), timeout=90
    )
    assert done is not None, IngestionJob.objects.get(pk=job.pk).error
    return done


def test_cell_page_draws_impedance_stitched_test_and_dqdv(
    celery_worker_process, signed_in, cell, project, tmp_path
):
    from playwright.sync_api import expect

    from cells.eis.fit import CIRCUITS, circuit_impedance
    from cells.models import CyclingTest

    first = _submit(MPR, project, cell=cell.code)
    test = CyclingTest.objects.get(pk=first.result["cycling_test"])
    end = datetime.fromisoformat(START) + timedelta(seconds=test.series_last_s or 0)

    f = np.logspace(5, -1, 61)
    z = circuit_impedance(CIRCUITS["cell_interfaces"], [8, 40, 2e-6, 0.9, 100, 5e-4, 0.8, 20], f)
    eis_csv = tmp_path / "eis_after_run.csv"
    pl.DataFrame({"Frequency": f, "Zreal": z.real, "Zimag": z.imag}).write_csv(eis_csv)
    measured = (end + timedelta(minutes=10)).isoformat()
    _submit(eis_csv, project, cell=cell.code, metadata={"measured_at": measured})

    # the test goes on in a second file (a restart one hour later): two cycles at 1 mA
    t = np.arange(0, 7200, 60.0)
    current = np.where((t % 3600) < 1800, 1e-3, -1e-3)
    part2 = tmp_path / "part2.csv"
    pl.DataFrame(
        {
            "time_s": t,
            "cycle": (t // 3600 + 1).astype(int),
            "current_a": current,
            "voltage_v": 3.0 + 500 * current,
        }
    ).write_csv(part2)
    restart = (end + timedelta(hours=1)).isoformat()
    _submit(part2, project, cell=cell.code, metadata={"start_time": restart})

    page = signed_in(f"/cells/{cell.code}/?cycles=2,3")
    expect(page.locator("#eis-nyquist .main-svg").first).to_be_visible(timeout=20_000)
    stitched = page.locator("#stitched")
    expect(stitched).to_contain_text("2 tests")
    expect(stitched.locator("#interface-plot .main-svg").first).to_be_visible()
    assert page.locator("#interface-plot .scatterlayer .trace").count() == 1
    last = test.cycles.order_by("-cycle_index").first()
    assert last is not None
    expect(page.locator("#interface-table tbody tr")).to_have_count(1)
    expect(page.locator("#interface-table tbody tr td").first).to_have_text(str(last.cycle_index))
    expect(page.locator(f"#dqdv-{test.pk} .main-svg").first).to_be_visible()
    assert page.locator(f"#dqdv-{test.pk} .scatterlayer .trace").count() == 4
