"""End to end through real processes: HTTP -> Redis broker -> Celery worker -> PostgreSQL."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
import requests

from cells.models import CyclingTest, PerformanceRecord
from lims.models import EventRule, IngestionJob, RawFile, Webhook
from tests.conftest import api_finished_job, api_upload, wait_for
from tests.lims.test_events import _Receiver

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MPR = "cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"


def test_instrument_file_reaches_a_performance_record_and_the_cell_page(
    celery_worker_process, live_server, instrument_token, cell, user, fixture_path, client
):
    hook_server = _Receiver([])
    try:
        hook = Webhook.objects.create(name="lab-bot", url=hook_server.url, secret="k")
        EventRule.objects.create(
            name="perf", topic_pattern="cells.performance_record.*", webhook=hook
        )
        content = (fixture_path / MPR).read_bytes()
        response = api_upload(
            live_server.url, instrument_token.key, "C09.mpr", content, cell="C-001"
        )
        assert response.status_code == 202, response.text
        job = api_finished_job(live_server.url, instrument_token.key, response.json()["job"]["id"])
        assert job["status"] == "succeeded", job["error"]
        assert job["result"]["cell"] == "C-001"

        test = CyclingTest.objects.get(raw_file__sha256=hashlib.sha256(content).hexdigest())
        assert test.cell == cell
        assert test.row_count == 46102
        assert test.cycles.count() == 7
        record = PerformanceRecord.objects.get(test=test)
        assert record.first_discharge_mah == pytest.approx(0.206529, rel=5e-3)
        assert record.active_mass_mg == pytest.approx(7.0)
        assert record.first_discharge_mah_g == pytest.approx(0.206529 / 0.007, rel=5e-3)
        assert record.raw_sha256 == test.raw_file.sha256
        assert record.parser_name == "biologic_mpr"

        client.force_login(user)
        page = client.get(f"/cells/{cell.code}/")
        assert page.status_code == 200
        html = page.content.decode()
        assert "Performance record" in html and test.raw_file.sha256 in html

        # the record's event went out as a signed webhook
        wait_for(lambda: hook_server.requests, timeout=30)
        headers, _ = hook_server.requests[0]
        assert headers["X-Lims-Topic"] == "cells.performance_record.computed"
    finally:
        hook_server.close()


def test_twenty_concurrent_identical_uploads_make_one_of_everything(
    celery_worker_process, live_server, instrument_token, cell, fixture_path
):
    content = (fixture_path / MPR).read_bytes()
    barrier = threading.Barrier(20)

    def send(_: int) -> requests.Response:
        barrier.wait()
        return api_upload(live_server.url, instrument_token.key, "C09.mpr", content, cell="C-001")

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(send, range(20)))
    codes = sorted(r.status_code for r in responses)
    assert all(c in (200, 202) for c in codes), codes
    assert codes.count(202) == 1
    assert len({r.json()["job"]["id"] for r in responses}) == 1
    job = api_finished_job(live_server.url, instrument_token.key, responses[0].json()["job"]["id"])
    assert job["status"] == "succeeded", job["error"]
    assert RawFile.objects.count() == 1
    assert IngestionJob.objects.count() == 1
    assert CyclingTest.objects.count() == 1


def test_bad_files_fail_clearly_and_the_worker_goes_on(
    celery_worker_process, live_server, instrument_token, cell, fixture_path
):
    good = (fixture_path / MPR).read_bytes()
    bad = {
        "empty.csv": b"",
        "truncated.mpr": good[:5000],
        "garbage.bin": bytes((i * 7919) % 256 for i in range(50_000)),
        "latin1.csv": "Zeit;Spannung\n1,0;3,7\n".encode("utf-16-le"),
    }
    ids = {}
    for name, content in bad.items():
        response = api_upload(live_server.url, instrument_token.key, name, content, cell="C-001")
        assert response.status_code == 202, (name, response.status_code, response.text)
        ids[name] = response.json()["job"]["id"]
    for name, job_id in ids.items():
        job = api_finished_job(live_server.url, instrument_token.key, job_id)
        assert job["status"] == "failed", name
        assert job["error"].startswith(name), job["error"]
    assert celery_worker_process.poll() is None
    response = api_upload(live_server.url, instrument_token.key, "good.mpr", good, cell="C-001")
    job = api_finished_job(live_server.url, instrument_token.key, response.json()["job"]["id"])
    assert job["status"] == "succeeded", job["error"]
    assert RawFile.objects.count() == 5


def test_changing_active_mass_recomputes_records_through_an_event(
    celery_worker_process, live_server, instrument_token, cell, user, fixture_path
):
    content = (fixture_path / MPR).read_bytes()
    response = api_upload(live_server.url, instrument_token.key, "C09.mpr", content, cell="C-001")
    job = api_finished_job(live_server.url, instrument_token.key, response.json()["job"]["id"])
    assert job["status"] == "succeeded", job["error"]
    record = PerformanceRecord.objects.get(test__cell=cell)
    before = record.first_discharge_mah_g

    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(user)
    patch = api.patch(f"/api/v1/cells/{cell.code}/", {"cathode_mass_mg": "20.0"}, format="json")
    assert patch.status_code == 200, patch.content
    assert Decimal(patch.json()["active_mass_mg"]) == Decimal("14.0000")

    def recomputed():
        r = PerformanceRecord.objects.get(pk=record.pk)
        return r if r.active_mass_mg == pytest.approx(14.0) else None

    after = wait_for(recomputed, timeout=60)
    assert after.first_discharge_mah_g == pytest.approx(before / 2, rel=1e-9)
    assert "active mass changed" in after.reason
