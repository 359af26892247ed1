"""The stitched test drawn as one on the cell page and over the API: capacity vs stitched cycle
traceable to each file, rate capability and dQ/dV of stitched cycles. Known answers come from
the unsplit file: the same rows ingested whole on another cell."""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cells import selectors, services
from cells.models import Cell, CyclingTest
from cells.parsers.biologic import BiologicMprParser
from lims.ingestion import services as ingest
from lims.ingestion.parsing import ParseContext

MPR = "cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"


def _ingest(path: Path, project, capture, **params) -> CyclingTest:
    with path.open("rb") as fh, capture(execute=False):
        job, _ = ingest.ingest_submit(stream=fh, filename=path.name, project=project, params=params)
    done = ingest.job_run(job_id=job.pk)
    assert done is not None and done.status == "succeeded", done and done.error
    return CyclingTest.objects.get(pk=done.result["cycling_test"])


def _cell(project, code: str) -> Cell:
    return services.cell_create(
        project=project,
        code=code,
        format="bulk_pellet",
        cell_type="cathode_half",
        ratio_active=Decimal("70"),
        ratio_se=Decimal("30"),
        ratio_carbon=Decimal("0"),
        cathode_mass_mg=Decimal("10"),
    )


@pytest.fixture
def series(fixture_path) -> pl.DataFrame:
    path = fixture_path / MPR
    return BiologicMprParser().parse(path, ParseContext(filename=path.name)).series.collect()


def _parts(tmp_path: Path, series: pl.DataFrame, cuts: list[float], stem: str) -> list[Path]:
    """The series cut at the given times into canonical CSV files (a split export)."""
    bounds = [-np.inf, *cuts, np.inf]
    paths = []
    for n, (lo, hi) in enumerate(pairwise(bounds), start=1):
        path = tmp_path / f"{stem}_part{n}.csv"
        series.filter((pl.col("time_s") > lo) & (pl.col("time_s") <= hi)).write_csv(path)
        paths.append(path)
    return paths


def _cycle_start(series: pl.DataFrame, cycle: int) -> float:
    return float(series.filter(pl.col("cycle") == cycle)["time_s"].min()) - 1e-6


@pytest.fixture
def split(fixture_path, tmp_path, project, cell, series, django_capture_on_commit_callbacks):
    """C-001: the file in two parts cut between file cycles 3 and 4; C-WHOLE: the whole file."""
    capture = django_capture_on_commit_callbacks
    whole = _ingest(fixture_path / MPR, project, capture, cell=_cell(project, "C-WHOLE").code)
    paths = _parts(tmp_path, series, [_cycle_start(series, 4)], "split")
    parts = [_ingest(p, project, capture, cell=cell.code) for p in reversed(paths)][::-1]
    return whole, parts


@pytest.mark.django_db
def test_capacity_vs_stitched_cycle_is_continuous_and_every_point_names_its_file(split, cell):
    whole, (a, b) = split
    views = selectors.stitched_views(cell=cell)
    assert views is not None
    capacity = views["capacity"]
    assert capacity["unit"] == "mAh/g"
    assert [f["test"] for f in capacity["files"]] == [a.pk, b.pk]
    first, second = capacity["files"]
    assert (first["file"], second["file"]) == ("split_part1.csv", "split_part2.csv")
    assert first["raw_sha256"] == a.raw_file.sha256 and second["parser"].startswith("lims_csv")
    assert first["cycle"] + second["cycle"] == list(range(1, 8))  # continuous
    assert second["cycle_in_file"] == [4, 5, 6]  # the file's own numbers, to find the row
    own = list(whole.cycles.order_by("cycle_index"))
    got = first["discharge"] + second["discharge"]
    assert got == pytest.approx([c.discharge_mah_g for c in own], rel=1e-7)
    assert first["split_with"] == [""] * 4 and second["split_with"] == [""] * 3
    assert views["cycles"] == [2, 6]  # by default the second cycle of each file


@pytest.mark.django_db
def test_dqdv_and_rate_of_the_stitched_test_equal_the_unsplit_files(split, cell):
    whole, (a, b) = split
    stitched = selectors.dqdv_of_stitched(cell=cell, cycle_indices=[2, 6])
    own = selectors.dqdv_of_test(test=whole, cycle_indices=[2, 6])
    assert [(c["cycle_index"], c["direction"]) for c in stitched["curves"]] == [
        (n, d) for n in (2, 6) for d in ("charge", "discharge")
    ]
    for got, want in zip(stitched["curves"], own["curves"], strict=True):
        assert got["voltage_v"] == want["voltage_v"]
        assert got["dqdv_mah_per_v"] == pytest.approx(want["dqdv_mah_per_v"], rel=1e-9, abs=1e-12)
        assert got["capacity_mah"] == pytest.approx(want["capacity_mah"], rel=1e-9)
        assert got["tests"] == [a.pk if got["cycle_index"] == 2 else b.pk]
    sources = stitched["provenance"]["tests"]
    assert [(s["test"], s["cycle_offset"]) for s in sources] == [(a.pk, 0), (b.pk, 4)]
    assert sources[1]["raw_sha256"] == b.raw_file.sha256
    assert stitched["method"]["version"] == "2"

    services.cell_update(cell=cell, nominal_capacity_mah=Decimal("1.0"))
    cell.refresh_from_db()
    rate = selectors.rate_capability_of_stitched(cell=cell)
    alone = selectors.rate_capability_of_test(test=whole)
    assert [c["cycle_index"] for c in rate["per_cycle"]] == list(range(1, 8))
    for got, want in zip(rate["per_cycle"], alone["per_cycle"], strict=True):
        for key in ("discharge_current_ma", "charge_current_ma", "discharge_mah"):
            if want[key] is None:  # cycle 1 starts with the discharge: no charge current
                assert got[key] is None, key
            else:
                assert got[key] == pytest.approx(want[key], rel=1e-9), key
    assert len(rate["steps"]) == 1 == len(alone["steps"])  # one current over both files
    step = rate["steps"][0]
    assert (step["first_cycle"], step["last_cycle"]) == (1, 7)
    assert step["files"] == ["split_part1.csv", "split_part2.csv"]
    assert step["current_ma"] == pytest.approx(alone["steps"][0]["current_ma"], rel=1e-9)
    assert step["c_rate"] == pytest.approx(step["current_ma"] / 1.0)  # nominal 1 mAh


@pytest.mark.django_db
def test_a_cycle_split_between_two_files_is_one_dqdv_curve(
    fixture_path, tmp_path, project, cell, series, django_capture_on_commit_callbacks
):
    """Cut inside file cycle 3 (stitched 4): its rows come from both files, the capacity of
    the interval between them is in neither (one logged row of ~7400 in that cycle)."""
    capture = django_capture_on_commit_callbacks
    whole = _ingest(fixture_path / MPR, project, capture, cell=_cell(project, "C-WHOLE").code)
    cut = float(series.filter(pl.col("cycle") == 3)["time_s"].median())
    a, b = (
        _ingest(p, project, capture, cell=cell.code) for p in _parts(tmp_path, series, [cut], "mid")
    )
    stitched = selectors.dqdv_of_stitched(cell=cell, cycle_indices=[4])
    own = selectors.dqdv_of_test(test=whole, cycle_indices=[4])
    assert len(stitched["curves"]) == 2
    for got, want in zip(stitched["curves"], own["curves"], strict=True):
        assert got["capacity_mah"] == pytest.approx(want["capacity_mah"], rel=1e-3)
        peaks = [p["voltage_v"] for p in got["peaks"]]
        assert peaks == pytest.approx([p["voltage_v"] for p in want["peaks"]], abs=0.004)
    assert {tuple(c["tests"]) for c in stitched["curves"]} <= {(a.pk, b.pk), (a.pk,), (b.pk,)}
    assert any(c["tests"] == [a.pk, b.pk] for c in stitched["curves"])  # the split half
    table = selectors.stitched_cycle_table(cell=cell)
    assert table[3].parts == [a.pk, b.pk]
    files = selectors.stitched_capacity(table=table, members=selectors.chain_members(cell=cell))
    assert files["files"][0]["split_with"][3] == "mid_part2.csv"


@pytest.mark.django_db
def test_cell_page_draws_the_stitched_test_in_a_constant_number_of_queries(
    fixture_path,
    tmp_path,
    project,
    cell,
    user,
    client,
    series,
    django_assert_max_num_queries,
    django_capture_on_commit_callbacks,
):
    capture = django_capture_on_commit_callbacks
    three = _cell(project, "C-003")
    for path in _parts(tmp_path, series, [_cycle_start(series, 4)], "two"):
        _ingest(path, project, capture, cell=cell.code)
    cuts = [_cycle_start(series, 3), _cycle_start(series, 5)]
    for path in _parts(tmp_path, series, cuts, "three"):
        _ingest(path, project, capture, cell=three.code)
    client.force_login(user)
    with CaptureQueriesContext(connection) as two_tests:
        page = client.get(f"/cells/{cell.code}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="stitched-capacity"' in html and 'id="stitched-data"' in html
    assert 'id="stitched-dqdv"' in html and 'id="stitched-rate"' in html
    assert "two_part2.csv" in html and "Gaussian, sigma 8 mV" in html
    # one more file in the chain costs no query: the stitched views, the chain table and
    # every test's own section read through a fixed set of queries
    with django_assert_max_num_queries(len(two_tests)):
        page = client.get(f"/cells/{three.code}/?scycles=3,6")
    assert page.status_code == 200
    assert 'value="3,6"' in page.content.decode()
    assert page.context["stitched_views"]["cycles"] == [3, 6]
    files = page.context["stitched_views"]["capacity"]["files"]
    assert [f["cycle"] for f in files] == [[1, 2, 3], [4, 5], [6, 7]]


@pytest.mark.django_db
def test_api_serves_stitched_dqdv_and_rate(split, cell, user_client):
    _, (_, b) = split
    response = user_client.get(f"/api/v1/cells/{cell.code}/stitched/dqdv/?cycles=6")
    assert response.status_code == 200, response.content
    body = response.json()
    assert [c["files"] for c in body["curves"]] == [["split_part2.csv"]] * 2
    assert [c["tests"] for c in body["curves"]] == [[b.pk]] * 2
    assert body["provenance"]["cell"] == cell.code
    bad = user_client.get(f"/api/v1/cells/{cell.code}/stitched/dqdv/?cycles=x")
    assert bad.status_code == 400
    rate = user_client.get(f"/api/v1/cells/{cell.code}/stitched/rate/")
    assert rate.status_code == 200 and len(rate.json()["per_cycle"]) == 7
