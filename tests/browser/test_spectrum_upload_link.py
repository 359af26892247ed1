"""Impedance in the browser, through the real worker: upload a BioLogic spectrum with a sample
and a temperature, read its page with the fit; upload a spectrum with no owner, link it to a
cell by hand and watch the refit arrive. The Bode legend must not cover the phase axis."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.conftest import FIXTURES

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MPT = FIXTURES / "eis/impedance_exampleDataBioLogic.mpt"
CSV = FIXTURES / "eis/impedance_exampleData.csv"


def _upload(page, url: str, path, **fields: str) -> None:
    page.goto(f"{url}/upload/")
    page.set_input_files("#id_file", str(path))
    if "kind" in fields:
        page.select_option("#id_kind", fields.pop("kind"))
    for name, value in fields.items():
        page.fill(f"#id_{name}", value)
    page.click("main button[type=submit]")


def _overlap(a: dict, b: dict) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def _bode_legend_clear_of_the_phase_axis(page) -> None:
    bode = page.locator("#eis-bode")
    legend = bode.locator("g.legend").bounding_box()
    assert legend is not None
    phase = [bode.locator("g.g-y2title").bounding_box()]
    phase += [t.bounding_box() for t in bode.locator("g.y2tick text").all()]
    assert len(phase) > 2
    assert not any(box and _overlap(legend, box) for box in phase), (legend, phase)


def test_upload_a_spectrum_with_sample_and_temperature_then_link_another_by_hand(
    celery_worker_process, live_server, signed_in, project, cell, tmp_path
):
    from playwright.sync_api import expect

    from cells.models import EisFit, EisSpectrum
    from samples import services as samples

    samples.sample_create(
        project=project,
        code="LLZO-P7",
        kind="powder",
        quantity="1",
        thickness_um=Decimal("1000"),
        area_cm2=Decimal("0.785"),
    )
    page = signed_in("/upload/")
    _upload(page, live_server.url, MPT, kind="eis", sample="LLZO-P7", temperature_c="55")
    expect(page.locator("h1")).to_contain_text("Job #")
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=90_000)
    page.click("#spectrum-link")

    expect(page.locator("h1")).to_contain_text("impedance_exampleDataBioLogic.mpt")
    expect(page.locator("#spectrum-owner")).to_have_text("sample LLZO-P7")
    expect(page.locator("dl.facts").first).to_contain_text("55.0 °C (upload field temperature_c)")
    expect(page.locator("#fit-list tbody tr")).to_have_count(1)
    expect(page.locator("#fit-list")).to_contain_text("blocking_pellet")
    expect(page.locator("#fit-table tbody tr").first).to_be_visible()
    expect(page.locator("#fits + p")).to_contain_text("R0-p(R1,CPE1)-CPE2")
    expect(page.locator("main")).to_contain_text("S/cm")  # conductivity from the pellet
    expect(page.locator("#eis-bode .main-svg").first).to_be_visible(timeout=20_000)
    # points, HF intercept and the fitted curve on the Nyquist plot
    assert page.locator("#eis-nyquist .scatterlayer .trace").count() == 3
    page.screenshot(path=str(tmp_path / "uploaded.png"), full_page=True)
    _bode_legend_clear_of_the_phase_axis(page)

    _upload(page, live_server.url, CSV)
    expect(page.locator("#job-status")).to_have_text("needs_linking", timeout=90_000)
    page.click("#spectrum-link")
    expect(page.locator("#spectrum-owner")).to_have_text("not linked to a cell or sample yet")
    expect(page.locator("#fit-list tbody tr")).to_have_count(1)
    spectrum = EisSpectrum.objects.get(raw_file__original_name="impedance_exampleData.csv")
    ingested = spectrum.fits.get()

    page.select_option("#id_owner", "cell:C-001")
    page.click("#link-form button[type=submit]")
    expect(page.locator(".msg")).to_contain_text("linked to cell C-001; refit")
    # the page polls the fits and reloads when the worker stored the refit
    expect(page.locator("#refit-queued")).to_have_count(0, timeout=60_000)
    expect(page.locator("#fit-list tbody tr")).to_have_count(2)
    refit = spectrum.fits.exclude(pk=ingested.pk).get()
    assert refit.status == EisFit.Status.OK, refit.error
    assert refit.reason == "linked" and refit.circuit_name == "cell_interfaces"
    expect(page.locator("#spectrum-owner")).to_have_text("cell C-001")
    expect(page.locator("#fits + p")).to_contain_text(f"Shown: fit {refit.pk}")
    expect(page.locator("#fits + p")).to_contain_text("after linking")
    expect(page.locator("#fit-list tbody tr").first).to_contain_text("after linking")
    expect(page.locator("main")).to_contain_text("linked to cell C-001 (was nothing): refit")
    expect(page.locator("#eis-bode .main-svg").first).to_be_visible()
    page.screenshot(path=str(tmp_path / "linked.png"), full_page=True)
    _bode_legend_clear_of_the_phase_axis(page)

    page.goto(f"{live_server.url}/cells/C-001/#impedance")
    expect(page.locator("#impedance")).to_contain_text("impedance_exampleData.csv")
    expect(page.locator("#eis-bode .main-svg").first).to_be_visible(timeout=20_000)
    page.locator("#impedance").screenshot(path=str(tmp_path / "cell_impedance.png"))
    _bode_legend_clear_of_the_phase_axis(page)
