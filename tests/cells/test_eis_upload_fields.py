"""The browser's upload form and ``POST /api/v1/ingest/`` take the same impedance fields
(kind, cell or sample, temperature_c) and refuse the same things with the same words: both
call ``upload_params`` and ``ingest_submit``."""

from __future__ import annotations

import pytest

from lims.ingestion import services as ingest
from lims.models import IngestionJob, RawFile

MPT = "eis/impedance_exampleDataBioLogic.mpt"

pytestmark = pytest.mark.django_db


@pytest.fixture
def pellet(project):
    from samples import services as samples

    return samples.sample_create(project=project, code="LPSCl-P1", kind="powder", quantity="1")


def _post(transport: str, client, user_client, project, fixture_path, capture, **fields):
    """(status, errors by field or None, job or None) of one upload through ``transport``."""
    with (fixture_path / MPT).open("rb") as fh, capture(execute=False):
        if transport == "form":
            client.force_login(client.user)
            response = client.post("/upload/", {"file": fh, "project": project.pk, **fields})
            if response.status_code == 302:
                return 302, None, IngestionJob.objects.get()
            return response.status_code, dict(response.context["form"].errors), None
        response = user_client.post(
            "/api/v1/ingest/", {"file": fh, "project": project.slug, **fields}, format="multipart"
        )
        if response.status_code == 202:
            return 202, None, IngestionJob.objects.get(pk=response.json()["job"]["id"])
        return response.status_code, response.json(), None


@pytest.fixture
def transports(
    client, user, user_client, project, fixture_path, django_capture_on_commit_callbacks
):
    client.user = user

    def post(transport: str, **fields):
        return _post(
            transport,
            client,
            user_client,
            project,
            fixture_path,
            django_capture_on_commit_callbacks,
            **fields,
        )

    return post


@pytest.mark.parametrize("transport", ["form", "api"])
def test_sample_and_temperature_reach_the_spectrum(transport, transports, pellet):
    status, errors, job = transports(transport, kind="eis", sample=" LPSCl-P1 ", temperature_c="55")
    assert status in (302, 202), errors
    assert job.params == {"sample": "LPSCl-P1", "temperature_c": 55.0}
    assert job.kind == "eis" and job.parser_name == "biologic_mpt_eis"
    done = ingest.job_run(job_id=job.pk)
    assert done is not None and done.status == "succeeded", done.error
    assert done.result["sample"] == "LPSCl-P1"
    from cells.models import EisSpectrum

    spectrum = EisSpectrum.objects.get(pk=done.result["eis_spectrum"])
    assert spectrum.sample == pellet and spectrum.temperature_c == 55.0
    assert spectrum.temperature_source == "upload field temperature_c"
    assert spectrum.fits.get().circuit_name == "blocking_pellet"


@pytest.mark.parametrize("transport", ["form", "api"])
@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        (
            {"cell": "C-001", "sample": "LPSCl-P1"},
            {"sample": ["a file belongs to a cell or to a sample, not both: give one of them"]},
        ),
        ({"temperature_c": "2500"}, {"temperature_c": ["2500 °C is outside -273.15..2000 °C"]}),
        ({"temperature_c": "-300"}, {"temperature_c": ["-300 °C is outside -273.15..2000 °C"]}),
    ],
)
def test_the_same_refusals_in_the_same_words(transport, transports, fields, errors):
    status, got, job = transports(transport, kind="eis", **fields)
    assert (status, got, job) == ({"form": 200, "api": 400}[transport], errors, None)
    assert not RawFile.objects.exists()  # refused before the bytes are stored


def test_the_form_shows_the_fields_and_the_job_links_the_spectrum(
    client, user, project, pellet, fixture_path, django_capture_on_commit_callbacks
):
    client.force_login(user)
    page = client.get("/upload/").content.decode()
    for field in ("id_kind", "id_cell", "id_sample", "id_temperature_c"):
        assert f'id="{field}"' in page
    assert '<option value="eis">eis</option>' in page
    with (fixture_path / MPT).open("rb") as fh, django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            "/upload/", {"file": fh, "project": project.pk, "sample": "LPSCl-P1"}
        )
    job = ingest.job_run(job_id=IngestionJob.objects.get().pk)
    assert job is not None
    page = client.get(response["Location"]).content.decode()
    spectrum = job.result["eis_spectrum"]
    assert f'id="spectrum-link" href="/cells/spectra/{spectrum}/"' in page
    assert 'id="sample-link" href="/samples/LPSCl-P1/"' in page
