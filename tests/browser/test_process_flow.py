"""Recipe with two sub-cycles and a supercycle, a run using it and an anneal, through the forms."""

from __future__ import annotations

from decimal import Decimal

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def lab(project, user):
    from depositions import services as dep
    from lims.models import Instrument
    from samples import services as smp

    instrument = Instrument.objects.create(
        name="Fluidized bed ALD", kind=Instrument.Kind.ALD_TOOL, project=project
    )
    dep.tool_create(instrument=instrument, reactor_type="fluidized_bed", chambers=1)
    nmc = smp.material_create(name="NMC811", material_class="cathode_active")
    si = smp.material_create(name="Si wafer", material_class="substrate")
    smp.sample_create(
        project=project,
        code="NMC-P1",
        kind="powder",
        quantity=Decimal("10"),
        material=nmc,
        bet_m2_g=Decimal("0.45"),
    )
    smp.sample_create(
        project=project,
        code="SI-W1",
        kind="wafer",
        quantity=Decimal("1"),
        unit="count",
        material=si,
    )


def _fill_rows(page, prefix: str, rows: list[dict[str, str]]) -> None:
    for i, row in enumerate(rows):
        for name, value in row.items():
            selector = f"[name='{prefix}-{i}-{name}']"
            if page.locator(selector).evaluate("e => e.tagName") == "SELECT":
                page.select_option(selector, value)
            else:
                page.fill(selector, value)


def test_recipe_run_and_anneal_through_the_forms(live_server, signed_in, lab, tmp_path):
    from playwright.sync_api import expect

    page = signed_in("/depositions/recipes/new/")

    # recipe: LiNbOx = (Li2O x1 + Nb2O5 x4) x5
    page.fill("#id_name", "LiNbOx 1:4")
    page.fill("#id_deposition_temperature_c", "235")
    page.fill("#id_supercycle_repeats", "5")
    _fill_rows(
        page,
        "sc",
        [
            {"name": "Li2O", "gpc_angstrom": "0.5"},
            {"name": "Nb2O5", "gpc_angstrom": "0.4"},
        ],
    )
    steps = []
    for sc, src in (("Li2O", "LiOtBu"), ("Nb2O5", "Nb(OEt)5")):
        steps += [
            {"subcycle": sc, "kind": "pulse", "source_label": src, "duration_s": "2"},
            {"subcycle": sc, "kind": "purge", "duration_s": "10"},
            {"subcycle": sc, "kind": "pulse", "source_label": "H2O", "duration_s": "0.1"},
            {"subcycle": sc, "kind": "purge", "duration_s": "10"},
        ]
    _fill_rows(page, "st", steps)
    _fill_rows(
        page, "bl", [{"subcycle": "Li2O", "repeat": "1"}, {"subcycle": "Nb2O5", "repeat": "4"}]
    )
    page.click("#recipe-form button[type=submit]")
    expect(page.locator("h1")).to_contain_text("Recipe LiNbOx 1:4 v1")
    pulses = page.locator("#pulses")
    expect(pulses).to_contain_text("LiOtBu: 5")
    expect(pulses).to_contain_text("Nb(OEt)5: 20")
    expect(pulses).to_contain_text("H2O: 25")
    # 5 x (1 x 0.05 nm + 4 x 0.04 nm) = 1.05 nm
    expect(page.locator("#thickness")).to_contain_text("1.05 nm")
    expect(page.locator("#timeline .main-svg").first).to_be_visible()

    # run using it, with a powder and a witness wafer
    page.goto(f"{live_server.url}/depositions/runs/new/")
    page.fill("#id_code", "RUN-LNO-1")
    page.select_option("#id_tool", index=1)
    page.select_option("#id_recipe", label="LiNbOx 1:4 v1")
    page.fill("#id_setpoint_temperature_c", "235")
    _fill_rows(
        page,
        "ld",
        [
            {"sample": "NMC-P1", "role": "product", "mass_g": "4", "bet_m2_g": "0.45"},
            {"sample": "SI-W1", "role": "witness", "area_cm2": "4"},
        ],
    )
    page.click("#run-form button[type=submit]")
    expect(page.locator("h1")).to_contain_text("Run RUN-LNO-1")
    expect(page.locator("#loads")).to_contain_text("NMC-P1")
    page.fill("#id_actual_cycles", "5")
    page.click("#complete-form button[type=submit]")
    expect(page.locator("#run-status")).to_have_text("Completed")
    coated = page.locator("#loads tbody tr").first.locator("td").last
    coated_code = coated.inner_text().strip()
    assert coated_code and coated_code != "-"

    # anneal the coated powder: ramp to 400 degC, dwell 2 h, in O2
    page.goto(f"{live_server.url}/depositions/anneals/new/")
    page.fill("#id_code", "ANN-400-1")
    page.select_option("#id_atmosphere", "o2")
    _fill_rows(
        page,
        "sg",
        [
            {"kind": "ramp", "target_c": "400", "rate_k_per_min": "5"},
            {"kind": "dwell", "target_c": "400", "duration_min": "120"},
        ],
    )
    page.click("#anneal-form button[type=submit]")
    expect(page.locator("h1")).to_contain_text("Anneal ANN-400-1")
    expect(page.locator("#profile .main-svg").first).to_be_visible()
    _fill_rows(page, "in", [{"sample": coated_code, "output_code": "NMC-P1-LNO-A400"}])
    page.click("#complete-form button[type=submit]")
    expect(page.locator("#anneal-status")).to_have_text("Completed")
    expect(page.locator("#outputs")).to_contain_text("NMC-P1-LNO-A400")

    # the annealed sample's lineage goes back to the powder through the run
    page.goto(f"{live_server.url}/samples/NMC-P1-LNO-A400/")
    operations = page.locator("#operations")
    expect(operations).to_contain_text("deposition")
    expect(operations).to_contain_text("anneal")
    expect(page.locator("#lineage .main-svg").first).to_be_visible()
    page.screenshot(path=str(tmp_path / "lineage.png"), full_page=True)
