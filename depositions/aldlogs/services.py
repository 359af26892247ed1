"""ALD tool-log ingestion: store the log, find every pulse, check the run against its recipe.

The parsing, pulse detection and checks are pure (``parsers``, ``pulses``, ``checks`` beside
this module); this service (the ingest handler, re-check and link) links
the result to a run, keeps the series as Parquet beside the raw file, writes one ``PulseEvent``
row per pulse and one ``RunCheck`` row per check (bulk), and emits the verdict.
"""

from __future__ import annotations

import dataclasses
import os
from typing import IO, Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from depositions import selectors
from depositions.aldlogs.checks import DoseContext, GpcReference, Thresholds, run_checks
from depositions.aldlogs.parsers.labview import merge_labview
from depositions.aldlogs.parsers.types import AldLog
from depositions.aldlogs.pulses import detect_pulses
from depositions.choices import RunStatus
from depositions.dose import LoadArea
from depositions.models import DepositionRun, PulseEvent, RunCheck, RunLogFile, Tool
from depositions.services import run_start
from lims.events.services import event_emit
from lims.ingestion import storage
from lims.ingestion.parsing import ParseContext
from lims.ingestion.registry import IngestOutcome, get_parser
from lims.ingestion.services import ingest_submit, job_requeue
from lims.models import ColumnMapping, IngestionJob
from lims.selectors import scope_to_user


def _jsonable(data: Any) -> Any:
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(data).items()}
    if isinstance(data, dict):
        return {str(k): _jsonable(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_jsonable(v) for v in data]
    if isinstance(data, str | int | float | bool) or data is None:
        return data
    return str(data)


def _source_map(run: DepositionRun) -> dict[str, str]:
    """Valve names the logs use (port label, log channel) -> the chemical on that port."""
    out: dict[str, str] = {}
    for port in run.tool.sources.all():
        if port.reactant:
            out[port.label] = port.reactant
            if port.log_channel:
                out[port.log_channel] = port.reactant
    return out


def _dose_context(run: DepositionRun) -> DoseContext:
    """Port calibrations and the product powder loads: what the dose-vs-surface check needs."""
    calibration = {
        port.reactant: float(port.dose_umol_per_pulse) if port.dose_umol_per_pulse else None
        for port in run.tool.sources.all()
        if port.reactant
    }
    loads = [
        LoadArea(
            label=load.sample.code,
            mass_g=float(load.mass_g) if load.mass_g is not None else None,
            bet_m2_g=float(load.bet_m2_g) if load.bet_m2_g is not None else None,
        )
        for load in run.loads.select_related("sample").filter(role="product")
    ]
    return DoseContext(dose_umol_per_pulse=calibration, loads=loads)


def _reference_gpc(run: DepositionRun) -> GpcReference | None:
    """The recipe's GPC when it has one sub-cycle with a GPC (QCM growth is checked against it)."""
    with_gpc = [sc for sc in run.recipe.subcycles.all() if sc.gpc_angstrom is not None]
    if len(with_gpc) != 1:
        return None
    sc = with_gpc[0]
    return GpcReference(
        gpc_min_angstrom=float(sc.gpc_angstrom),
        source=f"recipe {run.recipe.name} v{run.recipe.version}, sub-cycle {sc.name}",
        subcycle=sc.name,
    )


COMPANION_PARSERS = (
    "labview_execution_table",
    "labview_execution_array",
    "labview_doses",
    "labview_summary",
)
# Data logs whose checks read the companions above (merge_labview).
COMPANION_READERS = ("labview_datalog",)


def _with_companions(run: DepositionRun, data: AldLog) -> tuple[AldLog, list[dict[str, str]]]:
    """Merge the run's stored LabVIEW companion files (execution table, doses, summary).

    Companions are re-read from their raw files (parsers are pure). One that arrives after the
    data log queues the data log's job again (:func:`_recheck_readers`), so the order in which
    an instrument pushes the files does not change the verdict.
    """
    if data.parser not in COMPANION_READERS:
        return data, []
    found: dict[str, Any] = {}
    used: list[dict[str, str]] = []
    # oldest first: a corrected file pushed later replaces the earlier one of its kind
    companions = (
        run.log_files.filter(parser_name__in=COMPANION_PARSERS)
        .select_related("raw_file")
        .order_by("created_at", "pk")
    )
    for companion in companions:
        parser = get_parser(companion.parser_name)
        raw = companion.raw_file
        found[companion.parser_name] = parser.parse(
            storage.absolute(raw.storage_path),
            ParseContext(filename=raw.original_name, size=raw.size),
        )
        used = [u for u in used if u["parser"].split()[0] != parser.name]  # replaced
        used.append(
            {
                "file": raw.original_name,
                "sha256": raw.sha256,
                "parser": f"{parser.name} {parser.version}",
            }
        )
    if not found:
        return data, []
    merged: AldLog = merge_labview(
        data,
        execution=found.get("labview_execution_table"),
        doses=found.get("labview_doses"),
        summary=found.get("labview_summary"),
        execution_array=found.get("labview_execution_array"),
    )
    return merged, used


def _lock_run(run: DepositionRun) -> DepositionRun:
    """Serialise the handlers of one run's files: a data log and a companion processed at the
    same time by two workers must not both miss each other."""
    # NO KEY: rows pointing at the run (loads, checks) can still be written meanwhile
    locked = DepositionRun.objects.select_for_update(no_key=True)
    return locked.select_related("tool", "recipe").get(pk=run.pk)


def tool_log_mapping(
    *, project: Any, params: dict[str, Any], kind: str | None, instrument: Any
) -> ColumnMapping | None:
    """The saved channel map of the ALD tool a file comes from (its instrument token, else the
    run it names): how plain CSV/TSV tool logs are read (a registry mapping resolver).
    The map itself, not its name: it belongs to the tool's project, maybe not the upload's."""
    if kind not in (None, "ald_log"):
        return None
    tool = Tool.objects.filter(instrument=instrument).first() if instrument is not None else None
    if tool is None and params.get("run"):
        run = (
            DepositionRun.objects.select_related("tool")
            .filter(project=project, code=str(params["run"]).strip())
            .first()
        )
        tool = run.tool if run else None
    if tool is None or tool.log_mapping_id is None:
        return None
    return ColumnMapping.objects.get(pk=tool.log_mapping_id)


def _run_for(job: IngestionJob, linked: DepositionRun | None) -> tuple[DepositionRun | None, str]:
    """The run named in the upload, else the one the file was linked to by hand."""
    code = str((job.params or {}).get("run") or "").strip()
    if not code:
        return linked, ""
    run = DepositionRun.objects.filter(project=job.project, code=code).first()
    if run is None:
        return linked, f"run {code!r} not found in project {job.project}; link it by hand"
    return run, ""


def _recheck_readers(run: DepositionRun) -> list[int]:
    """Queue again the jobs of the run's data logs that read companions (after one arrived)."""
    jobs = IngestionJob.objects.filter(
        pk__in=run.log_files.filter(parser_name__in=COMPANION_READERS)
        .exclude(series_path="")
        .exclude(job=None)
        .values("job_id")
    )
    return [job.pk for job in jobs if job_requeue(job=job)]


def ald_log_prepare(*, job: IngestionJob, data: Any) -> Any:
    """First phase of the ``ald_log`` handler: nothing yet. Pulses and checks depend on the
    run's companions, read under the run lock in :func:`ald_log_ingest`."""
    return data


@transaction.atomic
def ald_log_ingest(*, job: IngestionJob, prepared: Any) -> IngestOutcome:
    """Second phase of the ``ald_log`` handler (registered in ``depositions.apps``)."""
    data = prepared
    raw = job.raw_file
    log_file, _ = RunLogFile.objects.select_for_update().get_or_create(
        raw_file=raw,
        defaults={"project": job.project, "parser_name": job.parser_name},
    )
    moved_from = log_file.run_id
    # a link made while this job waited for the lock rewrote its run: read it fresh
    job.params = IngestionJob.objects.values_list("params", flat=True).get(pk=job.pk)
    run, note = _run_for(job, log_file.run)
    if run is not None:
        run = _lock_run(run)
    log_file.run = run
    log_file.job = job
    log_file.parser_name = job.parser_name
    log_file.parser_version = job.parser_version
    result: dict[str, Any] = {"log_file": log_file.pk, "run": run.code if run else None}
    if note:
        result["note"] = note
    if not isinstance(data, AldLog):
        # A companion table (execution table, QCM doses, summary, controller recipe): kept
        # with the run for people and for the checks of the run's data logs.
        log_file.metadata = _jsonable(data)
        log_file.save()
        result["companion"] = type(data).__name__
        if run is None:
            return IngestOutcome(status=IngestionJob.Status.NEEDS_LINKING, result=result)
        if log_file.parser_name in COMPANION_PARSERS:
            result["rechecks_queued"] = _recheck_readers(run)
        return IngestOutcome(status=IngestionJob.Status.SUCCEEDED, result=result)

    rel = storage.series_relpath(raw.sha256, job.parser_name, job.parser_version)
    path = storage.absolute(rel)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    data.series.write_parquet(tmp, compression="zstd")
    os.replace(tmp, path)
    log_file.series_path = rel
    log_file.row_count = data.series.height
    log_file.sample_period_s = data.sample_period_s
    log_file.channels = [_jsonable(c) for c in data.channels]
    log_file.metadata = _jsonable(data.metadata)
    log_file.warnings = list(data.warnings)
    log_file.save()

    try:
        thresholds = Thresholds.from_dict(run.tool.check_thresholds if run else None)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"the check thresholds of tool {run.tool if run else '-'} are invalid: {exc}"
        ) from exc
    companions: list[dict[str, str]] = []
    if run is not None:
        # before detection: the companions can tell which valve carried which precursor
        data, companions = _with_companions(run, data)
    pulses = detect_pulses(
        data,
        source_map=_source_map(run) if run else None,
        options=thresholds.detection_options(),
    )
    report = None
    if run is not None:
        # run_checks also fills each pulse's cycle/sub-cycle and dead flag: save them after.
        report = run_checks(
            data,
            pulses,
            selectors.run_spec(run=run),
            thresholds,
            dose_context=_dose_context(run),
            reference_gpc=_reference_gpc(run),
        )
        log_file.metadata = {
            **_jsonable(data.metadata),  # with what the companions added
            "companions": companions,
            "checks_skipped": report.skipped,
            "thresholds": report.thresholds,
        }
        log_file.save(update_fields=["metadata"])
    _store_pulses(log_file, run, pulses)
    RunCheck.objects.filter(log=log_file).delete()
    if moved_from and moved_from != (run.pk if run else None):
        _settle(DepositionRun.objects.select_for_update().get(pk=moved_from))
    result["pulses"] = len(pulses)
    result["pulses_per_source"] = _count(pulses)
    if data.warnings:
        result["warnings"] = data.warnings[:20]
    if run is None or report is None:
        return IngestOutcome(status=IngestionJob.Status.NEEDS_LINKING, result=result)

    RunCheck.objects.bulk_create(
        RunCheck(
            run=run,
            log=log_file,
            name=check.name[:100],
            status=check.status,
            value=check.value,
            threshold=check.threshold,
            details=(f"[{check.subject}] " if check.subject else "") + check.details,
            checker_version=check.checker_version,
        )
        for check in report.results
    )
    supercycles = [p.supercycle for p in pulses if p.supercycle is not None]
    if supercycles and run.actual_cycles is None:
        # The log is the best witness of how many supercycles really ran.
        run.actual_cycles = max(supercycles) + 1
        run.save(update_fields=["actual_cycles", "updated_at"])
        result["actual_cycles_from_log"] = run.actual_cycles
    _start_from_log(run, data, result)
    result["run_status"] = _apply_verdict(run, report)
    passed = report.verdict != "fail"
    event_emit(
        topic="depositions.run.qc_passed" if passed else "depositions.run.qc_failed",
        payload={
            "run": run.code,
            "log": log_file.pk,
            "verdict": report.verdict,
            "reasons": report.reasons,
            "failed_checks": [c.as_dict() for c in report.results if c.status == "fail"],
            "checker_version": report.checker_version,
        },
    )
    result.update(
        verdict=report.verdict,
        reasons=report.reasons,
        checks=len(report.results),
        checks_skipped=len(report.skipped),
    )
    return IngestOutcome(status=IngestionJob.Status.SUCCEEDED, result=result)


def _start_from_log(run: DepositionRun, data: AldLog, result: dict[str, Any]) -> None:
    """A planned run whose log arrives has run: it starts at the log's start time (naive
    instrument times are the lab's zone, settings.TIME_ZONE). Completing it stays a person's
    act: it consumes the loads and names the coated samples."""
    if run.status != RunStatus.PLANNED or not data.start_time:
        return
    started = parse_datetime(data.start_time)
    if started is None:
        return
    if timezone.is_naive(started):
        started = timezone.make_aware(started)
    run_start(run=run, started_at=started)
    run.refresh_from_db(fields=["status", "started_at"])
    result["run_started_from_log"] = started.isoformat()


def _apply_verdict(run: DepositionRun, report: Any) -> str:
    """A completed run whose log fails goes to failed QC (marked as the logs' doing); a run
    the logs failed goes back to completed once no check of any of its logs fails (new
    companion, thresholds, calibration). A person's QC failure is never undone."""
    if report.verdict == "fail":
        if run.status == RunStatus.COMPLETED:
            run.status = RunStatus.FAILED_QC
            run.qc_failed_by_log = True
            run.notes = (run.notes + "\nfailed QC: " + "; ".join(report.reasons)).strip()
            run.save(update_fields=["status", "qc_failed_by_log", "notes", "updated_at"])
        return str(run.status)
    _settle(run)
    return str(run.status)


def _settle(run: DepositionRun) -> None:
    """Back to completed when the logs failed it and none of its checks fails any more."""
    if run.status != RunStatus.FAILED_QC or not run.qc_failed_by_log:
        return
    if RunCheck.objects.filter(run=run, status="fail").exists():
        return
    run.status = RunStatus.COMPLETED
    run.qc_failed_by_log = False
    run.notes = (run.notes + "\nQC re-check: no tool-log check fails any more").strip()
    run.save(update_fields=["status", "qc_failed_by_log", "notes", "updated_at"])


def _store_pulses(log_file: RunLogFile, run: DepositionRun | None, pulses: list[Any]) -> None:
    PulseEvent.objects.filter(log=log_file).delete()
    PulseEvent.objects.bulk_create(
        [
            PulseEvent(
                log=log_file,
                run=run,
                source=(p.source_label or p.source)[:60],
                channel=(p.channel or p.source)[:100],
                index=p.index,
                supercycle=p.supercycle,
                subcycle=p.subcycle or "",
                repetition=p.repetition,
                start_s=p.start_s,
                width_s=p.width_s,
                width_uncertainty_s=p.width_uncertainty_s,
                baseline=p.baseline,
                peak=p.peak,
                area=p.area,
                qcm_delta=p.qcm_delta,
                power_w=p.power_w,
                dead=bool(p.dead),
            )
            for p in pulses
        ],
        batch_size=2000,
    )


@transaction.atomic
def run_log_link(*, log_file: RunLogFile, run: DepositionRun) -> list[int]:
    """Attach a log uploaded without (or with a wrong) run code to a run, and check it.

    The job's ``run`` parameter is rewritten too, so any later re-run resolves the same run.
    Returns the ids of the jobs queued (the data log's own, or the run's data logs after a
    companion).
    """
    if run.project_id != log_file.project_id:
        raise ValidationError("the run belongs to another project than the log file")
    # the handler's lock order: log file, then run
    log_file = RunLogFile.objects.select_for_update().get(pk=log_file.pk)
    run = _lock_run(run)
    log_file.run = run
    log_file.save(update_fields=["run"])
    job = IngestionJob.objects.select_for_update().filter(pk=log_file.job_id or 0).first()
    if job is not None:
        job.params = {**(job.params or {}), "run": run.code}
        job.save(update_fields=["params"])
    if log_file.series_path:
        return [job.pk] if job is not None and job_requeue(job=job) else []
    if job is not None and job.status == IngestionJob.Status.NEEDS_LINKING:
        job.status = IngestionJob.Status.SUCCEEDED
        job.save(update_fields=["status"])
    if log_file.parser_name in COMPANION_PARSERS:
        return _recheck_readers(run)
    return []


def run_log_submit(
    *, run: DepositionRun, stream: IO[bytes], filename: str, user: Any, content_type: str = ""
) -> tuple[IngestionJob, bool]:
    """Upload one tool-log file for a run (the run page's form).

    Bytes already stored (the instrument pushed them without a run code) are not stored twice:
    their unlinked log is linked to this run instead.
    """
    job, created = ingest_submit(
        stream=stream,
        filename=filename,
        project=run.project,
        kind="ald_log",
        params={"run": run.code},
        user=user,
        content_type=content_type,
    )
    if not created:
        log_file = RunLogFile.objects.filter(raw_file=job.raw_file_id, run=None).first()
        if log_file is not None:
            run_log_link(log_file=log_file, run=run)
    return job, created


def run_log_recheck(*, run: DepositionRun) -> list[int]:
    """Check every data log of a run again (after new thresholds, a new calibration, a new
    checker): the logs' jobs are queued, so the worker does it the one way it always does; a
    job running right now runs once more when it finishes (it may have read the old values)."""
    jobs = IngestionJob.objects.filter(
        pk__in=run.log_files.exclude(series_path="").exclude(job=None).values("job_id")
    )
    return [job.pk for job in jobs if job_requeue(job=job, after_running=True)]


def tool_runs_recheck(*, tool: Any, user: Any) -> list[int]:
    """Every logged run of a tool the user may see checked again (after new thresholds):
    a tool shared by several projects is re-checked only where the user works."""
    queued: list[int] = []
    runs = DepositionRun.objects.filter(tool=tool, log_files__isnull=False).distinct()
    for run in scope_to_user(runs, user=user):
        queued += run_log_recheck(run=run)
    return queued


def _count(pulses: list[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in pulses:
        key = p.source_label or p.source
        counts[key] = counts.get(key, 0) + 1
    return counts
