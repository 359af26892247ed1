"""The anneal page: furnace-log upload (the same one way in as every raw file), the verdict
column, failures with their cause, linking and re-checking."""

from __future__ import annotations

import io
import re
from decimal import Decimal

import pytest

from depositions import services
from depositions.inputs import SegmentInput
from depositions.models import FurnaceLog
from lims.ingestion import services as ingest
from lims.ingestion import storage
from lims.models import IngestionJob, RawFile
from tests.depositions.factories import furnace_csv

pytestmark = pytest.mark.django_db

PLAN = [  # 600 degC for 2 h: what furnace_csv() writes by default
    SegmentInput(kind="ramp", target_c=Decimal("600"), rate_k_per_min=Decimal("5")),
    SegmentInput(kind="dwell", target_c=Decimal("600"), duration_min=Decimal("120")),
    SegmentInput(kind="cool", target_c=Decimal("25"), rate_k_per_min=Decimal("5")),
]


@pytest.fixture
def anneal(project):
    return services.post_treatment_create(
        project=project, code="AN-600", atmosphere="o2", segments=PLAN
    )


def _drain(capture) -> None:
    """Run every queued job as the worker would (the worker itself: tests/integration)."""
    while job := IngestionJob.objects.filter(status="pending").order_by("pk").first():
        with capture(execute=False):
            ingest.job_run(job_id=job.pk)


def _upload(client, anneal, capture, files: dict[str, bytes], **fields):
    uploads = []
    for name, content in files.items():
        f = io.BytesIO(content)
        f.name = name
        uploads.append(f)
    with capture(execute=False):
        response = client.post(
            f"/depositions/anneals/{anneal.code}/logs/", {"logs": uploads, **fields}, follow=True
        )
    assert response.status_code == 200
    return response.content.decode()


def _rows(page: str, table_id: str) -> list[list[str]]:
    """The text of each body row's cells of one table (tags stripped)."""
    table = re.search(rf'<table[^>]*id="{table_id}".*?<tbody>(.*?)</tbody>', page, re.S)
    assert table, f"no table #{table_id}"
    rows = re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", r)]
        for r in rows
    ]


def test_uploaded_logs_are_queued_checked_and_show_their_verdict(
    anneal, user, client, django_capture_on_commit_callbacks
):
    client.force_login(user)
    page = _upload(
        client,
        anneal,
        django_capture_on_commit_callbacks,
        {"good.csv": furnace_csv(), "short.csv": furnace_csv(hold_s=3600)},
    )
    assert "good.csv: queued" in page and "short.csv: queued" in page
    assert {r[0] for r in _rows(page, "furnace-jobs")} == {"good.csv", "short.csv"}
    _drain(django_capture_on_commit_callbacks)

    page = client.get(f"/depositions/anneals/{anneal.code}/").content.decode()
    rows = {r[0]: r for r in _rows(page, "furnace-logs")}
    assert rows["good.csv"][1] == "Pass"
    assert rows["short.csv"][1] == "Fail"
    short = FurnaceLog.objects.get(raw_file__original_name="short.csv")
    assert rows["short.csv"][2] == str(short.points) and rows["short.csv"][3] == "5.00"
    assert rows["short.csv"][4] == str(short.job_id)
    assert "held 3720 s of 7200 s planned" in page  # the failing check says why
    assert 'id="furnace-jobs"' not in page  # nothing left unchecked
    assert short.job.kind == "furnace_log" and short.job.params == {"anneal": "AN-600"}


def test_the_tolerance_of_the_upload_is_used(
    anneal, user, client, django_capture_on_commit_callbacks
):
    client.force_login(user)
    off = furnace_csv(offset_k=-8.0)  # 8 K under the dwell target
    _upload(client, anneal, django_capture_on_commit_callbacks, {"off.csv": off}, tolerance_k="10")
    _drain(django_capture_on_commit_callbacks)
    log = FurnaceLog.objects.get()
    assert (log.tolerance_k, log.overall) == (Decimal("10.00"), "pass")
    assert log.job.params["metadata"] == {"tolerance_k": "10"}


def test_a_bad_file_fails_with_its_place_and_cause_and_is_kept(
    anneal, user, client, django_capture_on_commit_callbacks
):
    client.force_login(user)
    bad = b"Oven 3\nTime;Temperature (\xb0C)\n10h05;25,0\n10h06;30,2\n"  # "10h05": no clock
    _upload(client, anneal, django_capture_on_commit_callbacks, {"oven3.csv": bad})
    _drain(django_capture_on_commit_callbacks)
    job = IngestionJob.objects.get()
    assert job.status == "failed"
    assert job.error == (
        "oven3.csv at line 3: no readable row: '10h05' in column 'Time' is not a number, "
        "a clock time or a date-time"
    )
    raw = RawFile.objects.get()  # the bytes are kept as they came
    assert storage.absolute(raw.storage_path).read_bytes() == bad
    page = client.get(f"/depositions/anneals/{anneal.code}/").content.decode()
    (row,) = _rows(page, "furnace-jobs")
    assert row[0] == "oven3.csv" and row[2] == "Failed" and "at line 3" in row[3]
    assert not FurnaceLog.objects.exists()


def test_bytes_pushed_without_an_anneal_are_linked_from_the_page(
    anneal, project, user, client, django_capture_on_commit_callbacks
):
    content = furnace_csv()
    with django_capture_on_commit_callbacks(execute=False):  # no kind, no anneal: detected
        job, _ = ingest.ingest_submit(
            stream=io.BytesIO(content), filename="furnace3.csv", project=project
        )
    _drain(django_capture_on_commit_callbacks)
    job.refresh_from_db()
    assert (job.kind, job.parser_name, job.status) == (
        "furnace_log",
        "furnace-csv",
        "needs_linking",
    )
    assert "no anneal named" in job.result["note"]
    client.force_login(user)
    page = client.get(f"/depositions/anneals/{anneal.code}/").content.decode()
    assert 'id="furnace-link-form"' in page and f"furnace3.csv (job {job.pk}" in page

    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            f"/depositions/anneals/{anneal.code}/logs/link/", {"job": job.pk}, follow=True
        )
    assert "furnace3.csv linked; checking it." in response.content.decode()
    _drain(django_capture_on_commit_callbacks)
    log = FurnaceLog.objects.get()
    assert (log.treatment, log.job, log.overall) == (anneal, job, "pass")
    job.refresh_from_db()
    assert job.status == "succeeded" and job.params["anneal"] == anneal.code
    assert RawFile.objects.count() == 1


def test_uploading_unlinked_bytes_again_links_them(
    anneal, project, user, client, django_capture_on_commit_callbacks
):
    content = furnace_csv(hold_s=3600)
    with django_capture_on_commit_callbacks(execute=False):
        ingest.ingest_submit(
            stream=io.BytesIO(content), filename="f.csv", project=project, params={"anneal": "X"}
        )
    _drain(django_capture_on_commit_callbacks)
    assert "anneal 'X' not found" in IngestionJob.objects.get().result["note"]
    client.force_login(user)
    page = _upload(client, anneal, django_capture_on_commit_callbacks, {"again.csv": content})
    assert "again.csv: already stored" in page
    _drain(django_capture_on_commit_callbacks)
    assert FurnaceLog.objects.get().overall == "fail"


def test_check_again_uses_the_plan_as_it_is_now(
    anneal, user, client, django_capture_on_commit_callbacks
):
    client.force_login(user)
    _upload(client, anneal, django_capture_on_commit_callbacks, {"a.csv": furnace_csv(hold_s=3600)})
    _drain(django_capture_on_commit_callbacks)
    log = FurnaceLog.objects.get()
    assert log.overall == "fail" and log.plan[1]["duration_min"] == "120.000"
    services.post_treatment_update(  # the plan was one hour, not two
        treatment=anneal,
        segments=[
            PLAN[0],
            SegmentInput("dwell", Decimal("600"), duration_min=Decimal("60")),
            PLAN[2],
        ],
    )
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(f"/depositions/anneals/{anneal.code}/recheck/", follow=True)
    assert "1 log(s) queued for checking." in response.content.decode()
    _drain(django_capture_on_commit_callbacks)
    log.refresh_from_db()
    assert log.overall == "pass" and log.plan[1]["duration_min"] == "60.000"
    assert FurnaceLog.objects.count() == 1  # checked again in place (the change log has the old)
