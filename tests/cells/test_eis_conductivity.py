"""Conductivity and Arrhenius through the services, the pages and the API.

A 1.0 mm pellet of 0.785 cm2 measured at 25, 50 and 75 degC: spectra of a blocking-electrode
circuit with bulk resistances picked for Ea = 0.300 eV and sigma(25 degC) = 1.00e-4 S/cm, written
as headerless f, Z', Z'' CSV files and ingested like any upload.
sigma = L / (R A) = 0.1 cm / (R * 0.785 cm2):
  R1 = 1273.9 Ohm -> 9.9999e-5 S/cm; 559.5 Ohm -> 2.2768e-4 S/cm; 278.1 Ohm -> 4.5807e-4 S/cm.
"""

from __future__ import annotations

import json
from decimal import Decimal

import numpy as np
import pytest

from cells.eis import selectors
from cells.eis import services as eis
from cells.models import EisFit, EisSpectrum
from lims.ingestion import services as ingest

pytestmark = pytest.mark.django_db

SERIES = [(25.0, 1273.9, 9.9999e-5), (50.0, 559.5, 2.2768e-4), (75.0, 278.1, 4.5807e-4)]


def blocking_csv(r1: float) -> bytes:
    """R0-p(R1,CPE1)-CPE2, 60 points 1 MHz .. 0.1 Hz, Z'' as is (negative when capacitive)."""
    f = np.logspace(6, -1, 60)
    jw = 2j * np.pi * f
    z = 5.0 + r1 / (1 + r1 * 1e-9 * jw**0.9) + 1 / (1e-6 * jw**0.8)
    return "".join(
        f"{a:.8e},{b.real:.8e},{b.imag:.8e}\n" for a, b in zip(f, z, strict=True)
    ).encode()


def ingest_bytes(project, capture, name: str, content: bytes, **params):
    import io

    with capture(execute=False):
        job, _ = ingest.ingest_submit(
            stream=io.BytesIO(content), filename=name, project=project, params=params
        )
    done = ingest.job_run(job_id=job.pk)
    assert done is not None and done.status == "succeeded", done and done.error
    return EisSpectrum.objects.get(pk=done.result["eis_spectrum"])


@pytest.fixture
def pellet(project):
    from samples import services as samples

    return samples.sample_create(
        project=project,
        code="LLZO-P7",
        kind="powder",
        quantity="1",
        thickness_um=Decimal("1000"),
        area_cm2=Decimal("0.785"),
    )


@pytest.fixture
def series(project, pellet, django_capture_on_commit_callbacks):
    return [
        ingest_bytes(
            project,
            django_capture_on_commit_callbacks,
            f"llzo_{int(t)}C.csv",
            blocking_csv(r1),
            sample=pellet.code,
            temperature_c=str(t),
        )
        for t, r1, _ in SERIES
    ]


def test_conductivity_from_the_fit_and_the_sample(series) -> None:
    for spectrum, (_, r1, sigma) in zip(series, SERIES, strict=True):
        assert spectrum.kk_passed is True
        fit = spectrum.fits.get()
        assert fit.circuit_name == "blocking_pellet" and fit.status == EisFit.Status.OK
        info = fit.conductivity
        assert info["resistance_ohm"] == pytest.approx(r1, rel=1e-4)
        assert info["geometry"]["thickness_mm"] == pytest.approx(1.0)
        assert info["geometry"]["thickness_source"] == "sample LLZO-P7 thickness_um"
        assert info["geometry"]["area_source"] == "sample LLZO-P7 area_cm2"
        assert fit.sigma_s_cm == pytest.approx(sigma, rel=1e-4)
        # Only R1's fit error is known (geometry exact): u(sigma)/sigma = u(R1)/R1.
        r1_se = next(p["stderr"] for p in fit.parameters if p["name"] == "R1")
        assert fit.sigma_stderr_s_cm == pytest.approx(fit.sigma_s_cm * r1_se / r1, rel=1e-3)


def test_arrhenius_of_the_pellet(series, pellet) -> None:
    result = selectors.arrhenius_series(sample=pellet)
    assert [p["temperature_c"] for p in result["points"]] == [25.0, 50.0, 75.0]
    assert [p["sigma_s_cm"] for p in result["points"]] == pytest.approx(
        [s for *_, s in SERIES], rel=1e-4
    )
    fit = result["fit"]
    assert fit["n_points"] == 3
    assert fit["ea_ev"] == pytest.approx(0.300, abs=5e-4)
    assert fit["sigma_25c_s_cm"] == pytest.approx(1.00e-4, rel=2e-3)
    assert fit["ea_stderr_ev"] is not None and fit["ea_stderr_ev"] < 0.005
    assert result["skipped"] == []


def test_upload_metadata_geometry_wins_and_refit_keeps_both(
    project, cell, user, django_capture_on_commit_callbacks
) -> None:
    """A cell measured as a blocking pellet: metadata names the circuit and the geometry."""
    spectrum = ingest_bytes(
        project,
        django_capture_on_commit_callbacks,
        "cell_block.csv",
        blocking_csv(1273.9),
        cell=cell.code,
        temperature_c="25",
        metadata={
            "circuit": "blocking_pellet",
            "thickness_mm": 1.0,
            "thickness_stderr_mm": 0.01,
            "area_cm2": 0.785,
        },
    )
    fit = spectrum.fits.get()
    assert fit.conductivity["geometry"]["thickness_source"] == "upload metadata"
    assert fit.sigma_s_cm == pytest.approx(9.9999e-5, rel=1e-4)
    # 1 % on the thickness dominates the fit's error on R1.
    assert fit.sigma_stderr_s_cm == pytest.approx(9.9999e-7, rel=0.05)
    with django_capture_on_commit_callbacks(execute=False):
        refit = eis.eis_fit_run(spectrum=spectrum, circuit="cell_interfaces", user=user)
    assert refit.sigma_s_cm is None and "no bulk resistance" in refit.conductivity["none_reason"]
    assert spectrum.fits.count() == 2
    # The Arrhenius series takes the latest fit WITH a conductivity; one point is too few.
    result = selectors.arrhenius_series(cell=cell)
    assert [p["fit"] for p in result["points"]] == [fit.pk]
    assert result["fit"] is None and "at least 2 temperatures" in result["none_reason"]


def test_bulk_grain_boundary_gives_bulk_and_total(
    project, pellet, django_capture_on_commit_callbacks
) -> None:
    f = np.logspace(6, -1, 60)
    jw = 2j * np.pi * f
    # Bulk arc at ~30 kHz, grain-boundary arc at ~100 Hz, then the electrode spike.
    z = 5.0 + 1000 / (1 + 1000 * 1e-8 * jw**0.95) + 3000 / (1 + 3000 * 1e-6 * jw**0.85)
    z = z + 1 / (1e-4 * jw**0.8)
    content = "".join(f"{a:.8e},{b.real:.8e},{b.imag:.8e}\n" for a, b in zip(f, z, strict=True))
    spectrum = ingest_bytes(
        project,
        django_capture_on_commit_callbacks,
        "bgb.csv",
        content.encode(),
        sample=pellet.code,
        metadata={"circuit": "bulk_grain_boundary"},
    )
    fit = spectrum.fits.get()
    assert fit.status == "ok", fit.error
    # 0.1 / (1000 * 0.785) and 0.1 / (4000 * 0.785)
    assert fit.sigma_s_cm == pytest.approx(1.2739e-4, rel=1e-3)
    assert fit.conductivity["total"]["sigma_s_cm"] == pytest.approx(3.1847e-5, rel=1e-3)


def test_pages_show_badge_fit_table_and_arrhenius(client, user, series, pellet) -> None:
    client.force_login(user)
    spectrum = series[0]
    fit = spectrum.fits.get()
    html = client.get(f"/cells/spectra/{spectrum.pk}/").content.decode()
    assert 'id="kk-badge"' in html and "Kramers-Kronig: valid" in html
    assert 'id="fit-table"' in html and "R1" in html and "± " in html
    assert f"{fit.sigma_s_cm:.4g}" in html and 'id="refit-form"' in html
    start = html.index('<script id="eis-data" type="application/json">') + 46
    data = json.loads(html[start : html.index("</script>", start)])
    assert data[0]["fit"]["id"] == fit.pk and len(data[0]["fit"]["curve"]["f_hz"]) == 200
    assert len(data[0]["kk"]["real"]) == 60

    page = client.get(f"/samples/{pellet.code}/").content.decode()
    assert "Conductivity vs temperature" in page and 'id="eis-arrhenius"' in page
    assert 'id="arrhenius-data"' in page and "0.300" in page


def test_refit_form_stores_a_second_fit(client, user, series) -> None:
    client.force_login(user)
    spectrum = series[0]
    response = client.post(
        f"/cells/spectra/{spectrum.pk}/refit/",
        {"circuit": "bulk_grain_boundary", "f_min": "1", "f_max": "1e6"},
    )
    assert response.status_code == 302
    refit = spectrum.fits.get(reason="refit")
    assert refit.created_by == user and refit.circuit_name == "bulk_grain_boundary"
    assert response["Location"].endswith(f"?fit={refit.pk}")
    html = client.get(response["Location"]).content.decode()
    assert f"fit {refit.pk}" in html and spectrum.fits.count() == 2


def test_failing_kk_shows_on_the_page_and_in_the_api(
    client, user, user_client, project, pellet, fixture_path, django_capture_on_commit_callbacks
) -> None:
    content = (fixture_path / "eis/impedance_exampleDataBioLogic.mpt").read_bytes()
    spectrum = ingest_bytes(
        project, django_capture_on_commit_callbacks, "p.mpt", content, sample=pellet.code
    )
    client.force_login(user)
    html = client.get(f"/cells/spectra/{spectrum.pk}/").content.decode()
    assert "Kramers-Kronig: FAILED" in html and 'id="eis-kk"' in html
    listed = user_client.get("/api/v1/eis-spectra/", {"sample": pellet.code}).json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert rows[0]["kk_passed"] is False
    detail = user_client.get(f"/api/v1/eis-spectra/{spectrum.pk}/").json()
    assert detail["kramers_kronig"]["passed"] is False
    assert detail["fits"][0]["circuit_name"] == "blocking_pellet"


def test_api_fits_and_arrhenius(user_client, series, pellet, user) -> None:
    spectrum = series[1]
    url = f"/api/v1/eis-spectra/{spectrum.pk}/fits/"
    assert [f["reason"] for f in user_client.get(url).json()] == ["ingested"]
    created = user_client.post(
        url, {"circuit": "blocking_pellet", "f_min": 1, "f_max": 1e5}, format="json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["reason"] == "refit" and body["created_by"] == user.username
    assert body["f_range_requested"] == [1, 1e5] and body["sigma_s_cm"] == pytest.approx(
        2.2768e-4, rel=1e-3
    )
    assert len(user_client.get(url).json()) == 2
    bad = user_client.post(url, {"circuit": "randles"}, format="json")
    assert bad.status_code == 400
    backwards = user_client.post(
        url, {"circuit": "blocking_pellet", "f_min": 10, "f_max": 1}, format="json"
    )
    assert backwards.status_code == 400 and "below" in backwards.content.decode()

    arr = user_client.get("/api/v1/eis-spectra/arrhenius/", {"sample": pellet.code})
    assert arr.status_code == 200, arr.content
    assert arr.json()["fit"]["ea_ev"] == pytest.approx(0.300, abs=2e-3)
    assert user_client.get("/api/v1/eis-spectra/arrhenius/").status_code == 400
    assert user_client.get("/api/v1/eis-spectra/arrhenius/", {"sample": "nope"}).status_code == 404


def test_the_explorer_carries_the_separator_s_conductivity_and_ea(series, pellet, project, user):
    """A cell whose separator is the measured pellet: the explorer's row has sigma(25 degC)
    and Ea from the pellet's Arrhenius line, and says so."""
    from cells import services as cells
    from cells.explorer.selectors import explorer_table

    cells.cell_create(
        project=project,
        code="SSB-7",
        format="bulk_pellet",
        cell_type="cathode_half",
        se_sample=pellet,
    )
    table = explorer_table(user=user)
    row, src = next(
        (r, s) for r, s in zip(table.rows, table.sources, strict=True) if r["cell"] == "SSB-7"
    )
    assert row["ionic_conductivity_s_cm"] == pytest.approx(1.00e-4, rel=1e-3)
    assert row["activation_energy_ev"] == pytest.approx(0.300, abs=0.002)
    assert src["ionic_conductivity_s_cm"] == "Arrhenius of 3 spectra of LLZO-P7"
