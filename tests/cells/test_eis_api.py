"""Impedance spectra in-process: the ingest fields, temperature rules, linking, the API."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from cells.eis import services as eis
from cells.models import EisSpectrum
from lims.ingestion import services as ingest
from lims.models import IngestionJob, OutboxEvent
from tests.conftest import ingest_file as _ingest

MPT = "eis/impedance_exampleDataBioLogic.mpt"
DTA = "eis/impedance_exampleDataGamry.DTA"
CSV = "eis/impedance_exampleData.csv"

pytestmark = pytest.mark.django_db


@pytest.fixture
def pellet(project):
    from samples import services as samples

    return samples.sample_create(project=project, code="LPSCl-P1", kind="powder", quantity="1")


def test_sample_link_and_event(fixture_path, project, pellet, django_capture_on_commit_callbacks):
    job = _ingest(fixture_path, project, DTA, django_capture_on_commit_callbacks, sample="LPSCl-P1")
    assert job.status == "succeeded", job.error
    spectrum = EisSpectrum.objects.get(pk=job.result["eis_spectrum"])
    assert spectrum.sample == pellet and spectrum.cell is None
    assert spectrum.vendor == "gamry" and spectrum.points == 72
    assert OutboxEvent.objects.filter(topic="cells.eis_spectrum.imported").exists()


def test_unlinked_spectrum_waits_then_links(
    fixture_path, project, cell, django_capture_on_commit_callbacks
):
    job = _ingest(fixture_path, project, CSV, django_capture_on_commit_callbacks)
    assert job.status == IngestionJob.Status.NEEDS_LINKING
    spectrum = EisSpectrum.objects.get(pk=job.result["eis_spectrum"])
    with pytest.raises(ValidationError):
        eis.eis_spectrum_link(spectrum=spectrum)
    eis.eis_spectrum_link(spectrum=spectrum, cell=cell)
    job.refresh_from_db()
    assert job.status == IngestionJob.Status.SUCCEEDED
    assert list(cell.spectra.all()) == [spectrum]


def test_cell_and_sample_together_is_refused(
    fixture_path, project, cell, pellet, django_capture_on_commit_callbacks
):
    """At upload, before the bytes are stored; a job from before that check fails at its run."""
    from lims.models import RawFile

    with pytest.raises(ValidationError) as refused:
        _ingest(
            fixture_path,
            project,
            CSV,
            django_capture_on_commit_callbacks,
            cell="C-001",
            sample="LPSCl-P1",
        )
    assert refused.value.message_dict == {
        "sample": ["a file belongs to a cell or to a sample, not both: give one of them"]
    }
    assert not RawFile.objects.exists()

    with (fixture_path / CSV).open("rb") as fh, django_capture_on_commit_callbacks(execute=False):
        job, _ = ingest.ingest_submit(
            stream=fh, filename="impedance_exampleData.csv", project=project, params={}
        )
    IngestionJob.objects.filter(pk=job.pk).update(params={"cell": "C-001", "sample": "LPSCl-P1"})
    done = ingest.job_run(job_id=job.pk)
    assert done is not None and done.status == "failed"
    assert (
        done.error
        == "impedance_exampleData.csv: a spectrum belongs to a cell or to a sample, not both"
    )


def test_temperature_field_then_metadata_then_file() -> None:
    notes: list[str] = []
    assert eis.spectrum_temperature(params={"temperature_c": 80}, from_file=25.0, notes=notes) == (
        80.0,
        "upload field temperature_c",
    )
    assert "the file measured 25 °C" in notes[0]
    assert eis.spectrum_temperature(
        params={"metadata": {"temperature_c": "60"}}, from_file=None, notes=[]
    ) == (60.0, "metadata.temperature_c")
    assert eis.spectrum_temperature(params={}, from_file=-327.67, notes=[]) == (None, "")
    assert eis.spectrum_temperature(params={}, from_file=41.0, notes=[])[0] == 41.0
    with pytest.raises(ValidationError, match="not a number"):
        eis.spectrum_temperature(
            params={"metadata": {"temperature_c": "hot"}}, from_file=None, notes=[]
        )


def test_ingest_api_takes_sample_and_temperature(
    user_client, project, pellet, fixture_path, django_capture_on_commit_callbacks
):
    with (fixture_path / MPT).open("rb") as fh, django_capture_on_commit_callbacks(execute=False):
        response = user_client.post(
            "/api/v1/ingest/",
            {"file": fh, "sample": "LPSCl-P1", "temperature_c": "55", "project": "assb"},
            format="multipart",
        )
    assert response.status_code == 202, response.content
    job = IngestionJob.objects.get(pk=response.json()["job"]["id"])
    assert job.params["sample"] == "LPSCl-P1"
    assert job.params["temperature_c"] == 55.0
    assert job.kind == "eis" and job.parser_name == "biologic_mpt_eis"
    ingest.job_run(job_id=job.pk)

    listed = user_client.get("/api/v1/eis-spectra/", {"sample": "LPSCl-P1"}).json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert len(rows) == 1
    row = rows[0]
    assert row["sample"] == "LPSCl-P1" and row["temperature_c"] == 55.0
    assert row["points"] == 43 and "series" not in row
    detail = user_client.get(f"/api/v1/eis-spectra/{row['id']}/").json()
    series = detail["series"]
    assert len(series["f_hz"]) == len(series["z_imag_ohm"]) == 43
    assert series["z_imag_ohm"][0] == pytest.approx(-0.38998979)
    assert detail["hf_intercept"]["method"].startswith("model-free")


def test_spectra_of_another_project_are_not_listed(
    user_client, fixture_path, django_capture_on_commit_callbacks
):
    from lims.models import Project

    other = Project.objects.create(name="Other", slug="other")
    _ingest(fixture_path, other, CSV, django_capture_on_commit_callbacks)
    listed = user_client.get("/api/v1/eis-spectra/").json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert rows == []


def test_cell_page_section_and_spectrum_page(
    client, user, project, cell, fixture_path, django_capture_on_commit_callbacks
):
    import json

    job = _ingest(fixture_path, project, CSV, django_capture_on_commit_callbacks, cell="C-001")
    spectrum = EisSpectrum.objects.get(pk=job.result["eis_spectrum"])
    client.force_login(user)
    html = client.get(f"/cells/{cell.code}/").content.decode()
    assert "Impedance spectra" in html and 'id="eis-nyquist"' in html
    assert f"/cells/spectra/{spectrum.pk}/" in html
    start = html.index('<script id="eis-data" type="application/json">') + len(
        '<script id="eis-data" type="application/json">'
    )
    data = json.loads(html[start : html.index("</script>", start)])
    assert len(data[0]["series"]["f_hz"]) == 66
    assert data[0]["hf_intercept_ohm"] == pytest.approx(spectrum.hf_intercept_ohm)

    page = client.get(f"/cells/spectra/{spectrum.pk}/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Z&#x27;&#x27; negative for capacitive" in text or "Z'' negative for capacitive" in text
    assert spectrum.raw_file.sha256 in text and "js/eis_plots.js" in text


def test_spectrum_page_of_another_project_is_404(
    client, user, fixture_path, django_capture_on_commit_callbacks
):
    from lims.models import Project

    other = Project.objects.create(name="Other", slug="other")
    job = _ingest(fixture_path, other, CSV, django_capture_on_commit_callbacks)
    client.force_login(user)
    assert client.get(f"/cells/spectra/{job.result['eis_spectrum']}/").status_code == 404
