"""Fits of ingested spectra through the handler: stored rows, KK verdicts, refits, failures."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from cells.eis import services as eis
from cells.models import EisFit, EisSpectrum
from tests.conftest import ingest_file as _ingest

MPT = "eis/impedance_exampleDataBioLogic.mpt"
DTA = "eis/impedance_exampleDataGamry.DTA"
CSV = "eis/impedance_exampleData.csv"

pytestmark = pytest.mark.django_db


@pytest.fixture
def pellet(project):
    from samples import services as samples

    return samples.sample_create(project=project, code="LPSCl-P1", kind="powder", quantity="1")


@pytest.mark.parametrize(
    ("rel", "owner", "circuit", "kk"),
    [
        (CSV, {"cell": "C-001"}, "cell_interfaces", True),
        (MPT, {"sample": "LPSCl-P1"}, "blocking_pellet", False),
        (DTA, {"cell": "C-001"}, "cell_interfaces", False),
    ],
)
def test_every_fixture_is_fitted_at_ingestion(
    fixture_path, project, cell, pellet, django_capture_on_commit_callbacks, rel, owner, circuit, kk
):
    """Circuit by measurement type; KK verdicts as the fit module's own tests have them."""
    job = _ingest(fixture_path, project, rel, django_capture_on_commit_callbacks, **owner)
    assert job.status == "succeeded", job.error
    spectrum = EisSpectrum.objects.get(pk=job.result["eis_spectrum"])
    assert spectrum.kk_passed is kk
    assert spectrum.kramers_kronig["passed"] is kk
    assert len(spectrum.kramers_kronig["residuals_real"]) == spectrum.points
    assert "Lin-KK" in spectrum.kramers_kronig["method"]
    fit = spectrum.fits.get()
    assert fit.status == EisFit.Status.OK, fit.error
    assert fit.reason == EisFit.Reason.INGESTED and fit.created_by is None
    assert fit.circuit_name == circuit and fit.circuit.endswith(
        {"cell_interfaces": "p(R2,CPE2)-W1", "blocking_pellet": "p(R1,CPE1)-CPE2"}[circuit]
    )
    assert fit.raw_sha256 == spectrum.raw_file.sha256
    assert fit.parser_name == spectrum.parser_name and fit.parser_version
    assert fit.versions["impedance"] and fit.versions["scipy"] and fit.versions["numpy"]
    assert fit.versions["evaluator"].startswith("cells.eis.circuits")
    assert fit.weighting == "modulus" and fit.guess_source == "automatic"
    assert len(fit.initial_guess) == len(fit.parameters)
    assert {"name", "value", "stderr", "unit"} <= set(fit.parameters[0])
    assert fit.n_points == spectrum.points
    assert fit.f_min_hz == pytest.approx(spectrum.f_min_hz)
    assert fit.f_max_hz == pytest.approx(spectrum.f_max_hz)
    assert fit.rms_relative < 0.1
    assert f"circuit {circuit!r}" in fit.warnings[0]
    assert job.result["fit"]["id"] == fit.pk and job.result["kk_passed"] is kk
    # Without a thickness and an area there is no conductivity, and the fit says why.
    assert fit.sigma_s_cm is None and fit.conductivity["none_reason"]


def test_metadata_names_the_circuit(
    fixture_path, project, pellet, django_capture_on_commit_callbacks
):
    job = _ingest(
        fixture_path,
        project,
        MPT,
        django_capture_on_commit_callbacks,
        sample="LPSCl-P1",
        metadata={"circuit": "bulk_grain_boundary"},
    )
    fit = EisSpectrum.objects.get(pk=job.result["eis_spectrum"]).fits.get()
    assert fit.circuit_name == "bulk_grain_boundary"
    assert "metadata.circuit" in fit.warnings[0]


def test_a_failed_fit_does_not_fail_the_job(
    fixture_path, project, pellet, django_capture_on_commit_callbacks
):
    job = _ingest(
        fixture_path,
        project,
        MPT,
        django_capture_on_commit_callbacks,
        sample="LPSCl-P1",
        metadata={"circuit": "randles"},
    )
    assert job.status == "succeeded", job.error
    spectrum = EisSpectrum.objects.get(pk=job.result["eis_spectrum"])
    fit = spectrum.fits.get()
    assert fit.status == EisFit.Status.FAILED
    assert "'randles' is not one of blocking_pellet" in fit.error
    assert fit.parameters == [] and fit.sigma_s_cm is None
    assert job.result["fit"]["status"] == "failed"


def test_refit_keeps_both_and_respects_the_range(
    fixture_path, project, user, pellet, django_capture_on_commit_callbacks
):
    job = _ingest(fixture_path, project, MPT, django_capture_on_commit_callbacks, sample="LPSCl-P1")
    spectrum = EisSpectrum.objects.get(pk=job.result["eis_spectrum"])
    first = spectrum.fits.get()
    with django_capture_on_commit_callbacks(execute=False):
        refit = eis.eis_fit_run(
            spectrum=spectrum, circuit="bulk_grain_boundary", f_min=0.1, f_max=500, user=user
        )
    assert refit.status == EisFit.Status.OK, refit.error
    assert refit.reason == EisFit.Reason.REFIT and refit.created_by == user
    assert refit.f_range_requested == [0.1, 500]
    assert refit.f_min_hz >= 0.1 and refit.f_max_hz <= 500
    assert refit.n_points < first.n_points
    assert set(spectrum.fits.values_list("pk", flat=True)) == {first.pk, refit.pk}
    first.refresh_from_db()
    assert first.circuit_name == "blocking_pellet" and first.reason == "ingested"


def test_a_refit_open_at_one_end_is_stored(
    fixture_path, project, user, pellet, django_capture_on_commit_callbacks
):
    """Only f_min given: the open end was infinity, which JSON (and PostgreSQL) refuse."""
    job = _ingest(fixture_path, project, MPT, django_capture_on_commit_callbacks, sample="LPSCl-P1")
    spectrum = EisSpectrum.objects.get(pk=job.result["eis_spectrum"])
    with django_capture_on_commit_callbacks(execute=False):
        refit = eis.eis_fit_run(spectrum=spectrum, circuit="blocking_pellet", f_min=1.0, user=user)
    refit.refresh_from_db()
    assert refit.f_range_requested == [1.0, None]
    assert refit.status == EisFit.Status.OK, refit.error
    assert refit.f_min_hz >= 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"circuit": "R0-p(R1,C1)"}, "circuit must be one of"),
        ({"circuit": "blocking_pellet", "f_min": 100.0, "f_max": 10.0}, "must be below"),
    ],
)
def test_bad_refit_requests_say_why(
    fixture_path, project, pellet, django_capture_on_commit_callbacks, kwargs, message
):
    job = _ingest(fixture_path, project, MPT, django_capture_on_commit_callbacks, sample="LPSCl-P1")
    spectrum = EisSpectrum.objects.get(pk=job.result["eis_spectrum"])
    with pytest.raises(ValidationError, match=message):
        eis.eis_fit_run(spectrum=spectrum, **kwargs)
    assert spectrum.fits.count() == 1


def test_a_range_without_points_is_a_stored_failure(
    fixture_path, project, pellet, django_capture_on_commit_callbacks
):
    job = _ingest(fixture_path, project, MPT, django_capture_on_commit_callbacks, sample="LPSCl-P1")
    spectrum = EisSpectrum.objects.get(pk=job.result["eis_spectrum"])
    with django_capture_on_commit_callbacks(execute=False):
        fit = eis.eis_fit_run(spectrum=spectrum, circuit="blocking_pellet", f_min=1e6, f_max=1e7)
    assert fit.status == EisFit.Status.FAILED and "no points" in fit.error
    assert spectrum.fits.count() == 2
