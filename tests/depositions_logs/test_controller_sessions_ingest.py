"""An appended controller log of four sessions through the real ingest handler.

Each session becomes a segment with its own pulses and verdict; sessions whose time falls in a
run's window go to that run (its checks, its QC status), the manual test in between belongs to
no run and keeps its own verdict ("no data": it logged no pressure).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings

from depositions import services as dep
from depositions.aldlogs.checks import NO_DATA
from depositions.inputs import BlockInput, StepInput, SubCycleInput
from depositions.models import DepositionRun, PulseEvent, RunCheck, RunLogFile, RunLogSegment
from lims.ingestion import services as ingest
from lims.models import IngestionJob, Instrument, OutboxEvent

SESSIONS = "ald/controller_eventlog/synthetic_controller_eventlog_sessions.log"
PER_SESSION = [
    ({"TMA": 20, "H2O": 20}, {"TMA": 20}),
    ({"TMA": 2, "H2O": 1}, {}),
    ({"TMA": 3, "H2O": 3}, {"TMA": 3}),
    ({"TMA": 12, "H2O": 12}, {}),
]


def _at(text: str) -> datetime:
    """A time of the log's clock (naive: the lab's zone)."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(settings.TIME_ZONE))


def _step(kind: str, seconds: str, label: str = "") -> StepInput:
    return StepInput(kind=kind, duration_s=Decimal(seconds), source_label=label)


@pytest.fixture
def controller_tool(project):
    instrument = Instrument.objects.create(name="Home ALD 2", kind="ald_tool", project=project)
    tool = dep.tool_create(instrument=instrument, reactor_type="cross_flow")
    dep.tool_source_create(
        tool=tool, label="V2", reactant="TMA", delivery="vapour_draw", log_channel="valve 2"
    )
    dep.tool_source_create(
        tool=tool, label="V3", reactant="H2O", delivery="vapour_draw", log_channel="valve 3"
    )
    return tool


def _run(
    project, tool, code: str, loops: int, start: str, end: str | None, purge: str = "10"
) -> DepositionRun:
    """A run of the recipe its session printed (TMA 0.1 s, purge, H2O 0.1 s, purge: 10 s in
    the first sessions, 8 s in the last) with the window a person recorded."""
    recipe = dep.recipe_create(
        project=project,
        name=f"TMA/H2O x{loops} {code}",
        subcycles=[
            SubCycleInput(
                "Al2O3",
                [
                    _step("pulse", "0.1", "TMA"),
                    _step("purge", purge),
                    _step("pulse", "0.1", "H2O"),
                    _step("purge", purge),
                ],
            )
        ],
        blocks=[BlockInput("Al2O3", 1)],
        supercycle_repeats=loops,
    )
    run = dep.run_create(project=project, code=code, tool=tool, recipe=recipe)
    DepositionRun.objects.filter(pk=run.pk).update(
        status="completed", started_at=_at(start), ended_at=_at(end) if end else None
    )
    run.refresh_from_db()
    return run


def _push(fixture_path, project, capture, *, instrument=None, **params) -> IngestionJob:
    with (fixture_path / SESSIONS).open("rb") as fh, capture(execute=False):
        job, created = ingest.ingest_submit(
            stream=fh,
            filename="ALD_runtimeLog.log",
            project=project,
            params=params,
            instrument=instrument,
        )
    assert created
    with capture(execute=False):
        done = ingest.job_run(job_id=job.pk)
    assert done is not None
    return done


@pytest.mark.django_db
def test_each_session_is_a_segment_linked_to_its_run_by_time(
    fixture_path, project, controller_tool, django_capture_on_commit_callbacks
):
    runs = [
        _run(project, controller_tool, "S1", 20, "2025-06-02T08:40:00", "2025-06-02T08:50:00"),
        None,  # the manual test at 04:47 was no deposition run
        _run(project, controller_tool, "S3", 50, "2025-06-03T09:47:00", "2025-06-03T09:55:00"),
        # S4: no end entered
        _run(project, controller_tool, "S4", 12, "2025-06-03T09:58:00", None, "8"),
    ]
    job = _push(
        fixture_path,
        project,
        django_capture_on_commit_callbacks,
        instrument=controller_tool.instrument,
    )
    assert job.parser_name == "controller_eventlog"
    assert job.status == "succeeded", job.error
    log = RunLogFile.objects.get()
    assert log.run is None  # three runs share this file
    segments = list(log.segments.order_by("index"))
    assert [s.run for s in segments] == runs
    assert [s.link for s in segments] == ["time", "", "time", "time"]
    assert [s.verdict for s in segments] == ["fail", NO_DATA, "fail", "pass"]
    assert [s.started_at for s in segments] == [
        _at("2025-06-02T08:41:05"),
        _at("2025-06-03T04:47:54"),
        _at("2025-06-03T09:48:06"),
        _at("2025-06-03T09:59:10"),
    ]
    for segment, (counts, dead) in zip(segments, PER_SESSION, strict=True):
        assert segment.pulses_per_source == counts
        stored = PulseEvent.objects.filter(segment=segment)
        assert Counter(stored.values_list("source", flat=True)) == counts
        assert Counter(stored.filter(dead=True).values_list("source", flat=True)) == dead
        assert set(stored.values_list("run", flat=True)) == {segment.run_id}
    # the failing checks of each run are its session's, and only its session's
    failing = RunCheck.objects.filter(status="fail")
    fails = {
        run.code: set(failing.filter(run=run).values_list("name", flat=True)) for run in runs if run
    }
    assert "dead_pulses:TMA" in fails["S1"] and "run_completeness" not in fails["S1"]
    assert {"dead_pulses:TMA", "run_completeness", "pulse_count:TMA"} <= fails["S3"]
    assert fails["S4"] == set()
    assert RunCheck.objects.filter(segment=segments[1]).count() == 0  # no run: no run checks
    assert segments[1].checks and segments[1].reasons[0] == "no check of the deposition could run"
    statuses = dict(DepositionRun.objects.values_list("code", "status"))
    assert statuses == {"S1": "failed_qc", "S3": "failed_qc", "S4": "completed"}
    events = OutboxEvent.objects.filter(topic__startswith="depositions.run.qc_")
    assert sorted((e.payload["run"], e.payload["segment"], e.topic[-6:]) for e in events) == [
        ("S1", 0, "failed"),
        ("S3", 2, "failed"),
        ("S4", 3, "passed"),
    ]
    assert [s["verdict"] for s in job.result["segments"]] == ["fail", NO_DATA, "fail", "pass"]


@pytest.mark.django_db
def test_the_run_page_shows_the_session_that_belongs_to_the_run(
    fixture_path, project, controller_tool, user, client, django_capture_on_commit_callbacks
):
    import json

    _run(project, controller_tool, "S1", 20, "2025-06-02T08:40:00", "2025-06-02T08:50:00")
    _run(project, controller_tool, "S4", 12, "2025-06-03T09:58:00", "2025-06-03T10:05:00", "8")
    _push(
        fixture_path,
        project,
        django_capture_on_commit_callbacks,
        instrument=controller_tool.instrument,
    )
    client.force_login(user)
    page = client.get("/depositions/runs/S4/").content.decode()
    assert 'id="log-segments"' in page and "3 of 4" in page and "2025-06-03 09:59:10" in page
    start = page.index('<script id="trace-data" type="application/json">')
    start = page.index(">", start) + 1
    trace = json.loads(page[start : page.index("</script>", start)])
    assert trace["segment"] == 3
    assert len(trace["pulses"]) == 24  # session 4's pulses only
    assert trace["time_s"][0] >= 0 and trace["time_s"][-1] < 200  # its own 3.3 min
    checks = page.split('id="checks"')[1].split("</table>")[0]
    assert "dead_pulses:TMA" in checks and "status-failed" not in checks  # S4's checks only


@pytest.mark.django_db
def test_a_run_named_in_the_upload_takes_its_session_and_time_links_the_others(
    fixture_path, project, controller_tool, django_capture_on_commit_callbacks
):
    # S4 was planned and never started by hand: the upload names it; S1 has a window
    planned = _run(project, controller_tool, "S4", 12, "2025-06-03T09:58:00", None, "8")
    DepositionRun.objects.filter(pk=planned.pk).update(
        status="planned", started_at=None, ended_at=None
    )
    _run(project, controller_tool, "S1", 20, "2025-06-02T08:40:00", "2025-06-02T08:50:00")
    job = _push(fixture_path, project, django_capture_on_commit_callbacks, run="S4")
    assert job.status == "succeeded", job.error
    segments = {s.index: s for s in RunLogSegment.objects.select_related("run")}
    assert segments[3].run.code == "S4" and segments[3].link == "upload"
    assert "session 3 (the last one with valve commands) was taken" in job.result["note"]
    assert segments[0].run.code == "S1" and segments[0].link == "time"
    assert segments[1].run is None and segments[2].run is None
    planned.refresh_from_db()
    assert planned.status == "running"  # started by its log, at the session's start
    assert planned.started_at == _at("2025-06-03T09:59:10")


@pytest.mark.django_db
def test_a_longer_copy_of_the_appended_log_replaces_the_sessions_of_the_shorter(
    fixture_path, project, controller_tool, tmp_path, django_capture_on_commit_callbacks
):
    run = _run(project, controller_tool, "S1", 20, "2025-06-02T08:40:00", "2025-06-02T08:50:00")
    lines = (fixture_path / SESSIONS).read_text(encoding="ascii").splitlines(keepends=True)
    first_day = "".join(line for line in lines if not line.startswith("06/03/2025"))
    short = tmp_path / "ALD_runtimeLog_day1.log"
    short.write_text(first_day, encoding="ascii")
    with short.open("rb") as fh, django_capture_on_commit_callbacks(execute=False):
        job, _ = ingest.ingest_submit(
            stream=fh,
            filename=short.name,
            project=project,
            params={},
            instrument=controller_tool.instrument,
        )
    with django_capture_on_commit_callbacks(execute=False):
        first = ingest.job_run(job_id=job.pk)
    assert first is not None and first.status == "succeeded", first and first.error
    assert RunCheck.objects.filter(run=run).count() > 0
    checks_once = RunCheck.objects.filter(run=run).count()

    _push(fixture_path, project, django_capture_on_commit_callbacks, instrument=run.tool.instrument)
    # one set of checks and pulses for the session, from the newer copy
    assert RunCheck.objects.filter(run=run).count() == checks_once
    assert PulseEvent.objects.filter(run=run).count() == 40
    old = RunLogSegment.objects.get(log__raw_file__original_name=short.name)
    assert old.run is None and old.link == "superseded"


@pytest.mark.django_db
def test_linking_one_session_by_hand_survives_a_recheck(
    fixture_path, project, controller_tool, django_capture_on_commit_callbacks
):
    from depositions.aldlogs.services import run_log_link, run_log_recheck

    manual = _run(project, controller_tool, "MANUAL", 1, "2025-06-01T00:00:00", None)
    job = _push(
        fixture_path,
        project,
        django_capture_on_commit_callbacks,
        instrument=controller_tool.instrument,
    )
    assert job.status == "needs_linking"  # no run has a window near any session
    log = RunLogFile.objects.get()
    with pytest.raises(Exception, match="holds 4 sessions"):
        run_log_link(log_file=log, run=manual)
    with django_capture_on_commit_callbacks(execute=False):
        assert run_log_link(log_file=log, run=manual, segment=1) == [job.pk]
    with django_capture_on_commit_callbacks(execute=False):
        done = ingest.job_run(job_id=job.pk)
    assert done is not None and done.status == "succeeded", done and done.error
    segment = RunLogSegment.objects.get(index=1)
    assert segment.run == manual and segment.link == "hand"
    assert PulseEvent.objects.filter(run=manual).count() == 3
    with django_capture_on_commit_callbacks(execute=False):
        assert run_log_recheck(run=manual) == [job.pk]
    with django_capture_on_commit_callbacks(execute=False):
        ingest.job_run(job_id=job.pk)
    assert RunLogSegment.objects.get(index=1).run == manual
    assert RunLogFile.objects.get().run == manual  # its only run
