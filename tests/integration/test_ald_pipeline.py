"""ALD run files pushed at once by an instrument, through real processes: whatever order the
two worker processes take them in, the data log ends up checked with all its companions."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from depositions.models import PulseEvent, RunCheck, RunLogFile
from lims.models import IngestionJob
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

LABVIEW = (
    "ald/labview_qcm_run/20190524_Run1_TMA-H2O-50cycles_TMA-10Pulses_TMA-H2O-20cycles_425C_GaPO4"
)


def _push(url: str, token: str, run: str, name: str, content: bytes) -> requests.Response:
    return requests.post(
        f"{url}/api/v1/ingest/",
        headers={"Authorization": f"Token {token}"},
        files={"file": (name, content)},
        data={"kind": "ald_log", "run": run},
        timeout=120,
    )


def _settled():
    busy = IngestionJob.objects.filter(status__in=["pending", "running"]).exists()
    return None if busy else list(IngestionJob.objects.values_list("status", "error"))


def test_companions_pushed_after_the_data_log_are_checked_with_it(
    celery_worker_process, live_server, instrument_token, labview_run, fixture_path
):
    folder = fixture_path / "ald/labview_qcm_run"
    stem = LABVIEW.rsplit("/", 1)[-1]
    url, token = live_server.url, instrument_token.key
    # The data log first, alone: it is checked without its companions...
    first = _push(
        url,
        token,
        labview_run.code,
        f"{stem}_DataLog.txt",
        (folder / f"{stem}_DataLog.txt").read_bytes(),
    )
    assert first.status_code == 202, first.text
    wait_for(_settled, timeout=120)
    data_log = RunLogFile.objects.get(run=labview_run, parser_name="labview_datalog")
    names = set(RunCheck.objects.filter(log=data_log).values_list("name", flat=True))
    assert "temperature_setpoint:Furnace Temp" not in names

    # ...then the three companions at once, taken by two worker processes in any order.
    names_ = [f"{stem}_{s}.txt" for s in ("Summary", "Doses-DeltaM", "ExecutionTable")]
    barrier = threading.Barrier(len(names_))

    def send(name: str) -> requests.Response:
        content = (folder / name).read_bytes()
        barrier.wait()
        return _push(url, token, labview_run.code, name, content)

    with ThreadPoolExecutor(max_workers=len(names_)) as pool:
        responses = list(pool.map(send, names_))
    assert [r.status_code for r in responses] == [202] * 3, [r.text for r in responses]
    statuses = wait_for(_settled, timeout=120)
    assert {s for s, _ in statuses} == {"succeeded"}, statuses

    data_log.refresh_from_db()
    names = set(RunCheck.objects.filter(log=data_log).values_list("name", flat=True))
    assert "temperature_setpoint:Furnace Temp" in names  # from the summary
    completeness = RunCheck.objects.get(log=data_log, name="run_completeness")
    assert "154/154" in completeness.details, completeness.details  # the summary's steps
    used = {c["file"] for c in data_log.metadata["companions"]}
    assert used == set(names_), used
    assert data_log.metadata.get("declared_recipe"), "execution table merged"
    assert PulseEvent.objects.filter(run=labview_run).count() == 150
