"""Raw files are deduplicated per project: a project never answers with another's job."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from cells import services as cell_services
from cells.models import CyclingTest
from depositions.models import FurnaceLog, RunLogFile
from lims import services as lims_services
from lims.ingestion import services, storage
from lims.models import IngestionJob, Membership, Project, RawFile

MPR = "cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"


def _client(token) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def _push(client, content: bytes, name: str, **fields):
    upload = io.BytesIO(content)
    upload.name = name
    return client.post("/api/v1/ingest/", {"file": upload, **fields}, format="multipart")


@pytest.fixture
def other_project(db):
    return Project.objects.create(name="Other group", slug="other")


@pytest.fixture
def other_cell(other_project):
    return cell_services.cell_create(
        project=other_project,
        code="B-001",
        format="bulk_pellet",
        cell_type="cathode_half",
        cathode_active_material="NMC811",
        ratio_active=Decimal("70"),
        ratio_se=Decimal("30"),
        ratio_carbon=Decimal("0"),
        cathode_mass_mg=Decimal("12"),
    )


@pytest.mark.django_db
def test_the_same_bytes_in_two_projects_make_two_jobs_each_reaching_its_cell(
    project, other_project, cell, other_cell, fixture_path, django_capture_on_commit_callbacks
):
    content = (fixture_path / MPR).read_bytes()
    token_a = lims_services.instrument_token_create(instrument_name="cycler-a", project=project)
    token_b = lims_services.instrument_token_create(
        instrument_name="cycler-b", project=other_project
    )
    a, b = _client(token_a), _client(token_b)
    with django_capture_on_commit_callbacks(execute=False):
        first_b = _push(b, content, "C09.mpr", cell=other_cell.code)
        first_a = _push(a, content, "C09.mpr", cell=cell.code)
    assert (first_b.status_code, first_a.status_code) == (202, 202)
    job_b, job_a = first_b.json()["job"]["id"], first_a.json()["job"]["id"]
    assert job_a != job_b
    assert RawFile.objects.count() == 2 and IngestionJob.objects.count() == 2
    raw_a = RawFile.objects.get(project=project)
    raw_b = RawFile.objects.get(project=other_project)
    assert raw_a.sha256 == raw_b.sha256
    assert raw_a.storage_path == raw_b.storage_path  # one blob in the store
    assert IngestionJob.objects.get(pk=job_a).params == {"cell": cell.code}

    # each project's job reads the file into its own cell, with its own series file
    for job_id in (job_a, job_b):
        with django_capture_on_commit_callbacks(execute=False):
            done = services.job_run(job_id=job_id)
        assert done is not None and done.status == "succeeded", done and done.error
    test_a = CyclingTest.objects.get(raw_file=raw_a)
    test_b = CyclingTest.objects.get(raw_file=raw_b)
    assert (test_a.cell, test_b.cell) == (cell, other_cell)
    assert test_a.series_path != test_b.series_path
    assert storage.absolute(test_a.series_path).exists()
    assert storage.absolute(test_b.series_path).exists()

    # the same bytes again name the caller's own job, never the other one
    with django_capture_on_commit_callbacks(execute=False):
        again_a = _push(a, content, "again.mpr", cell=cell.code)
        again_b = _push(b, content, "again.mpr")
    assert (again_a.status_code, again_a.json()["job"]["id"]) == (200, job_a)
    assert (again_b.status_code, again_b.json()["job"]["id"]) == (200, job_b)
    assert IngestionJob.objects.count() == 2


@pytest.mark.django_db
def test_a_person_in_both_projects_gets_one_job_per_project(
    user, project, other_project, django_capture_on_commit_callbacks
):
    Membership.objects.create(project=other_project, user=user, role="editor")
    client = APIClient()
    client.force_authenticate(user)
    with django_capture_on_commit_callbacks(execute=False):
        in_a = _push(client, b"t,v\n1,2\n", "x.csv", project=project.slug)
        in_b = _push(client, b"t,v\n1,2\n", "x.csv", project=other_project.slug)
        in_a_again = _push(client, b"t,v\n1,2\n", "x.csv", project=project.slug)
    assert (in_a.status_code, in_b.status_code, in_a_again.status_code) == (202, 202, 200)
    assert in_a.json()["job"]["id"] != in_b.json()["job"]["id"]
    assert in_a_again.json()["job"]["id"] == in_a.json()["job"]["id"]
    jobs = IngestionJob.objects.in_bulk([in_a.json()["job"]["id"], in_b.json()["job"]["id"]])
    assert {j.project_id for j in jobs.values()} == {project.pk, other_project.pk}


@pytest.mark.django_db
def test_an_instrument_is_not_told_of_a_job_it_cannot_see(
    project, instrument_client, django_capture_on_commit_callbacks
):
    """Bytes another source brought into the project: 409, the job is not named."""
    with django_capture_on_commit_callbacks(execute=False):
        job, _ = services.ingest_submit(
            stream=io.BytesIO(b"a person's upload"), filename="p.txt", project=project
        )
        response = _push(instrument_client, b"a person's upload", "p.txt")
    assert response.status_code == 409
    body = response.json()
    assert "already stored in project assb" in body["detail"] and "job" not in body
    assert str(job.pk) not in response.content.decode()
    assert RawFile.objects.count() == 1 and IngestionJob.objects.count() == 1


@pytest.mark.django_db
def test_run_page_upload_of_bytes_another_project_holds_queues_a_job_in_the_runs_project(
    fixture_path,
    project,
    other_project,
    labview_run,
    user,
    client,
    django_capture_on_commit_callbacks,
):
    from tests.depositions_logs.test_ald_ingest import LABVIEW

    rel = f"{LABVIEW}_DataLog.txt"
    with (fixture_path / rel).open("rb") as fh, django_capture_on_commit_callbacks(execute=False):
        elsewhere, _ = services.ingest_submit(
            stream=fh, filename="DataLog.txt", project=other_project, kind="ald_log"
        )
    client.force_login(user)
    with (fixture_path / rel).open("rb") as fh, django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            f"/depositions/runs/{labview_run.code}/logs/", {"logs": [fh]}, follow=True
        )
    page = response.content.decode()
    mine = IngestionJob.objects.get(project=project)
    assert f"queued (job {mine.pk})" in page
    assert f"job {elsewhere.pk})" not in page
    assert mine.params == {"run": labview_run.code}
    with django_capture_on_commit_callbacks(execute=False):
        services.job_run(job_id=mine.pk)
    assert RunLogFile.objects.get(raw_file__project=project).run == labview_run


@pytest.mark.django_db
def test_a_furnace_log_uploaded_on_two_projects_anneal_pages_is_two_jobs(
    project, other_project, django_capture_on_commit_callbacks
):
    from depositions import services as dep
    from depositions.furnace import services as furnace
    from tests.depositions.factories import furnace_csv
    from tests.depositions.test_services import LI3PO4

    content = furnace_csv()
    jobs = []
    for p in (project, other_project):
        treatment = dep.post_treatment_create(
            project=p, code=f"AN-{p.slug}", atmosphere="o2", segments=LI3PO4
        )
        with django_capture_on_commit_callbacks(execute=False):
            job, created = furnace.furnace_log_submit(
                treatment=treatment, stream=io.BytesIO(content), filename="an.csv", user=None
            )
        assert created
        with django_capture_on_commit_callbacks(execute=False):
            services.job_run(job_id=job.pk)
        jobs.append(IngestionJob.objects.select_related("raw_file").get(pk=job.pk))
    assert [j.status for j in jobs] == ["succeeded", "succeeded"]
    assert [j.raw_file.project for j in jobs] == [project, other_project]
    assert jobs[0].raw_file.storage_path == jobs[1].raw_file.storage_path
    logs = FurnaceLog.objects.filter(job__in=jobs).select_related("treatment")
    assert sorted(log.treatment.project_id for log in logs) == [project.pk, other_project.pk]
