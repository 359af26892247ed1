"""The demo chain is realistic and answers the questions users ask of it."""

from __future__ import annotations

import pytest

from lims import demo


@pytest.fixture
def chain(project, user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        assert demo.process_chain(project=project, user=user) is True
        assert demo.process_chain(project=project, user=user) is False  # idempotent


@pytest.mark.django_db
def test_cell_lineage_reaches_the_lot_through_run_and_anneal(chain, user_client):
    from cells.models import Cell
    from samples.selectors import lineage_of_many

    cell = Cell.objects.get(code=demo.DEMO_CELL)
    graph = lineage_of_many(samples=[cell.cathode_sample], root=cell.cathode_sample.code)
    kinds = {op.kind for op in graph.operations.values()}
    assert {"split", "deposition", "anneal", "mix", "assembly"} <= kinds
    assert "NMC811-A" in {s.code for s in graph.samples.values()}
    assert float(cell.active_mass_mg) == pytest.approx(8.4)  # 12 mg x 0.7 from the mix
    page = user_client.get(f"/api/v1/samples/{cell.cathode_sample.code}/lineage/").json()
    assert any(
        op["kind"] == "deposition" and op["label"] == "RUN-LNO-01" for op in page["operations"]
    )


@pytest.mark.django_db
def test_linbox_recipe_expands_per_structure(chain, user_client):
    from depositions.models import Recipe
    from depositions.selectors import recipe_summary

    summary = recipe_summary(recipe=Recipe.objects.get(name="LiNbOx 1:4"))
    assert summary["pulses_per_source"] == {"LiOtBu": 5, "Nb(OEt)5": 20, "H2O": 25}
    # 5 x (1 x 0.6 A + 4 x 0.45 A) = 12 A
    assert summary["expected_thickness_nm"] == pytest.approx(1.2)


@pytest.mark.django_db
def test_cells_from_the_lot_grouped_by_recipe_and_anneal(chain, user_client, client, user):
    from samples.models import MaterialLot

    lot = MaterialLot.objects.get(lot_number="NMC-2026-031")
    groups = user_client.get(f"/api/v1/material-lots/{lot.pk}/cells/").json()
    by_key = {(g["recipe"], g["anneal"]): [c["code"] for c in g["cells"]] for g in groups}
    assert by_key == {
        ("Al2O3 thermal v1", "not annealed"): ["DEMO-AL-002"],
        ("LiNbOx 1:4 v1", "ANN-400-O2-01"): ["DEMO-NMC811-001"],
    }
    client.force_login(user)
    page = client.get(f"/cells/from-lot/{lot.pk}/").content.decode()
    assert "LiNbOx 1:4 v1 · ANN-400-O2-01" in page and "DEMO-AL-002" in page


@pytest.mark.django_db
def test_pages_of_the_process_side_render(chain, client, user):
    from depositions.models import Recipe

    client.force_login(user)
    recipe = Recipe.objects.get(name="LiNbOx 1:4")
    for url in (
        "/depositions/recipes/",
        f"/depositions/recipes/{recipe.pk}/",
        "/depositions/runs/",
        "/depositions/runs/RUN-LNO-01/",
        "/depositions/anneals/",
        "/depositions/anneals/ANN-400-O2-01/",
        "/samples/",
        "/samples/NMC811-A/",
        f"/cells/{demo.DEMO_CELL}/",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
    run_page = client.get("/depositions/runs/RUN-LNO-01/").content.decode()
    assert "ellipsometry" in run_page  # measured GPC from the witness wafer


@pytest.mark.django_db
def test_thickness_form_feeds_measured_gpc(chain, client, user):
    from depositions.models import ThicknessMeasurement

    client.force_login(user)
    wafer = "SI-W01.RUN-AL-01"
    response = client.post(
        "/depositions/runs/RUN-AL-01/thickness/",
        {"sample": wafer, "method": "xrr", "value_nm": "1.15", "uncertainty_nm": "0.05"},
    )
    assert response.status_code == 302
    assert ThicknessMeasurement.objects.filter(sample__code=wafer, method="xrr").exists()
    page = client.get("/depositions/runs/RUN-AL-01/").content.decode()
    assert "xrr" in page and "1.150" in page  # 1.15 nm / 10 cycles = 1.150 A/cycle
    for url in (
        "/depositions/tools/",
        "/depositions/precursor-lots/",
        "/samples/lots/",
        "/samples/materials/",
        "/samples/mix/",
    ):
        assert client.get(url).status_code == 200, url


@pytest.mark.django_db
def test_cell_and_run_lists_export_csv(chain, client, user):
    client.force_login(user)
    cells = b"".join(client.get("/cells/?export=csv").streaming_content).decode().splitlines()
    assert cells[0].startswith("code,project,format,type,cathode,cathode_sample,active_mass_mg")
    assert any(
        line.startswith("DEMO-NMC811-001,") and ",CATH-LNO-01,8.4000," in line for line in cells[1:]
    )
    runs = b"".join(client.get("/depositions/runs/?export=csv").streaming_content).decode()
    assert "RUN-LNO-01" in runs and "LiNbOx 1:4 v1" in runs


@pytest.mark.django_db
def test_the_demo_qcm_run_passes_its_own_log(
    chain, fixture_path, project, django_capture_on_commit_callbacks
):
    """The demo recipe is the fixture run's plan: every pulse aligns, widths and purges pass;
    the only warning is the summary's furnace setpoint against the thermocouples."""
    from depositions.models import RunCheck
    from lims.ingestion import services as ingest

    folder = fixture_path / "ald/labview_qcm_run"
    for path in sorted(folder.glob("*.txt"), key=lambda p: "DataLog" in p.name):
        with path.open("rb") as fh, django_capture_on_commit_callbacks(execute=False):
            job, _ = ingest.ingest_submit(
                stream=fh,
                filename=path.name,
                project=project,
                kind="ald_log",
                params={"run": demo.QCM_RUN},
            )
        with django_capture_on_commit_callbacks(execute=False):
            job = ingest.job_run(job_id=job.pk)
        assert job.status == "succeeded", (path.name, job.error)
    assert job.result["pulses_per_source"] == {"TMA": 80, "H2O": 70}
    assert job.result["verdict"] == "warn", job.result["reasons"]
    statuses = dict(RunCheck.objects.values_list("name", "status"))
    assert statuses["temperature_setpoint:Furnace Temp"] == "warn"
    assert {n for n, st in statuses.items() if st != "pass"} == {
        "temperature_setpoint:Furnace Temp"
    }, statuses
    assert statuses["purge_length:TMA"] == statuses["pulse_width:H2O"] == "pass"
    assert statuses["plan_alignment"] == statuses["run_completeness"] == "pass"
    from depositions.models import DepositionRun

    summary = DepositionRun.objects.get(code=demo.QCM_RUN).recipe_snapshot["summary"]
    assert summary["expected_thickness_nm"] == pytest.approx(7.7)  # 70 Al2O3 cycles x 1.1 Å
