"""The explorer: one row per cell with process variables found through the lineage and the
metrics of its stitched record, each with its source; filters, groups, plots and exports read
the same rows; the query count does not grow with the number of cells."""

from __future__ import annotations

import io
from decimal import Decimal
from statistics import median

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cells.explorer import selectors
from cells.explorer.query import ExplorerQuery
from lims import demo


@pytest.fixture
def chain(project, user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        demo.process_chain(project=project, user=user)


def _rows(user) -> dict[str, tuple[dict, dict]]:
    table = selectors.explorer_table(user=user)
    return {row["cell"]: (row, src) for row, src in zip(table.rows, table.sources, strict=True)}


@pytest.mark.django_db
def test_process_variables_come_through_the_lineage(chain, user):
    rows = _rows(user)
    lno, src = rows[demo.DEMO_CELL]
    assert lno["recipe"] == "LiNbOx 1:4 v1"
    assert lno["subcycle_ratio"] == "1:4" and lno["subcycle_ratio_value"] == 4.0
    assert lno["supercycles"] == 5 and lno["total_ald_cycles"] == 25
    assert lno["expected_thickness_nm"] == pytest.approx(1.2)
    assert lno["anneal_peak_c"] == 400.0 and lno["anneals"] == "ANN-400-O2-01"
    assert lno["runs"] == "RUN-LNO-01"
    assert src["recipe"] == "RUN-LNO-01" and src["anneal_peak_c"] == "ANN-400-O2-01"
    al, _ = rows["DEMO-AL-002"]
    assert al["recipe"] == "Al2O3 thermal v1" and al["subcycle_ratio_value"] is None
    assert al["anneal_peak_c"] is None and al["anneals"] is None


@pytest.mark.django_db
def test_the_query_count_does_not_grow_with_cells(chain, user, project):
    from cells import services as cells
    from cells.models import Cell

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            table = selectors.explorer_table(user=user)
        return len(ctx.captured_queries), len(table)

    before, n = count()
    template = Cell.objects.get(code=demo.DEMO_CELL)
    for i in range(6):
        cells.cell_create(
            project=project,
            code=f"COPY-{i}",
            format=template.format,
            cell_type=template.cell_type,
            cathode_sample=template.cathode_sample,
            cathode_mass_mg=Decimal("10"),
        )
    after, m = count()
    assert m == n + 6
    assert after == before


@pytest.mark.django_db
def test_filters_groups_and_plots_read_the_same_rows(chain, user):
    query = ExplorerQuery.parse(
        {"x": "total_ald_cycles", "y": "expected_thickness_nm", "color": "coating"},
        {"f": ["supercycles:ge:5", "nonsense"]},
    )
    assert query.errors == ("filter 'nonsense' is not column:op:value",)
    table = selectors.explorer_filter(selectors.explorer_table(user=user), query.filters)
    assert {r["cell"] for r in table.rows} == {demo.DEMO_CELL, "DEMO-AL-002"}
    narrowed = selectors.explorer_filter(table, [selectors.Filter.parse("recipe:has:linbox")])
    assert [r["cell"] for r in narrowed.rows] == [demo.DEMO_CELL]
    traces = selectors.explorer_scatter(table, x=query.x, y=query.y, color=query.color)
    points = {c: (x, y) for t in traces for c, x, y in zip(t["cells"], t["x"], t["y"], strict=True)}
    assert points[demo.DEMO_CELL] == (25, pytest.approx(1.2))
    assert all("x: RUN-" in s for t in traces for s in t["sources"])
    boxes = selectors.explorer_box(table, y="total_ald_cycles", by="coating")
    assert sorted(len(b["y"]) for b in boxes) == [1, 1]
    # the query string round-trips, so a saved view reopens exactly this
    again = ExplorerQuery.parse(
        dict(p.split("=", 1) for p in query.querystring().split("&") if not p.startswith("f=")),
        {"f": [str(f) for f in query.filters]},
    )
    assert again == query


@pytest.mark.django_db
def test_page_exports_and_saved_view(chain, user, client):
    from openpyxl import load_workbook

    from cells.models import ExplorerView

    client.force_login(user)
    page = client.get("/cells/explorer/?x=total_ald_cycles&y=expected_thickness_nm&color=recipe")
    assert page.status_code == 200
    body = page.content.decode()
    assert demo.DEMO_CELL in body and "LiNbOx 1:4 v1" in body
    csv = client.get("/cells/explorer/export.csv?f=recipe:has:al2o3").getvalue().decode()
    lines = csv.strip().splitlines()
    assert len(lines) == 2 and "DEMO-AL-002" in lines[1]
    xlsx = client.get("/cells/explorer/export.xlsx")
    book = load_workbook(io.BytesIO(xlsx.content))
    assert book.sheetnames == ["cells", "sources", "columns"]
    assert book["cells"].max_row == 3
    saved = client.post(
        "/cells/explorer/views/",
        {
            "name": "LNO thickness",
            "x": "total_ald_cycles",
            "y": "expected_thickness_nm",
            "color": "recipe",
            "plot": "scatter",
            "f": ["supercycles:ge:5"],
        },
    )
    view = ExplorerView.objects.get(name="LNO thickness")
    assert saved["Location"] == f"/cells/explorer/views/{view.pk}/"
    opened = client.get(saved["Location"])
    assert opened.status_code == 302 and "f=supercycles%3Age%3A5" in opened["Location"]
    reopened = client.get(opened["Location"]).content.decode()
    assert "LNO thickness" in reopened and "supercycles:ge:5" in reopened


@pytest.mark.django_db
def test_the_demo_matrix_shows_a_trend(chain, project, user, django_capture_on_commit_callbacks):
    """The demo's designed experiment: 18 cells through the real pipeline; retention at cycle
    100 is best at the 1:4 ratio and at the 400 degC anneal, as its fade model says."""
    with django_capture_on_commit_callbacks(execute=False):
        assert demo.explorer_matrix(project=project, user=user) is True
        assert demo.explorer_matrix(project=project, user=user) is False
    table = selectors.explorer_filter(
        selectors.explorer_table(user=user), [selectors.Filter.parse("cell:has:EXP-")]
    )
    assert len(table) == 18
    by = {(r["subcycle_ratio_value"], r["supercycles"], r["anneal_peak_c"]): r for r in table.rows}
    # each ratio was run once with each Nb(OEt)5 bottle, so the bottle cancels in the medians
    boxes = selectors.explorer_box(table, y="retention_c100_pct", by="subcycle_ratio_value")
    medians = {b["name"]: median(b["y"]) for b in boxes}
    assert max(medians, key=medians.get) == "4", medians
    # and within one run (one ratio, one bottle), the 400 degC anneal keeps the most
    for ratio in demo.MATRIX_RATIOS:
        for n in demo.MATRIX_SUPERCYCLES:
            kept = {
                t: by[(float(ratio), n, float(t))]["retention_c100_pct"]
                for t in demo.MATRIX_ANNEALS
            }
            assert max(kept, key=kept.get) == 400, (ratio, n, kept)
    row = by[(4.0, 20, 400.0)]
    assert row["cycles"] == 100 and row["first_discharge_mah_g"] == pytest.approx(
        195 - 3.5 * 4.8, rel=0.02
    )
    assert (
        "EXP-R4N20T400_simulated.csv"
        in table.sources[table.rows.index(row)]["first_discharge_mah_g"]
    )


@pytest.mark.django_db
def test_a_bottle_page_compares_its_cells_with_the_project(
    chain, project, user, client, django_capture_on_commit_callbacks
):
    """The demo swaps the Nb(OEt)5 bottle after three runs and its fade model penalises the
    second bottle: that bottle's cells sit below the project median in retention."""
    from depositions.models import PrecursorLot

    with django_capture_on_commit_callbacks(execute=False):
        demo.explorer_matrix(project=project, user=user)
    second = PrecursorLot.objects.get(bottle_label=demo.NB_BOTTLES[1])
    report = selectors.bottle_cells(user=user, lot=second)
    assert report.runs == ["RUN-LNO-R1N20", "RUN-LNO-R4N5", "RUN-LNO-R8N20"]
    assert len(report.table) == 9 and report.project_cells == 20
    retention = report.medians["retention_c100_pct"]
    values = sorted(r["retention_c100_pct"] for r in report.table.rows)
    assert retention["bottle"] == values[4]  # the median of nine
    assert retention["bottle"] < retention["project"], retention
    assert all("bottle NB-B2" in r["precursor_lots"] for r in report.table.rows)
    first = selectors.bottle_cells(user=user, lot=PrecursorLot.objects.get(bottle_label="NB-B1"))
    assert {r["cell"] for r in first.table.rows}.isdisjoint({r["cell"] for r in report.table.rows})
    client.force_login(user)
    page = client.get(f"/cells/explorer/bottles/{second.pk}/").content.decode()
    assert "EXP-R4N5T400" in page and "Median, project" in page
    runs_page = client.get(f"/depositions/precursor-lots/{second.pk}/runs/").content.decode()
    assert f"/cells/explorer/bottles/{second.pk}/" in runs_page


@pytest.mark.django_db
def test_loading_press_and_air_exposure_through_the_lineage(chain, project, user, client):
    """Expected loading = BET x thickness x density (the witness's measured thickness), beside
    an ICP-measured one; a recorded press gives the fabrication pressure; air exposure sums
    along the lineage; the cell page shows them and draws the cell in its lineage."""
    from datetime import timedelta

    from django.utils import timezone

    from cells import services as cells
    from depositions import services as dep
    from depositions.models import Recipe
    from samples import services as smp
    from samples.choices import SampleKind
    from samples.models import ExposureEvent, Sample

    Recipe.objects.filter(name="LiNbOx 1:4").update(film_density_g_cm3=Decimal("4.6"))
    annealed = Sample.objects.get(code="NMC811-A2-LNO-A400")
    dep.composition_measurement_add(
        sample=annealed,
        method="icp",
        fractions={"Nb": 0.5, "Li": 0.5},
        coating_wt_pct=Decimal("0.3"),
    )
    now = timezone.now()
    ExposureEvent.objects.create(
        sample=Sample.objects.get(code="NMC811-A2"),
        atmosphere="air",
        started_at=now - timedelta(minutes=30),
        ended_at=now,
    )
    op = smp.sample_press(
        project=project,
        inputs=[(Sample.objects.get(code="CATH-LNO-01"), Decimal("0.012"))],
        output=smp.OutputSpec("PEL-LNO-01", SampleKind.PELLET, Decimal("0.012")),
        pressure_mpa=Decimal("440"),
        die_diameter_mm=Decimal("10"),
        label="PRESS-01",
    )
    assert op.parameters == {"pressure_mpa": 440.0, "die_diameter_mm": 10.0}
    pellet = Sample.objects.get(code="PEL-LNO-01")
    assert pellet.state == "pressed" and pellet.diameter_mm == Decimal("10")
    cells.cell_create(
        project=project,
        code="PRESSED-1",
        format="bulk_pellet",
        cell_type="cathode_half",
        cathode_sample=pellet,
        cathode_mass_mg=Decimal("12"),
        fabrication_pressure_mpa=Decimal("375"),  # typed; the recorded press wins
    )
    rows = _rows(user)
    lno, src = rows[demo.DEMO_CELL]
    expected = 0.45 * 1.17 * 4.6e-3
    assert lno["expected_loading_wt_pct"] == pytest.approx(100 * expected / (1 + expected))
    assert "measured thickness" in src["expected_loading_wt_pct"]
    assert lno["measured_loading_wt_pct"] == pytest.approx(0.3)
    assert src["measured_loading_wt_pct"] == "icp on NMC811-A2-LNO-A400"
    assert lno["air_exposure_min"] == pytest.approx(30.0)
    assert lno["fabrication_pressure_mpa"] == 375.0  # no press in its lineage: the typed value
    pressed, psrc = rows["PRESSED-1"]
    assert (
        pressed["fabrication_pressure_mpa"] == 440.0
        and psrc["fabrication_pressure_mpa"] == "press PRESS-01"
    )
    assert pressed["air_exposure_min"] == pytest.approx(30.0) and pressed["runs"] == "RUN-LNO-01"

    client.force_login(user)
    page = client.get("/cells/PRESSED-1/").content.decode()
    assert 'id="process"' in page and "press PRESS-01" in page and "RUN-LNO-01" in page
    from cells.models import Cell
    from cells.selectors import cell_lineage_figure

    figure = cell_lineage_figure(cell=Cell.objects.get(code="PRESSED-1"))
    assert [c["code"] for c in figure["cells"]] == ["PRESSED-1"]
    assert any(
        e["to"] == (figure["cells"][0]["x"], figure["cells"][0]["y"]) for e in figure["edges"]
    )
