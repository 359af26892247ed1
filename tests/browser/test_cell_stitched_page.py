"""The cell page of a cell whose test came in two files (a split export, both through the
worker) draws the stitched test as one: capacity vs stitched cycle with a trace per file whose
points lead to their test, rate capability and dQ/dV of stitched cycles."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import FIXTURES, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MPR = FIXTURES / "cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"


def _submit(path: Path, project, **params) -> int:
    from lims.ingestion import services as ingest
    from lims.models import IngestionJob

    with path.open("rb") as fh:
        job, _ = ingest.ingest_submit(stream=fh, filename=path.name, project=project, params=params)
    done = wait_for(
        lambda: IngestionJob.objects.filter(pk=job.pk, status="succeeded").first(), timeout=90
    )
    assert done is not None, IngestionJob.objects.get(pk=job.pk).error
    return int(done.result["cycling_test"])


def test_cell_page_draws_the_stitched_capacity_and_dqdv(
    celery_worker_process, signed_in, cell, project, tmp_path
):
    from playwright.sync_api import expect

    from cells.parsers.biologic import BiologicMprParser
    from lims.ingestion.parsing import ParseContext

    series = BiologicMprParser().parse(MPR, ParseContext(filename=MPR.name)).series.collect()
    tests = []
    for name, part in (
        ("run_part1.csv", series.filter(pl.col("cycle") <= 3)),
        ("run_part2.csv", series.filter(pl.col("cycle") >= 4)),
    ):
        path = tmp_path / name
        part.write_csv(path)
        tests.append(_submit(path, project, cell=cell.code))

    page = signed_in(f"/cells/{cell.code}/")
    stitched = page.locator("#stitched")
    expect(stitched).to_contain_text("2 tests")
    plot = page.locator("#stitched-capacity")
    expect(plot.locator(".main-svg").first).to_be_visible(timeout=20_000)
    # per file: discharge, charge and CE; the legend names both files
    assert plot.locator(".scatterlayer .trace").count() == 6
    expect(plot.locator(".legend")).to_contain_text("run_part1.csv discharge")
    expect(plot.locator(".legend")).to_contain_text("run_part2.csv discharge")
    # the second file's points sit at stitched cycles 5-7, and a click on one leads to its test
    xs = page.evaluate(
        "() => document.getElementById('stitched-capacity').data.map((t) => [t.name, t.x])"
    )
    assert ["run_part2.csv discharge", [5, 6, 7]] in xs
    point = plot.locator(".scatterlayer .trace").nth(3).locator(".points path").last
    point.click(force=True)
    expect(page).to_have_url(f"{page.url.split('#')[0]}#test-{tests[1]}")
    # rate capability and dQ/dV of the stitched test (by default cycles 2 and 6, one per file)
    expect(page.locator("#stitched-rate")).to_contain_text("run_part1.csv, run_part2.csv")
    dqdv = page.locator("#stitched-dqdv")
    expect(dqdv.locator(".main-svg").first).to_be_visible()
    assert dqdv.locator(".scatterlayer .trace").count() == 4
    expect(dqdv).to_contain_text("Gaussian smoothing, sigma 8 mV")
    expect(page.locator("#stitched-dqdv-section table.dqdv-peaks")).to_contain_text("run_part2.csv")
    shots = Path(os.environ.get("LIMS_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    page.locator("#stitched").screenshot(path=str(shots / "cell_stitched.png"))
    page.locator(f"#dqdv-section-{tests[1]}").screenshot(path=str(shots / "cell_dqdv.png"))
