"""ALD tool logs through the ingestion service: pulses stored, checks recorded, verdict emitted."""

from __future__ import annotations

from decimal import Decimal

import pytest

from depositions import services as dep
from depositions.inputs import BlockInput, StepInput, SubCycleInput
from depositions.models import PulseEvent, RunCheck, RunLogFile
from lims.ingestion import services as ingest
from lims.models import IngestionJob, Instrument, OutboxEvent
from tests.conftest import ingest_file as _ingest

LABVIEW = (
    "ald/labview_qcm_run/20190524_Run1_TMA-H2O-50cycles_TMA-10Pulses_TMA-H2O-20cycles_425C_GaPO4"
)


def _step(kind: str, seconds: str, label: str = "") -> StepInput:
    return StepInput(kind=kind, duration_s=Decimal(seconds), source_label=label)


@pytest.mark.django_db
def test_labview_log_pulses_and_checks_are_stored_with_the_run(
    fixture_path, project, labview_run, django_capture_on_commit_callbacks
):
    job = _ingest(
        fixture_path,
        project,
        f"{LABVIEW}_DataLog.txt",
        django_capture_on_commit_callbacks,
        run="LV-RUN1",
    )
    assert job.kind == "ald_log" and job.parser_name == "labview_datalog"
    assert job.status == "succeeded", job.error
    assert job.result["pulses_per_source"] == {"TMA": 80, "H2O": 70}
    labview_run.refresh_from_db()
    assert labview_run.actual_cycles == 1  # one pass through the block list
    log = RunLogFile.objects.get(run=labview_run)
    assert log.row_count > 1000 and log.series_path.endswith(".parquet")
    assert PulseEvent.objects.filter(run=labview_run, source="TMA").count() == 80
    assert PulseEvent.objects.filter(run=labview_run, source="H2O").count() == 70
    checks = RunCheck.objects.filter(run=labview_run)
    assert checks.exists()
    # without its summary file the log has no setpoint to compare with
    assert not any("setpoint" in c.name for c in checks)
    assert {c.checker_version for c in checks} and all(
        c.status in ("pass", "warn", "fail") for c in checks
    )
    topic = (
        "depositions.run.qc_passed"
        if job.result["verdict"] != "fail"
        else ("depositions.run.qc_failed")
    )
    assert OutboxEvent.objects.filter(topic=topic).exists()


@pytest.mark.django_db
def test_log_without_a_run_is_kept_and_waits_for_linking(
    fixture_path, project, django_capture_on_commit_callbacks
):
    job = _ingest(
        fixture_path, project, f"{LABVIEW}_DataLog.txt", django_capture_on_commit_callbacks
    )
    assert job.status == "needs_linking"
    assert job.result["pulses"] == 150
    assert RunLogFile.objects.get().run is None


@pytest.mark.django_db
def test_companion_table_is_kept_with_the_run(
    fixture_path, project, labview_run, django_capture_on_commit_callbacks
):
    job = _ingest(
        fixture_path,
        project,
        f"{LABVIEW}_ExecutionTable.txt",
        django_capture_on_commit_callbacks,
        run="LV-RUN1",
    )
    assert job.status == "succeeded", job.error
    assert job.result["companion"]
    assert RunLogFile.objects.get(run=labview_run).metadata


@pytest.mark.django_db
def test_run_page_shows_trace_pulses_and_checks(
    fixture_path, project, labview_run, user, client, django_capture_on_commit_callbacks
):
    import json

    _ingest(
        fixture_path,
        project,
        f"{LABVIEW}_DataLog.txt",
        django_capture_on_commit_callbacks,
        run="LV-RUN1",
    )
    client.force_login(user)
    page = client.get("/depositions/runs/LV-RUN1/").content.decode()
    assert 'id="checks"' in page and "labview_datalog" in page
    start = page.index('<script id="trace-data" type="application/json">')
    start = page.index(">", start) + 1
    trace = json.loads(page[start : page.index("</script>", start)])
    assert len(trace["time_s"]) <= 5000 and trace["pressure"]
    assert len(trace["pulses"]) == 150
    assert trace["qcm"] and trace["qcm_name"]


@pytest.mark.django_db
def test_controller_log_with_a_dead_valve_fails_the_run_qc(
    fixture_path, project, django_capture_on_commit_callbacks
):
    from depositions.models import DepositionRun

    instrument = Instrument.objects.create(name="Home ALD", kind="ald_tool", project=project)
    tool = dep.tool_create(instrument=instrument, reactor_type="cross_flow")
    dep.tool_source_create(
        tool=tool, label="V1", reactant="TMA", delivery="vapour_draw", log_channel="valve 1"
    )
    dep.tool_source_create(
        tool=tool, label="V4", reactant="H2O", delivery="vapour_draw", log_channel="valve 4"
    )
    recipe = dep.recipe_create(
        project=project,
        name="TMA/H2O x30",
        subcycles=[
            SubCycleInput(
                "Al2O3",
                [
                    _step("pulse", "1", "TMA"),
                    _step("purge", "10"),
                    _step("pulse", "1", "H2O"),
                    _step("purge", "10"),
                ],
            )
        ],
        blocks=[BlockInput("Al2O3", 1)],
        supercycle_repeats=30,
    )
    with django_capture_on_commit_callbacks(execute=False):
        from samples.services import sample_create

        wafer = sample_create(
            project=project, code="W-CTRL", kind="wafer", quantity=1, unit="count"
        )
        run = dep.run_create(project=project, code="CTRL-1", tool=tool, recipe=recipe)
        dep.run_load_add(run=run, sample=wafer, role="witness", area_cm2=Decimal("4"))
        dep.run_complete(run=run, actual_cycles=30)
    job = _ingest(
        fixture_path,
        project,
        "ald/controller_eventlog/synthetic_controller_eventlog_deadvalve.log",
        django_capture_on_commit_callbacks,
        run="CTRL-1",
    )
    assert job.parser_name == "controller_eventlog"
    assert job.status == "succeeded", job.error
    assert job.result["verdict"] == "fail"
    assert any("dead" in reason for reason in job.result["reasons"])
    dead = PulseEvent.objects.filter(run__code="CTRL-1", dead=True)
    assert dead.count() == 30 and set(dead.values_list("source", flat=True)) == {"TMA"}
    assert not PulseEvent.objects.filter(run__code="CTRL-1", source="H2O", dead=True).exists()
    assert DepositionRun.objects.get(code="CTRL-1").status == "failed_qc"
    event = OutboxEvent.objects.get(topic="depositions.run.qc_failed")
    assert event.payload["failed_checks"]


@pytest.mark.django_db
def test_tool_page_lists_runs_with_their_verdicts(
    fixture_path, project, labview_run, user, client, django_capture_on_commit_callbacks
):
    _ingest(
        fixture_path,
        project,
        f"{LABVIEW}_DataLog.txt",
        django_capture_on_commit_callbacks,
        run="LV-RUN1",
    )
    client.force_login(user)
    page = client.get(f"/depositions/tools/{labview_run.tool_id}/").content.decode()
    assert "LV-RUN1" in page
    # the test recipe plans 30 s purges, the log has 20 s ones: the purge check fails
    assert ">fail</span>" in page


@pytest.mark.django_db
def test_companions_uploaded_first_are_merged_into_the_data_log_checks(
    fixture_path, project, labview_run, django_capture_on_commit_callbacks
):
    for suffix in ("ExecutionTable", "Doses-DeltaM", "Summary"):
        job = _ingest(
            fixture_path,
            project,
            f"{LABVIEW}_{suffix}.txt",
            django_capture_on_commit_callbacks,
            run="LV-RUN1",
        )
        assert job.status == "succeeded", (suffix, job.error)
    job = _ingest(
        fixture_path,
        project,
        f"{LABVIEW}_DataLog.txt",
        django_capture_on_commit_callbacks,
        run="LV-RUN1",
    )
    assert job.status == "succeeded", job.error
    names = set(RunCheck.objects.filter(run=labview_run).values_list("name", flat=True))
    # the summary's 425 degC setpoint is checked against the thermocouples only when merged
    assert any("setpoint" in n for n in names), names
    assert any(n.startswith("qcm") for n in names)


def _run_job(job_id, capture):
    with capture(execute=False):
        done = ingest.job_run(job_id=job_id)
    assert done is not None, "the job was queued again"
    return done


@pytest.mark.django_db
def test_a_companion_arriving_after_the_data_log_queues_its_recheck(
    fixture_path, project, labview_run, django_capture_on_commit_callbacks
):
    data_job = _ingest(
        fixture_path,
        project,
        f"{LABVIEW}_DataLog.txt",
        django_capture_on_commit_callbacks,
        run="LV-RUN1",
    )
    names = set(RunCheck.objects.filter(run=labview_run).values_list("name", flat=True))
    assert not any("setpoint" in n for n in names)

    summary_job = _ingest(
        fixture_path,
        project,
        f"{LABVIEW}_Summary.txt",
        django_capture_on_commit_callbacks,
        run="LV-RUN1",
    )
    assert summary_job.result["rechecks_queued"] == [data_job.pk]
    data_job.refresh_from_db()
    assert data_job.status == "pending"

    # A second companion before the worker got to it: the job is queued already, not twice.
    doses_job = _ingest(
        fixture_path,
        project,
        f"{LABVIEW}_Doses-DeltaM.txt",
        django_capture_on_commit_callbacks,
        run="LV-RUN1",
    )
    assert doses_job.result["rechecks_queued"] == []

    rechecked = _run_job(data_job.pk, django_capture_on_commit_callbacks)
    assert rechecked.status == "succeeded", rechecked.error
    names = set(RunCheck.objects.filter(run=labview_run).values_list("name", flat=True))
    assert "temperature_setpoint:Furnace Temp" in names  # from the summary
    assert "run_completeness" in names  # the summary's "Steps Completed: 154/154"
    # one set of checks and pulses per log, not one per pass
    assert RunCheck.objects.filter(run=labview_run, name="run_completeness").count() == 1
    assert PulseEvent.objects.filter(run=labview_run).count() == 150


@pytest.mark.django_db
def test_linking_an_unlinked_log_checks_it_against_the_run(
    fixture_path, project, labview_run, django_capture_on_commit_callbacks
):
    from depositions.aldlogs.services import run_log_link

    job = _ingest(
        fixture_path, project, f"{LABVIEW}_DataLog.txt", django_capture_on_commit_callbacks
    )
    assert job.status == "needs_linking"
    assert not RunCheck.objects.exists()
    log_file = RunLogFile.objects.get()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        queued = run_log_link(log_file=log_file, run=labview_run)
    assert queued == [job.pk] and callbacks, "dispatched after commit"
    done = _run_job(job.pk, django_capture_on_commit_callbacks)
    assert done.status == "succeeded", done.error
    assert done.params["run"] == "LV-RUN1"
    assert RunCheck.objects.filter(run=labview_run, log=log_file).count() > 5
    assert PulseEvent.objects.filter(run=labview_run).count() == 150


@pytest.mark.django_db
def test_linking_to_another_projects_run_is_refused(
    fixture_path, project, labview_run, django_capture_on_commit_callbacks
):
    from django.core.exceptions import ValidationError

    from depositions.aldlogs.services import run_log_link
    from lims.models import Project

    other = Project.objects.create(name="Other", slug="other")
    with (
        (fixture_path / f"{LABVIEW}_DataLog.txt").open("rb") as fh,
        django_capture_on_commit_callbacks(execute=False),
    ):
        job, _ = ingest.ingest_submit(stream=fh, filename="log.txt", project=other)
    _run_job(job.pk, django_capture_on_commit_callbacks)
    with pytest.raises(ValidationError, match="another project"):
        run_log_link(log_file=RunLogFile.objects.get(), run=labview_run)
    assert RunLogFile.objects.get().run is None


def _complete(run):
    from samples.services import sample_create

    wafer = sample_create(
        project=run.project, code=f"W-{run.code}", kind="wafer", quantity=1, unit="count"
    )
    dep.run_load_add(run=run, sample=wafer, role="witness", area_cm2=Decimal("4"))
    return dep.run_complete(run=run)


@pytest.mark.django_db
def test_a_recheck_with_new_thresholds_takes_back_a_qc_failure_set_by_the_log(
    fixture_path, project, labview_run, django_capture_on_commit_callbacks
):
    from depositions.aldlogs.services import run_log_recheck

    _complete(labview_run)
    job = _ingest(
        fixture_path,
        project,
        f"{LABVIEW}_DataLog.txt",
        django_capture_on_commit_callbacks,
        run="LV-RUN1",
    )
    labview_run.refresh_from_db()
    # the test recipe plans 30 s purges, the log has 20 s ones
    assert job.result["verdict"] == "fail", job.result
    assert labview_run.status == "failed_qc"
    assert RunCheck.objects.get(run=labview_run, name="purge_length:TMA").status == "fail"

    # The tool owner decides 10 s shorter purges are acceptable on this tool.
    dep.tool_update(tool=labview_run.tool, check_thresholds={"purge_tolerance_s": 10.5})
    with django_capture_on_commit_callbacks(execute=False):
        assert run_log_recheck(run=labview_run) == [job.pk]
    done = _run_job(job.pk, django_capture_on_commit_callbacks)
    assert done.result["verdict"] != "fail", done.result["reasons"]
    labview_run.refresh_from_db()
    assert labview_run.status == "completed"
    assert "no tool-log check fails any more" in labview_run.notes
    assert RunCheck.objects.get(run=labview_run, name="purge_length:TMA").status == "pass"
    used = RunLogFile.objects.get(run=labview_run).metadata["thresholds"]
    assert used["purge_tolerance_s"] == 10.5


@pytest.mark.django_db
def test_a_recheck_never_undoes_a_persons_qc_failure(
    fixture_path, project, labview_run, django_capture_on_commit_callbacks
):
    from depositions.aldlogs.services import run_log_recheck

    dep.tool_update(tool=labview_run.tool, check_thresholds={"purge_tolerance_s": 10.5})
    _complete(labview_run)
    dep.run_qc_fail(run=labview_run, reason="SEM shows pinholes")
    job = _ingest(
        fixture_path,
        project,
        f"{LABVIEW}_DataLog.txt",
        django_capture_on_commit_callbacks,
        run="LV-RUN1",
    )
    assert job.result["verdict"] != "fail"
    with django_capture_on_commit_callbacks(execute=False):
        run_log_recheck(run=labview_run)
    _run_job(job.pk, django_capture_on_commit_callbacks)
    labview_run.refresh_from_db()
    assert labview_run.status == "failed_qc"


@pytest.mark.django_db
def test_tool_thresholds_are_validated(labview_run):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="unknown threshold"):
        dep.tool_update(tool=labview_run.tool, check_thresholds={"dead_sigma": 3})
    with pytest.raises(ValidationError, match="pulse_detection must be one of"):
        dep.tool_update(tool=labview_run.tool, check_thresholds={"pulse_detection": "magic"})
    with pytest.raises(ValidationError, match="could not convert"):
        dep.tool_update(tool=labview_run.tool, check_thresholds={"dead_k_sigma": "three"})
    for bad in ("nan", "inf", -1, True):  # each would quietly switch a check off
        with pytest.raises(ValidationError, match="dead_k_sigma must be"):
            dep.tool_update(tool=labview_run.tool, check_thresholds={"dead_k_sigma": bad})


@pytest.mark.django_db
def test_a_planned_runs_log_starts_it_at_the_logs_start_time(
    fixture_path, project, labview_run, django_capture_on_commit_callbacks
):
    from datetime import UTC, datetime

    assert labview_run.status == "planned"
    job = _ingest(
        fixture_path,
        project,
        f"{LABVIEW}_DataLog.txt",
        django_capture_on_commit_callbacks,
        run="LV-RUN1",
    )
    labview_run.refresh_from_db()
    assert labview_run.status == "running"  # completing it (outputs) stays a person's act
    # first timestamp minus its elapsed time = the summary's "Process Start" (TIME_ZONE = UTC)
    assert labview_run.started_at == datetime(2019, 5, 24, 11, 23, 13, 990000, tzinfo=UTC)
    assert job.result["run_started_from_log"].startswith("2019-05-24T11:23:13.99")
    assert OutboxEvent.objects.filter(topic="depositions.run.started").exists()


@pytest.mark.django_db
def test_without_mapped_ports_the_doses_table_says_which_valve_is_which(
    fixture_path, project, labview_run, django_capture_on_commit_callbacks
):
    """The LabVIEW files name their digital outputs, never the precursor: on a tool whose ports
    carry no log channel, the Doses-DeltaM table's dose times decide (merged before detection)."""
    instrument = Instrument.objects.create(name="Unmapped ALD", kind="ald_tool", project=project)
    tool = dep.tool_create(instrument=instrument, reactor_type="cross_flow")
    for label, reactant in (("A1", "TMA"), ("B1", "H2O")):
        dep.tool_source_create(tool=tool, label=label, reactant=reactant, delivery="vapour_draw")
    dep.run_create(project=project, code="LV-UNMAPPED", tool=tool, recipe=labview_run.recipe)
    for suffix in ("Doses-DeltaM", "DataLog"):
        job = _ingest(
            fixture_path,
            project,
            f"{LABVIEW}_{suffix}.txt",
            django_capture_on_commit_callbacks,
            run="LV-UNMAPPED",
        )
        assert job.status == "succeeded", job.error
    assert job.result["pulses_per_source"] == {"TMA": 80, "H2O": 70}
    counts = RunCheck.objects.filter(run__code="LV-UNMAPPED", name__startswith="pulse_count:")
    assert set(counts.values_list("status", flat=True)) == {"pass"}
    # from the doses' evidence, not guessed from the order of first use
    alignment = RunCheck.objects.get(run__code="LV-UNMAPPED", name="plan_alignment")
    assert "inferred" not in alignment.details, alignment.details


@pytest.mark.django_db
def test_a_newer_labview_builds_five_files_through_the_worker(
    tmp_path, project, labview_run, django_capture_on_commit_callbacks
):
    """The 2021 builds add an execution array: it is recognised, kept as a companion and
    merged (here beside the table, which it must agree with)."""
    from tests.aldlogs.test_labview_variants import _newer_build

    jobs = []
    for path in _newer_build(tmp_path):
        with path.open("rb") as fh, django_capture_on_commit_callbacks(execute=False):
            job, _ = ingest.ingest_submit(
                stream=fh,
                filename=path.name,
                project=project,
                kind="ald_log",
                params={"run": labview_run.code},
            )
        jobs.append(job)
    assert {j.parser_name for j in jobs} >= {"labview_execution_array", "labview_datalog"}
    while job := IngestionJob.objects.filter(status="pending").order_by("pk").first():
        with django_capture_on_commit_callbacks(execute=False):
            ingest.job_run(job_id=job.pk)
    assert set(IngestionJob.objects.values_list("status", flat=True)) == {"succeeded"}
    data_log = RunLogFile.objects.get(run=labview_run, parser_name="labview_datalog")
    assert len(data_log.metadata["companions"]) == 4
    assert data_log.metadata["execution_array"]["agrees_with_execution_table"] is True
    assert PulseEvent.objects.filter(run=labview_run).count() == 150


def _second_copy(fixture_path, tmp_path):
    """The same run's data log under another first line: other bytes, the same data."""
    text = (fixture_path / f"{LABVIEW}_DataLog.txt").read_bytes()
    first, rest = text.split(b"\n", 1)
    path = tmp_path / "restarted_DataLog.txt"
    path.write_bytes(first.replace(b"_DataLog", b"_DataLog2") + b"\n" + rest)
    return path


def _submit(path, project, capture, **params):
    with path.open("rb") as fh, capture(execute=False):
        job, created = ingest.ingest_submit(
            stream=fh, filename=path.name, project=project, params=params
        )
    assert created
    return _run_job(job.pk, capture)


@pytest.mark.parametrize("order", ["first-then-second", "second-then-first"])
@pytest.mark.django_db
def test_two_failing_logs_rechecked_in_any_order_take_the_run_back(
    order, fixture_path, tmp_path, project, labview_run, django_capture_on_commit_callbacks
):
    from depositions.aldlogs.services import run_log_recheck

    capture = django_capture_on_commit_callbacks
    _complete(labview_run)
    first = _ingest(fixture_path, project, f"{LABVIEW}_DataLog.txt", capture, run="LV-RUN1")
    second = _submit(_second_copy(fixture_path, tmp_path), project, capture, run="LV-RUN1")
    assert first.result["verdict"] == second.result["verdict"] == "fail"
    labview_run.refresh_from_db()
    assert labview_run.status == "failed_qc" and labview_run.qc_failed_by_log

    dep.tool_update(tool=labview_run.tool, check_thresholds={"purge_tolerance_s": 10.5})
    with capture(execute=False):
        assert set(run_log_recheck(run=labview_run)) == {first.pk, second.pk}
    jobs = [first, second] if order == "first-then-second" else [second, first]
    _run_job(jobs[0].pk, capture)
    labview_run.refresh_from_db()
    assert labview_run.status == "failed_qc"  # the other log still fails
    _run_job(jobs[1].pk, capture)
    labview_run.refresh_from_db()
    assert labview_run.status == "completed" and not labview_run.qc_failed_by_log


@pytest.mark.django_db
def test_a_log_checked_while_running_fails_the_run_when_it_is_completed(
    fixture_path, project, labview_run, django_capture_on_commit_callbacks
):
    from depositions.aldlogs.services import run_log_recheck

    capture = django_capture_on_commit_callbacks
    job = _ingest(fixture_path, project, f"{LABVIEW}_DataLog.txt", capture, run="LV-RUN1")
    assert job.result["verdict"] == "fail"
    labview_run.refresh_from_db()
    assert labview_run.status == "running"
    run = _complete(labview_run)
    assert run.status == "failed_qc" and run.qc_failed_by_log
    assert "purge_length:TMA" in run.notes
    # a person confirms it: from then on it is their decision
    run = dep.run_qc_fail(run=run, reason="purges too short, SEM confirms")
    assert run.status == "failed_qc" and not run.qc_failed_by_log
    dep.tool_update(tool=run.tool, check_thresholds={"purge_tolerance_s": 10.5})
    with capture(execute=False):
        run_log_recheck(run=run)
    assert _run_job(job.pk, capture).result["verdict"] != "fail"
    run.refresh_from_db()
    assert run.status == "failed_qc"


@pytest.mark.django_db
def test_a_recheck_runs_the_parser_this_worker_has(
    fixture_path, project, labview_run, django_capture_on_commit_callbacks
):
    """A log read by an older parser version is checked again with the current one."""
    from depositions.aldlogs.services import run_log_recheck

    capture = django_capture_on_commit_callbacks
    job = _ingest(fixture_path, project, f"{LABVIEW}_DataLog.txt", capture, run="LV-RUN1")
    IngestionJob.objects.filter(pk=job.pk).update(parser_version="0.9.0")
    with capture(execute=False):
        assert run_log_recheck(run=labview_run) == [job.pk]
    done = _run_job(job.pk, capture)
    assert done.status == "succeeded", done.error
    assert done.parser_version != "0.9.0"
    assert RunLogFile.objects.get(pk=done.result["log_file"]).parser_version == done.parser_version


@pytest.mark.django_db
def test_a_corrected_summary_pushed_later_replaces_the_first(
    fixture_path, tmp_path, project, labview_run, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    text = (fixture_path / f"{LABVIEW}_Summary.txt").read_bytes()
    wrong = tmp_path / "wrong_Summary.txt"
    wrong.write_bytes(text.replace(b"154/154", b"100/154"))
    _submit(wrong, project, capture, run="LV-RUN1")
    _ingest(fixture_path, project, f"{LABVIEW}_Summary.txt", capture, run="LV-RUN1")
    job = _ingest(fixture_path, project, f"{LABVIEW}_DataLog.txt", capture, run="LV-RUN1")
    log_file = RunLogFile.objects.get(pk=job.result["log_file"])
    assert [c["file"] for c in log_file.metadata["companions"]] == [
        f"{LABVIEW}_Summary.txt".rsplit("/", 1)[-1]
    ]
    assert RunCheck.objects.get(log=log_file, name="run_completeness").status == "pass"


@pytest.mark.django_db
def test_a_recheck_asked_while_the_log_is_running_runs_once_more_after(
    fixture_path, project, labview_run, django_capture_on_commit_callbacks
):
    """The running job may have read the old thresholds: it is queued again when it ends."""
    from depositions.aldlogs.services import run_log_recheck

    capture = django_capture_on_commit_callbacks
    job = _ingest(fixture_path, project, f"{LABVIEW}_DataLog.txt", capture, run="LV-RUN1")
    IngestionJob.objects.filter(pk=job.pk).update(status="running")
    assert run_log_recheck(run=labview_run) == [job.pk]
    job.refresh_from_db()
    assert job.status == "running" and job.requeue_requested
    # the worker finishes that pass...
    IngestionJob.objects.filter(pk=job.pk).update(status="pending")
    with capture(execute=False) as callbacks:
        done = ingest.job_run(job_id=job.pk)
    # ...and the job is queued again at once, dispatched after commit
    assert done.status == "pending" and not done.requeue_requested and callbacks
    assert _run_job(job.pk, capture).status == "succeeded"


@pytest.mark.django_db
def test_the_sweep_measures_a_requeued_job_from_its_requeue(
    fixture_path, project, labview_run, django_capture_on_commit_callbacks, settings
):
    from datetime import timedelta

    from django.utils import timezone

    from depositions.aldlogs.services import run_log_recheck

    capture = django_capture_on_commit_callbacks
    job = _ingest(fixture_path, project, f"{LABVIEW}_DataLog.txt", capture, run="LV-RUN1")
    IngestionJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(days=1))
    with capture(execute=False):
        run_log_recheck(run=labview_run)
    job.refresh_from_db()
    stale = timezone.now() - timedelta(seconds=settings.LIMS_STUCK_AFTER_S)
    assert job.queued_at > stale  # not re-sent by the next sweep


@pytest.mark.django_db
def test_a_companion_stored_between_prepare_and_persist_is_merged_in_persist(
    fixture_path, project, labview_run, django_capture_on_commit_callbacks
):
    """Two-phase handler: prepare reads the companions without a lock; a companion committed
    before persist (its re-check finds the data log's job running and queues nothing) must
    still reach the data log's checks. Persist reads the inputs again under the run lock."""
    from django.db import transaction

    from depositions.aldlogs.services import ald_log_ingest, ald_log_prepare
    from lims.ingestion import storage
    from lims.ingestion.parsing import ParseContext
    from lims.ingestion.registry import get_parser

    capture = django_capture_on_commit_callbacks
    rel = f"{LABVIEW}_DataLog.txt"
    with (fixture_path / rel).open("rb") as fh, capture(execute=False):
        job, _ = ingest.ingest_submit(
            stream=fh, filename=rel.rsplit("/", 1)[-1], project=project, params={"run": "LV-RUN1"}
        )
    IngestionJob.objects.filter(pk=job.pk).update(status="running")  # the worker took it
    job.refresh_from_db()
    raw = job.raw_file
    data = get_parser(job.parser_name).parse(
        storage.absolute(raw.storage_path), ParseContext(filename=raw.original_name, size=raw.size)
    )
    prepared = ald_log_prepare(job=job, data=data)

    summary = _ingest(fixture_path, project, f"{LABVIEW}_Summary.txt", capture, run="LV-RUN1")
    assert summary.result["rechecks_queued"] == []  # the data log's job is running

    with transaction.atomic(), capture(execute=False):
        outcome = ald_log_ingest(job=job, prepared=prepared)
    assert outcome.result["checked_again_in_persist"] is True
    names = set(RunCheck.objects.filter(run=labview_run).values_list("name", flat=True))
    assert "temperature_setpoint:Furnace Temp" in names  # from the summary
    log = RunLogFile.objects.get(run=labview_run, parser_name="labview_datalog")
    assert [c["file"] for c in log.metadata["companions"]] == [summary.raw_file.original_name]

    # nothing changed since: the next pass keeps what prepare computed
    again = ald_log_prepare(job=job, data=data)
    with transaction.atomic(), capture(execute=False):
        outcome = ald_log_ingest(job=job, prepared=again)
    assert "checked_again_in_persist" not in outcome.result
    assert "temperature_setpoint:Furnace Temp" in set(
        RunCheck.objects.filter(run=labview_run).values_list("name", flat=True)
    )
