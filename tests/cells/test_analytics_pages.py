"""Analytics on ingested tests: dQ/dV of a real BioLogic file, the cell page and the API."""

from __future__ import annotations

import io
from decimal import Decimal

import polars as pl
import pytest

from cells import selectors, services
from cells.models import CyclingTest
from lims.ingestion import services as ingest
from tests.cells.analytics_data import symmetric_series

MPR = "cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"


def _ingest(stream, name, project, capture, **params) -> CyclingTest:
    with capture(execute=False):
        job, _ = ingest.ingest_submit(stream=stream, filename=name, project=project, params=params)
    done = ingest.job_run(job_id=job.pk)
    assert done is not None and done.status == "succeeded", done and done.error
    return CyclingTest.objects.get(pk=done.result["cycling_test"])


@pytest.fixture
def mpr_test(fixture_path, project, cell, django_capture_on_commit_callbacks) -> CyclingTest:
    with (fixture_path / MPR).open("rb") as fh:
        return _ingest(
            fh, MPR.rsplit("/", 1)[-1], project, django_capture_on_commit_callbacks, cell=cell.code
        )


@pytest.mark.django_db
def test_dqdv_of_a_real_file_integrates_to_the_cycle_table(mpr_test):
    result = selectors.dqdv_of_test(test=mpr_test, cycle_indices=[2, 3, 7])
    records = {c.cycle_index: c for c in mpr_test.cycles.all()}
    curves = result["curves"]
    assert [(c["cycle_index"], c["direction"]) for c in curves] == [
        (n, d) for n in (2, 3, 7) for d in ("charge", "discharge")
    ]
    for curve in curves:
        record = records[curve["cycle_index"]]
        expected = record.charge_mah if curve["direction"] == "charge" else record.discharge_mah
        step = curve["voltage_v"][1] - curve["voltage_v"][0]
        integral = abs(sum(curve["dqdv_mah_per_v"]) * step)
        assert integral == pytest.approx(expected, rel=0.02)
        assert curve["peaks"], "a GCPL half cycle of a real electrode has dQ/dV peaks"
        sign = 1 if curve["direction"] == "charge" else -1
        assert all(sign * p["dqdv_mah_per_v"] > 0 for p in curve["peaks"])
        assert all(2.0 <= p["voltage_v"] <= 3.8 for p in curve["peaks"])
    assert result["provenance"]["raw_sha256"] == mpr_test.raw_file.sha256
    assert "Gaussian, sigma 8 mV" in result["method"]["smoothing"]
    assert result["method"]["version"] == "2"


@pytest.mark.django_db
def test_rate_capability_uses_the_cells_nominal_capacity(mpr_test, cell):
    before = selectors.rate_capability_of_test(test=mpr_test)
    assert all(s["c_rate"] is None for s in before["steps"])
    services.cell_update(cell=cell, nominal_capacity_mah=Decimal("1.0"))
    mpr_test.refresh_from_db()
    result = selectors.rate_capability_of_test(test=mpr_test)
    # the file cycles at one current (0.089 mA both ways): one rate step of all cycles
    assert len(result["steps"]) == 1
    step = result["steps"][0]
    assert (step["first_cycle"], step["last_cycle"]) == (1, 7)
    assert step["current_ma"] == pytest.approx(0.089, rel=0.02)
    assert step["c_rate"] == pytest.approx(step["current_ma"] / 1.0)
    dis = [c.discharge_mah for c in mpr_test.cycles.order_by("cycle_index")]
    assert step["capacity_mean_mah"] == pytest.approx(sum(dis) / len(dis))
    assert step["capacity_first_mah"] == dis[0] and step["capacity_last_mah"] == dis[-1]
    assert result["provenance"]["nominal_capacity_mah"] == 1.0


@pytest.mark.django_db
def test_cell_page_and_api_show_dqdv_and_rate(mpr_test, cell, user, client, user_client):
    client.force_login(user)
    page = client.get(f"/cells/{cell.code}/?cycles=2,3")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'id="dqdv-{mpr_test.pk}"' in html and f'id="rate-section-{mpr_test.pk}"' in html
    assert "Gaussian, sigma 8 mV" in html and 'id="analytics-data"' in html
    api = user_client.get(f"/api/v1/cycling-tests/{mpr_test.pk}/dqdv/?cycles=2")
    assert api.status_code == 200, api.content
    assert [c["direction"] for c in api.json()["curves"]] == ["charge", "discharge"]
    assert user_client.get(f"/api/v1/cycling-tests/{mpr_test.pk}/dqdv/?cycles=x").status_code == 400
    rate = user_client.get(f"/api/v1/cycling-tests/{mpr_test.pk}/rate/")
    assert rate.status_code == 200 and len(rate.json()["per_cycle"]) == 7


@pytest.mark.django_db
def test_symmetric_cell_page_shows_steps_and_ccd(
    project, user, client, user_client, django_capture_on_commit_callbacks
):
    cell = services.cell_create(
        project=project,
        code="SYM-1",
        format="bulk_pellet",
        cell_type="li_symmetric",
        anode_kind="li_foil",
        area_override_cm2=Decimal("0.785"),
    )
    frame = symmetric_series(
        [0.1, 0.2, 0.4, 0.8],
        area_cm2=0.785,
        asr_ohm_cm2=100.0,
        half_s=1800.0,
        rest_s=600.0,
        short_step=4,
        short_after_s=2700.0,
    )
    frame = frame.with_columns(pl.lit(1).alias("cycle"))
    buffer = io.BytesIO()
    frame.select("time_s", "cycle", "current_a", "voltage_v").write_csv(buffer)
    buffer.seek(0)
    test = _ingest(buffer, "sym.csv", project, django_capture_on_commit_callbacks, cell="SYM-1")
    result = selectors.symmetric_of_test(test=test)
    assert [s["current_density_ma_cm2"] for s in result["steps"]] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8]
    )
    assert result["failure"]["ccd_ma_cm2"] == pytest.approx(0.8)
    assert result["failure"]["time_s"] == pytest.approx(3 * 4200 + 2700)
    assert result["failure"]["areal_capacity_mah_cm2"] == pytest.approx(0.7 + 0.8 * 0.75)
    client.force_login(user)
    html = client.get(f"/cells/{cell.code}/").content.decode()
    assert f'id="sym-vt-{test.pk}"' in html and f'id="sym-eta-{test.pk}"' in html
    assert "critical current density 0.800 mA/cm²" in html
    assert f'id="dqdv-{test.pk}"' not in html  # a symmetric cell has no dQ/dV
    api = user_client.get(f"/api/v1/cycling-tests/{test.pk}/symmetric/")
    assert api.status_code == 200 and api.json()["failure"]["kind"] == "short"
