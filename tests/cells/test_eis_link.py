"""Linking a spectrum by hand (page, API, service) and the refit a new owner queues.

Known answers from the conductivity series (tests/cells/test_eis_conductivity.py): a spectrum
of R0-p(R1,CPE1)-CPE2 with R1 = 1273.9 Ohm on a 1.0 mm, 0.785 cm2 pellet gives
sigma = 0.1 cm / (1273.9 Ohm * 0.785 cm2) = 9.9999e-5 S/cm once fitted as a blocking pellet.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from cells import tasks
from cells.eis import selectors
from cells.eis import services as eis
from cells.models import EisFit, EisSpectrum, StitchedRecord
from lims.events.services import _subscribers
from lims.models import IngestionJob, OutboxEvent
from tests.cells.test_eis_conductivity import SERIES, blocking_csv, ingest_bytes
from tests.cells.test_eis_conductivity import pellet as pellet  # fixture
from tests.cells.test_eis_conductivity import series as series  # fixture

pytestmark = pytest.mark.django_db


def _unlinked(project, capture, name: str = "unlinked.csv", r1: float = 1273.9, **params):
    import io

    from lims.ingestion import services as ingest

    with capture(execute=False):
        job, _ = ingest.ingest_submit(
            stream=io.BytesIO(blocking_csv(r1)), filename=name, project=project, params=params
        )
    done = ingest.job_run(job_id=job.pk)
    assert done is not None
    return EisSpectrum.objects.get(pk=done.result["eis_spectrum"]), done


def _link(capture, spectrum, **owner):
    with capture(execute=False):
        return eis.eis_spectrum_link(spectrum=spectrum, **owner)


def _run_queued(fit: EisFit, capture) -> EisFit:
    """What the worker does: the task fed by the link's event."""
    event = OutboxEvent.objects.get(topic="cells.eis_spectrum.linked", payload__fit=fit.pk)
    with capture(execute=False):
        tasks.eis_fit_for_event(str(event.pk))
    fit.refresh_from_db()
    return fit


def test_a_link_queues_a_refit_that_a_worker_makes(
    project, pellet, user, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    spectrum, job = _unlinked(project, capture, temperature_c="25")
    assert job.status == IngestionJob.Status.NEEDS_LINKING
    ingested = spectrum.fits.get()
    assert ingested.circuit_name == "cell_interfaces" and ingested.sigma_s_cm is None

    linked = _link(capture, spectrum, sample=pellet, user=user)
    refit = linked.refit
    assert refit is not None and linked.spectrum.sample == pellet
    assert refit.status == EisFit.Status.QUEUED and refit.reason == EisFit.Reason.LINKED
    assert refit.circuit_name == "blocking_pellet" and refit.created_by == user
    assert refit.warnings == [
        "linked to sample LLZO-P7 (was nothing): refit",
        "circuit 'blocking_pellet': a spectrum of a sample",
    ]
    assert refit.raw_sha256 == spectrum.raw_file.sha256
    job.refresh_from_db()
    assert job.status == IngestionJob.Status.SUCCEEDED
    event = OutboxEvent.objects.get(topic="cells.eis_spectrum.linked")
    assert event.payload == {
        "spectrum": spectrum.pk,
        "cell": None,
        "sample": "LLZO-P7",
        "previous_cell": None,
        "previous_sample": None,
        "fit": refit.pk,
        "circuit": "blocking_pellet",
    }
    # the worker gets it from the event's subscriber (the browser test runs that chain)
    assert any(p == "cells.eis_spectrum.linked" for p, _ in _subscribers)
    # queued: not yet a value anything uses
    assert selectors.arrhenius_series(sample=pellet)["points"] == []

    done = _run_queued(refit, capture)
    assert done.status == EisFit.Status.OK, done.error
    assert done.sigma_s_cm == pytest.approx(9.9999e-5, rel=1e-4)
    assert done.conductivity["geometry"]["thickness_source"] == "sample LLZO-P7 thickness_um"
    assert done.warnings[:2] == refit.warnings  # why it was made, then the fit's own notes
    assert OutboxEvent.objects.filter(
        topic="cells.eis_fit.created", payload__fit=done.pk, payload__status="ok"
    ).exists()
    ingested.refresh_from_db()
    assert ingested.circuit_name == "cell_interfaces" and ingested.status == EisFit.Status.OK
    assert spectrum.fits.count() == 2
    points = selectors.arrhenius_series(sample=pellet)["points"]
    assert [(p["spectrum"], p["fit"]) for p in points] == [(spectrum.pk, done.pk)]

    # a redelivered message changes nothing
    again = eis.eis_fit_queued_run(fit_id=done.pk)
    assert again is not None and again.pk == done.pk
    assert spectrum.fits.count() == 2
    assert OutboxEvent.objects.filter(topic="cells.eis_fit.created").count() == 1


def test_moving_a_spectrum_between_sample_and_cell_changes_the_circuit_and_the_series(
    project, pellet, cell, series, django_capture_on_commit_callbacks
):
    """The 25 degC spectrum of the pellet was a cell's: it leaves the pellet's Arrhenius fit,
    is refitted with cell_interfaces (no conductivity), and moved back it is a pellet again."""
    capture = django_capture_on_commit_callbacks
    assert selectors.arrhenius_series(sample=pellet)["fit"]["n_points"] == 3
    spectrum = series[0]
    first = spectrum.fits.get()

    to_cell = _run_queued(_link(capture, spectrum, cell=cell).refit, capture)
    assert to_cell.circuit_name == "cell_interfaces" and to_cell.status == EisFit.Status.OK
    assert to_cell.sigma_s_cm is None
    assert "no bulk resistance" in to_cell.conductivity["none_reason"]
    assert to_cell.warnings[0] == "linked to cell C-001 (was sample LLZO-P7): refit"
    on_pellet = selectors.arrhenius_series(sample=pellet)
    assert [p["temperature_c"] for p in on_pellet["points"]] == [50.0, 75.0]
    assert list(cell.spectra.all()) == [spectrum]

    back = _run_queued(_link(capture, spectrum, sample=pellet).refit, capture)
    assert back.circuit_name == "blocking_pellet"
    assert back.sigma_s_cm == pytest.approx(SERIES[0][2], rel=1e-4)
    assert back.warnings[0] == "linked to sample LLZO-P7 (was cell C-001): refit"
    result = selectors.arrhenius_series(sample=pellet)
    assert result["points"][0]["fit"] == back.pk
    assert result["fit"]["ea_ev"] == pytest.approx(0.300, abs=5e-4)
    # every fit kept, none changed
    first.refresh_from_db()
    assert first.sigma_s_cm == pytest.approx(SERIES[0][2], rel=1e-4)
    assert [f.circuit_name for f in spectrum.fits.order_by("pk")] == [
        "blocking_pellet",
        "cell_interfaces",
        "blocking_pellet",
    ]


def test_the_circuit_named_at_upload_still_wins(
    project, pellet, cell, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    spectrum = ingest_bytes(
        project,
        capture,
        "named.csv",
        blocking_csv(1273.9),
        cell=cell.code,
        metadata={"circuit": "bulk_grain_boundary"},
    )
    refit = _link(capture, spectrum, sample=pellet).refit
    assert refit is not None and refit.circuit_name == "bulk_grain_boundary"
    assert "named in the upload's metadata.circuit" in refit.warnings[1]


def test_linking_to_the_same_owner_queues_nothing_and_bad_links_say_why(
    project, pellet, cell, django_capture_on_commit_callbacks
):
    from lims.models import Project
    from samples import services as samples

    capture = django_capture_on_commit_callbacks
    spectrum, _ = _unlinked(project, capture, cell=cell.code)
    assert spectrum.cell == cell
    same = _link(capture, spectrum, cell=cell)
    assert same.refit is None and spectrum.fits.count() == 1
    assert not OutboxEvent.objects.filter(topic="cells.eis_spectrum.linked").exists()

    other = Project.objects.create(name="Other", slug="other")
    stranger = samples.sample_create(project=other, code="X-1", kind="powder", quantity="1")
    with pytest.raises(ValidationError, match="another project"):
        _link(capture, spectrum, sample=stranger)
    with pytest.raises(ValidationError, match="exactly one"):
        _link(capture, spectrum, cell=cell, sample=pellet)
    spectrum.refresh_from_db()
    assert spectrum.cell == cell and spectrum.fits.count() == 1


def test_a_spectrum_leaves_its_old_cells_interface_series(
    tmp_path, project, cell, django_capture_on_commit_callbacks
):
    """R_interface vs cycle of the cell it was wrongly linked to loses it at the link; the
    new cell's series gets it once the refit is stored."""
    from datetime import timedelta

    from cells import services as cells
    from tests.cells.test_eis_interface import T0, _cycler_csv, _run, _spectrum_csv

    capture = django_capture_on_commit_callbacks
    right = cells.cell_create(
        project=project,
        code="C-002",
        format="bulk_pellet",
        cell_type="cathode_half",
        cathode_active_material="NMC811",
        ratio_active=70,
        ratio_se=30,
        ratio_carbon=0,
        cathode_mass_mg=10,
    )
    for target, cycles in ((cell, range(1, 3)), (right, range(1, 4))):  # not the same bytes
        _run(
            _cycler_csv(tmp_path, f"{target.code}.csv", cycles, 0.0),
            project,
            capture,
            cell=target.code,
            metadata={"start_time": T0.isoformat()},
        )
    measured = (T0 + timedelta(hours=1, minutes=30)).isoformat()
    job = _run(
        _spectrum_csv(tmp_path, "eis.csv", 40.0, 100.0),
        project,
        capture,
        cell=cell.code,
        metadata={"measured_at": measured},
    )
    spectrum = EisSpectrum.objects.get(pk=job.result["eis_spectrum"])
    wrong = StitchedRecord.objects.get(cell=cell)
    assert [p["spectrum"] for p in wrong.interface_resistance["series"]] == [spectrum.pk]

    refit = _link(capture, spectrum, cell=right).refit
    wrong.refresh_from_db()
    assert wrong.interface_resistance["series"] == []
    assert StitchedRecord.objects.get(cell=right).interface_resistance["series"] == []
    done = _run_queued(refit, capture)
    series = StitchedRecord.objects.get(cell=right).interface_resistance["series"]
    assert [(p["spectrum"], p["fit"], p["cycle"]) for p in series] == [(spectrum.pk, done.pk, 1)]
    assert series[0]["r_ohm"] == pytest.approx(140.0, rel=0.01)


def test_a_queued_fit_whose_points_are_gone_fails_with_the_reason(
    project, pellet, django_capture_on_commit_callbacks
):
    from lims.ingestion import storage

    capture = django_capture_on_commit_callbacks
    spectrum, _ = _unlinked(project, capture)
    refit = _link(capture, spectrum, sample=pellet).refit
    storage.absolute(spectrum.series_path).unlink()
    done = _run_queued(refit, capture)
    assert done.status == EisFit.Status.FAILED
    assert done.error.startswith("the stored points could not be read: FileNotFoundError")


# -- the page and the API -------------------------------------------------------------------


def test_link_from_the_spectrum_page(
    client, user, project, pellet, cell, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    spectrum, _ = _unlinked(project, capture)
    client.force_login(user)
    page = client.get(f"/cells/spectra/{spectrum.pk}/").content.decode()
    assert "not linked to a cell or sample yet" in page and 'id="link-form"' in page
    assert '<option value="cell:C-001">C-001</option>' in page
    assert '<option value="sample:LLZO-P7">LLZO-P7</option>' in page
    assert 'id="refit-queued"' not in page

    with capture(execute=False):
        response = client.post(f"/cells/spectra/{spectrum.pk}/link/", {"owner": "cell:C-001"})
    assert response.status_code == 302
    refit = spectrum.fits.get(status=EisFit.Status.QUEUED)
    page = client.get(response["Location"]).content.decode()
    assert f"linked to cell C-001; refit {refit.pk} with cell_interfaces queued" in page
    assert 'id="refit-queued"' in page and f"/api/v1/eis-spectra/{spectrum.pk}/fits/" in page
    assert 'status-running">queued' in page
    assert '<option value="cell:C-001" selected>C-001</option>' in page

    _run_queued(refit, capture)
    page = client.get(f"/cells/spectra/{spectrum.pk}/").content.decode()
    assert 'id="refit-queued"' not in page
    assert f"Shown: fit {refit.pk}" in page and "after linking" in page

    response = client.post(f"/cells/spectra/{spectrum.pk}/link/", {"owner": "cell:NOPE"})
    page = client.get(response["Location"]).content.decode()
    assert "not linked: * owner" in page and "Select a valid choice" in page


def test_link_through_the_api(
    user_client, project, pellet, cell, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    spectrum, _ = _unlinked(project, capture)
    url = f"/api/v1/eis-spectra/{spectrum.pk}/link/"
    response = user_client.post(url, {"sample": "nope"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"sample": ["no sample 'nope' in project assb"]}
    response = user_client.post(url, {"cell": "C-001", "sample": "LLZO-P7"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": ["link a spectrum to a cell or to a sample (exactly one)"]}

    with capture(execute=False):
        response = user_client.post(url, {"sample": "LLZO-P7"}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["spectrum"]["sample"] == "LLZO-P7" and body["spectrum"]["cell"] is None
    assert body["refit"]["status"] == "queued" and body["refit"]["reason"] == "linked"
    assert body["refit"]["circuit_name"] == "blocking_pellet"
    fits = user_client.get(f"/api/v1/eis-spectra/{spectrum.pk}/fits/").json()
    assert [f["status"] for f in fits] == ["queued", "ok"]

    again = user_client.post(url, {"sample": "LLZO-P7"}, format="json")
    assert again.status_code == 200 and again.json()["refit"] is None


def test_other_projects_and_instruments_cannot_link(
    user_client, instrument_client, project, cell, django_capture_on_commit_callbacks
):
    from lims.models import Project

    capture = django_capture_on_commit_callbacks
    other = Project.objects.create(name="Other", slug="other")
    hidden, _ = _unlinked(other, capture)
    response = user_client.post(f"/api/v1/eis-spectra/{hidden.pk}/link/", {"cell": "C-001"})
    assert response.status_code == 404
    mine, _ = _unlinked(project, capture, name="mine.csv", r1=500.0)
    response = instrument_client.post(f"/api/v1/eis-spectra/{mine.pk}/link/", {"cell": "C-001"})
    assert response.status_code == 403
    mine.refresh_from_db()
    assert mine.cell is None
