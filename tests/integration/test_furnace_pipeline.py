"""Furnace logs end to end through real processes: a furnace pushes its logs over HTTP, a real
Celery worker parses and checks them against the anneal's plan; a person sees the verdicts and
the failure on the anneal page."""

from __future__ import annotations

from decimal import Decimal

import pytest

from depositions import services as dep
from depositions.inputs import SegmentInput
from depositions.models import FurnaceLog
from lims import services as lims_services
from lims.ingestion import storage
from lims.models import IngestionJob, OutboxEvent, RawFile
from tests.conftest import api_finished_job, api_upload
from tests.depositions.factories import furnace_csv

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_furnace_logs_pushed_by_the_furnace_are_checked_by_the_worker(
    celery_worker_process, live_server, project, user, client
):
    token = lims_services.instrument_token_create(
        instrument_name="Tube furnace 2", project=project, kind="furnace"
    )
    anneal = dep.post_treatment_create(
        project=project,
        code="AN-LIVE",
        atmosphere="o2",
        furnace=token.instrument,
        segments=[
            SegmentInput("ramp", Decimal("600"), rate_k_per_min=Decimal("5")),
            SegmentInput("dwell", Decimal("600"), duration_min=Decimal("120")),
            SegmentInput("cool", Decimal("25"), rate_k_per_min=Decimal("5")),
        ],
    )
    url, key = live_server.url, token.key

    good = api_upload(url, key, "run1.csv", furnace_csv(), kind="furnace_log", anneal="AN-LIVE")
    assert good.status_code == 202, good.text
    short = api_upload(url, key, "run2.csv", furnace_csv(hold_s=5400), anneal="AN-LIVE")  # detected
    assert short.status_code == 202, short.text
    bad_bytes = b"Nabertherm P330\r\nTime;Temperature [\xb0C]\r\n10h00;25,0\r\n10h01;26,0\r\n"
    bad = api_upload(url, key, "run3.csv", bad_bytes, kind="furnace_log", anneal="AN-LIVE")
    assert bad.status_code == 202, bad.text

    jobs = {
        name: api_finished_job(url, key, reply.json()["job"]["id"])
        for name, reply in (("good", good), ("short", short), ("bad", bad))
    }
    assert jobs["good"]["status"] == "succeeded", jobs["good"]["error"]
    assert jobs["good"]["result"]["overall"] == "pass"
    assert jobs["short"]["status"] == "succeeded", jobs["short"]["error"]
    assert (jobs["short"]["kind"], jobs["short"]["result"]["overall"]) == ("furnace_log", "fail")
    assert jobs["bad"]["status"] == "failed"
    assert jobs["bad"]["error"] == (
        "run3.csv at line 3: no readable row: '10h00' in column 'Time' is not a number, "
        "a clock time or a date-time"
    )

    logs = {log.raw_file.original_name: log for log in FurnaceLog.objects.select_related("job")}
    assert set(logs) == {"run1.csv", "run2.csv"}
    assert all(log.treatment_id == anneal.pk for log in logs.values())
    short_checks = {c["name"]: c for c in logs["run2.csv"].checks}
    assert short_checks["dwell_1_duration"]["status"] == "fail"
    assert short_checks["dwell_1_duration"]["threshold"] == 7200
    assert IngestionJob.objects.get(pk=jobs["bad"]["id"]).instrument == token.instrument
    raw = RawFile.objects.get(original_name="run3.csv")  # the failed file is kept as sent
    assert storage.absolute(raw.storage_path).read_bytes() == bad_bytes
    checked = OutboxEvent.objects.filter(topic="depositions.post_treatment.log_checked")
    assert sorted(e.payload["overall"] for e in checked) == ["fail", "pass"]

    client.force_login(user)
    page = client.get(f"/depositions/anneals/{anneal.code}/").content.decode()
    assert 'id="furnace-logs"' in page and "run3.csv" in page and "10h00" in page
