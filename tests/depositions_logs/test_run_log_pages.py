"""The run page's log upload / link / re-check, the tool's threshold editor, and the same
operations over the API."""

from __future__ import annotations

import pytest

from depositions.models import PulseEvent, RunCheck, RunLogFile
from lims.ingestion import services as ingest
from lims.models import IngestionJob, RawFile
from tests.depositions_logs.test_ald_ingest import LABVIEW, _ingest

STEM = LABVIEW.rsplit("/", 1)[-1]


def _drain(capture) -> None:
    """Run every queued job as the worker would (the dispatch itself is tested end to end)."""
    while job := IngestionJob.objects.filter(status="pending").order_by("pk").first():
        with capture(execute=False):
            ingest.job_run(job_id=job.pk)


@pytest.mark.django_db
def test_run_page_uploads_a_data_log_with_its_companions(
    fixture_path, labview_run, user, client, django_capture_on_commit_callbacks
):
    client.force_login(user)
    folder = fixture_path / "ald/labview_qcm_run"
    with (
        (folder / f"{STEM}_DataLog.txt").open("rb") as data,
        (folder / f"{STEM}_Summary.txt").open("rb") as summary,
        django_capture_on_commit_callbacks(execute=False),
    ):
        response = client.post(
            f"/depositions/runs/{labview_run.code}/logs/", {"logs": [data, summary]}, follow=True
        )
    assert response.status_code == 200
    page = response.content.decode()
    assert f"{STEM}_DataLog.txt: queued" in page and f"{STEM}_Summary.txt: queued" in page
    _drain(django_capture_on_commit_callbacks)

    data_log = RunLogFile.objects.get(run=labview_run, parser_name="labview_datalog")
    assert [c["file"] for c in data_log.metadata["companions"]] == [f"{STEM}_Summary.txt"]
    assert RunCheck.objects.filter(log=data_log, name="temperature_setpoint:Furnace Temp")
    page = client.get(f"/depositions/runs/{labview_run.code}/").content.decode()
    assert 'id="recheck-form"' in page
    assert f"{STEM}_Summary.txt</td>" in page  # "merged with" column of the data log


@pytest.mark.django_db
def test_uploading_bytes_an_instrument_pushed_without_a_run_links_them(
    fixture_path, project, labview_run, user, client, django_capture_on_commit_callbacks
):
    job = _ingest(
        fixture_path, project, f"{LABVIEW}_DataLog.txt", django_capture_on_commit_callbacks
    )
    assert job.status == "needs_linking"
    client.force_login(user)
    page = client.get(f"/depositions/runs/{labview_run.code}/").content.decode()
    assert 'id="log-link-form"' in page and f"{STEM}_DataLog.txt (labview_datalog" in page

    with (
        (fixture_path / f"{LABVIEW}_DataLog.txt").open("rb") as fh,
        django_capture_on_commit_callbacks(execute=False),
    ):
        response = client.post(
            f"/depositions/runs/{labview_run.code}/logs/", {"logs": [fh]}, follow=True
        )
    assert "already stored" in response.content.decode()
    _drain(django_capture_on_commit_callbacks)
    assert RawFile.objects.count() == 1
    assert RunLogFile.objects.get().run == labview_run
    assert PulseEvent.objects.filter(run=labview_run).count() == 150


@pytest.mark.django_db
def test_run_page_links_an_unlinked_log_and_checks_again(
    fixture_path, project, labview_run, user, client, django_capture_on_commit_callbacks
):
    _ingest(fixture_path, project, f"{LABVIEW}_DataLog.txt", django_capture_on_commit_callbacks)
    log_file = RunLogFile.objects.get()
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            f"/depositions/runs/{labview_run.code}/logs/link/",
            {"log_file": log_file.pk},
            follow=True,
        )
    assert "linked; checking it" in response.content.decode()
    _drain(django_capture_on_commit_callbacks)
    assert RunCheck.objects.filter(run=labview_run).exists()

    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(f"/depositions/runs/{labview_run.code}/recheck/", follow=True)
    assert "1 log(s) queued for checking" in response.content.decode()
    assert IngestionJob.objects.get().status == "pending"
    _drain(django_capture_on_commit_callbacks)
    assert IngestionJob.objects.get().status == "succeeded"


@pytest.mark.django_db
def test_tool_threshold_editor_saves_overrides_and_rechecks(
    fixture_path, project, labview_run, user, client, django_capture_on_commit_callbacks
):
    _ingest(
        fixture_path,
        project,
        f"{LABVIEW}_DataLog.txt",
        django_capture_on_commit_callbacks,
        run=labview_run.code,
    )
    assert RunCheck.objects.get(name="purge_length:TMA").status == "fail"
    client.force_login(user)
    url = f"/depositions/tools/{labview_run.tool_id}/thresholds/"
    page = client.get(url).content.decode()
    assert 'name="dead_k_sigma"' in page and 'placeholder="3.0"' in page
    assert 'placeholder="one sample period"' in page  # purge/width tolerance defaults

    bad = client.post(url, {"setpoint_channels": "Furnace Temp"}).content.decode()
    assert "line 1: write" in bad

    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            url,
            {
                "purge_tolerance_s": "10.5",
                "setpoint_channels": "Furnace Temp = Thermocouple 1",
                "pulse_detection": "",
                "recheck": "on",
            },
            follow=True,
        )
    assert "Thresholds saved. 1 log(s) queued for checking." in response.content.decode()
    assert ">checking</span>" in response.content.decode()  # the run's verdict until re-checked
    labview_run.tool.refresh_from_db()
    assert labview_run.tool.check_thresholds == {
        "purge_tolerance_s": 10.5,
        "setpoint_channels": {"Furnace Temp": "Thermocouple 1"},
    }
    _drain(django_capture_on_commit_callbacks)
    assert RunCheck.objects.get(name="purge_length:TMA").status == "pass"
    page = client.get(f"/depositions/tools/{labview_run.tool_id}/").content.decode()
    assert "purge_tolerance_s = 10.5" in page


@pytest.mark.django_db
def test_api_checks_pulses_recheck_and_link(
    fixture_path, project, labview_run, user_client, django_capture_on_commit_callbacks
):
    _ingest(fixture_path, project, f"{LABVIEW}_DataLog.txt", django_capture_on_commit_callbacks)
    listing = user_client.get("/api/v1/run-log-files/?unlinked=true").json()
    assert listing["count"] == 1
    entry = listing["results"][0]
    assert entry["run"] is None and entry["parser_name"] == "labview_datalog"
    assert len(entry["sha256"]) == 64

    bad = user_client.post(f"/api/v1/run-log-files/{entry['id']}/link/", {"run": "NOPE"})
    assert bad.status_code == 400 and "no such run" in bad.json()["run"][0]
    with django_capture_on_commit_callbacks(execute=False):
        linked = user_client.post(
            f"/api/v1/run-log-files/{entry['id']}/link/", {"run": labview_run.code}
        )
    assert linked.status_code == 202 and linked.json()["queued_jobs"] == [entry["job"]]
    _drain(django_capture_on_commit_callbacks)

    base = f"/api/v1/deposition-runs/{labview_run.code}"
    checks = user_client.get(f"{base}/checks/?status=planned").json()  # list filters: ignored
    assert {c["status"] for c in checks} <= {"pass", "warn", "fail"}
    assert any(c["name"] == "dead_pulses:TMA" and c["log_file"] == entry["id"] for c in checks)
    pulses = user_client.get(f"{base}/pulses/").json()
    assert pulses["count"] == 150 and len(pulses["results"]) == 50
    assert pulses["results"][0]["source"] in ("TMA", "H2O")
    with django_capture_on_commit_callbacks(execute=False):
        again = user_client.post(f"{base}/recheck/")
    assert again.status_code == 202 and again.json()["queued_jobs"] == [entry["job"]]
    assert user_client.get("/api/v1/run-log-files/?unlinked=true").json()["count"] == 0
    assert user_client.get(f"/api/v1/run-log-files/?run={labview_run.code}").json()["count"] == 1


@pytest.mark.django_db
def test_logs_of_other_projects_are_invisible(
    fixture_path, project, labview_run, django_capture_on_commit_callbacks
):
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    _ingest(fixture_path, project, f"{LABVIEW}_DataLog.txt", django_capture_on_commit_callbacks)
    stranger = get_user_model().objects.create_user("stranger", password="x")
    api = APIClient()
    api.force_authenticate(stranger)
    assert api.get("/api/v1/run-log-files/").json()["count"] == 0
    log_id = RunLogFile.objects.get().pk
    # no write role anywhere: refused before any lookup (the same for any id: nothing learnt)
    assert api.post(f"/api/v1/run-log-files/{log_id}/link/", {"run": "LV-RUN1"}).status_code == 403
    # an editor of another project: the log is not found
    from lims.models import Membership, Project

    elsewhere = Project.objects.create(name="Elsewhere", slug="elsewhere")
    Membership.objects.create(project=elsewhere, user=stranger, role=Membership.Role.EDITOR)
    assert api.post(f"/api/v1/run-log-files/{log_id}/link/", {"run": "LV-RUN1"}).status_code == 404
    missing = api.post("/api/v1/run-log-files/987654/link/", {"run": "LV-RUN1"})
    assert missing.status_code == 404


@pytest.mark.django_db
def test_runs_list_and_filter_by_their_tool_log_verdict(
    fixture_path,
    project,
    labview_run,
    user,
    client,
    user_client,
    django_capture_on_commit_callbacks,
):
    from depositions import services as dep

    quiet = dep.run_create(
        project=project, code="LV-RUN2", tool=labview_run.tool, recipe=labview_run.recipe
    )
    _ingest(
        fixture_path,
        project,
        f"{LABVIEW}_DataLog.txt",
        django_capture_on_commit_callbacks,
        run=labview_run.code,
    )
    runs = {
        r["code"]: r["qc_verdict"]
        for r in user_client.get("/api/v1/deposition-runs/").json()["results"]
    }
    assert runs == {labview_run.code: "fail", quiet.code: "no log"}  # 20 s purges vs 30 s planned
    failing = user_client.get("/api/v1/deposition-runs/?qc=fail").json()["results"]
    assert [r["code"] for r in failing] == [labview_run.code]
    assert user_client.get("/api/v1/deposition-runs/?qc=pass").json()["count"] == 0

    client.force_login(user)
    page = client.get("/depositions/runs/?qc=no+log").content.decode()
    assert quiet.code in page and f">{labview_run.code}<" not in page
    csv = b"".join(client.get("/depositions/runs/?export=csv").streaming_content).decode()
    assert "qc_verdict" in csv.splitlines()[0] and ",fail," in csv

    with django_capture_on_commit_callbacks(execute=False):
        client.post(f"/depositions/runs/{labview_run.code}/recheck/")
    checking = user_client.get(f"/api/v1/deposition-runs/{labview_run.code}/").json()
    assert checking["qc_verdict"] == "checking"


@pytest.mark.django_db
def test_a_shared_tools_page_and_recheck_stay_in_the_users_projects(
    fixture_path, project, labview_run, user, client, django_capture_on_commit_callbacks
):
    from depositions import services as dep
    from lims.models import Project

    other = Project.objects.create(name="Other lab", slug="other")
    from decimal import Decimal

    from depositions.inputs import BlockInput, StepInput, SubCycleInput

    recipe = dep.recipe_create(
        project=other,
        name="theirs",
        subcycles=[
            SubCycleInput(
                "Al2O3",
                [StepInput("pulse", Decimal("1"), "TMA"), StepInput("purge", Decimal("30"))],
            )
        ],
        blocks=[BlockInput("Al2O3", 80)],
    )
    theirs = dep.run_create(project=other, code="THEIRS-1", tool=labview_run.tool, recipe=recipe)
    _ingest(
        fixture_path,
        other,
        f"{LABVIEW}_DataLog.txt",
        django_capture_on_commit_callbacks,
        run=theirs.code,
    )
    client.force_login(user)
    page = client.get(f"/depositions/tools/{labview_run.tool_id}/").content.decode()
    assert "THEIRS-1" not in page
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            f"/depositions/tools/{labview_run.tool_id}/thresholds/",
            {"purge_tolerance_s": "10.5", "recheck": "on"},
            follow=True,
        )
    assert "0 log(s) queued" in response.content.decode()
    assert IngestionJob.objects.get(params__run="THEIRS-1").status == "succeeded"
