"""ALD tool-log ingestion: store the log, find every pulse, check the run against its recipe.

The parsing, pulse detection and checks are pure (``depositions.aldlogs``); this service links
the result to a run, keeps the series as Parquet beside the raw file, writes one ``PulseEvent``
row per pulse and one ``RunCheck`` row per check (bulk), and emits the verdict.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from django.db import transaction

from depositions import selectors
from depositions.aldlogs import (
    DoseContext,
    GpcReference,
    Thresholds,
    detect_pulses,
    merge_labview,
    run_checks,
)
from depositions.aldlogs.types import AldLog
from depositions.choices import RunStatus
from depositions.dose import LoadArea
from depositions.models import DepositionRun, PulseEvent, RunCheck, RunLogFile
from lims.events.services import event_emit
from lims.ingestion import storage
from lims.ingestion.base import ParseContext, get_parser
from lims.ingestion.services import IngestOutcome
from lims.models import IngestionJob


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


def _with_companions(run: DepositionRun, data: AldLog) -> AldLog:
    """Merge the run's stored LabVIEW companion files (execution table, doses, summary).

    Companions uploaded before the data log are re-read from their raw files (parsers are pure);
    one uploaded after it is kept with the run and used when the data log is re-run.
    """
    if data.parser != "labview_datalog":
        return data
    found: dict[str, Any] = {}
    for companion in run.log_files.filter(
        parser_name__in=["labview_execution_table", "labview_doses", "labview_summary"]
    ).select_related("raw_file"):
        parser = get_parser(companion.parser_name)
        raw = companion.raw_file
        found[companion.parser_name] = parser.parse(
            storage.absolute(raw.storage_path),
            ParseContext(filename=raw.original_name, size=raw.size),
        )
    if not found:
        return data
    merged: AldLog = merge_labview(
        data,
        execution=found.get("labview_execution_table"),
        doses=found.get("labview_doses"),
        summary=found.get("labview_summary"),
    )
    return merged


def _run_for(job: IngestionJob) -> DepositionRun | None:
    code = str((job.params or {}).get("run") or "").strip()
    if not code:
        return None
    return (
        DepositionRun.objects.select_related("tool", "recipe")
        .filter(project=job.project, code=code)
        .first()
    )


@transaction.atomic
def ald_log_ingest(*, job: IngestionJob, data: Any) -> IngestOutcome:
    """The ingestion handler for ``kind=ald_log`` (settings.LIMS_INGEST_HANDLERS)."""
    raw = job.raw_file
    run = _run_for(job)
    note = ""
    if (job.params or {}).get("run") and run is None:
        note = f"run {job.params['run']!r} not found in project {job.project}; link it by hand"
    log_file, _ = RunLogFile.objects.update_or_create(
        raw_file=raw,
        defaults={
            "run": run,
            "project": job.project,
            "job": job,
            "parser_name": job.parser_name,
            "parser_version": job.parser_version,
        },
    )
    result: dict[str, Any] = {"log_file": log_file.pk, "run": run.code if run else None}
    if not isinstance(data, AldLog):
        # A companion table (execution table, QCM doses, summary, controller recipe): kept
        # with the run for people and later checks, no series of its own.
        log_file.metadata = _jsonable(data)
        log_file.save(update_fields=["metadata"])
        result["companion"] = type(data).__name__
        status = IngestionJob.Status.SUCCEEDED if run else IngestionJob.Status.NEEDS_LINKING
        return IngestOutcome(status=status, result=result | ({"note": note} if note else {}))

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

    thresholds = Thresholds.from_dict(run.tool.check_thresholds or {}) if run else Thresholds()
    pulses = detect_pulses(
        data,
        source_map=_source_map(run) if run else None,
        options=thresholds.detection_options(),
    )
    report = None
    if run is not None:
        data = _with_companions(run, data)
        # run_checks also fills each pulse's cycle/sub-cycle and dead flag: save them after.
        report = run_checks(
            data,
            pulses,
            selectors.run_spec(run=run),
            thresholds,
            dose_context=_dose_context(run),
            reference_gpc=_reference_gpc(run),
        )
        log_file.metadata = {**log_file.metadata, "checks_skipped": report.skipped}
        log_file.save(update_fields=["metadata"])
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
                dead=bool(p.dead),
            )
            for p in pulses
        ],
        batch_size=2000,
    )
    result["pulses"] = len(pulses)
    result["pulses_per_source"] = _count(pulses)
    if data.warnings:
        result["warnings"] = data.warnings[:20]
    if run is None or report is None:
        if note:
            result["note"] = note
        return IngestOutcome(status=IngestionJob.Status.NEEDS_LINKING, result=result)

    RunCheck.objects.filter(run=run, log=log_file).delete()
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
    if report.verdict == "fail" and run.status == RunStatus.COMPLETED:
        run.status = RunStatus.FAILED_QC
        run.notes = (run.notes + "\nfailed QC: " + "; ".join(report.reasons)).strip()
        run.save(update_fields=["status", "notes", "updated_at"])
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


def _count(pulses: list[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in pulses:
        key = p.source_label or p.source
        counts[key] = counts.get(key, 0) + 1
    return counts


def run_trace(*, run: DepositionRun, max_points: int = 5000) -> dict[str, Any] | None:
    """Chamber pressure of the run's newest data log (downsampled for display, never for checks)
    with every pulse marked by source."""
    import polars as pl

    log = run.log_files.exclude(series_path="").order_by("-created_at").first()
    if log is None:
        return None
    pressure = next((c for c in log.channels if c.get("role") == "pressure"), None)
    temps = [c["name"] for c in log.channels if c.get("role") == "temperature"][:4]
    qcm = next((c["name"] for c in log.channels if c.get("role") == "qcm_mass"), None)
    columns = ["time_s"] + ([pressure["name"]] if pressure else []) + temps + ([qcm] if qcm else [])
    frame = pl.scan_parquet(storage.absolute(log.series_path)).select(columns).collect()
    step = max(1, -(-frame.height // max_points))  # ceil: never more than max_points
    frame = frame.gather_every(step)
    pulses = list(
        log.pulses.order_by("start_s").values(
            "source", "index", "start_s", "width_s", "peak", "baseline", "dead"
        )
    )
    return {
        "time_s": frame["time_s"].to_list(),
        "pressure": frame[pressure["name"]].to_list() if pressure else None,
        "pressure_name": pressure["name"] if pressure else None,
        "temperatures": {name: frame[name].to_list() for name in temps},
        "qcm": frame[qcm].to_list() if qcm else None,
        "qcm_name": qcm,
        "pulses": pulses,
        "downsampled_every": step,
    }


def run_pulse_summary(*, run: DepositionRun) -> list[dict[str, Any]]:
    from django.db.models import Avg, Count, Q

    return list(
        PulseEvent.objects.filter(run=run)
        .values("source")
        .annotate(
            count=Count("pk"),
            dead=Count("pk", filter=Q(dead=True)),
            mean_width_s=Avg("width_s"),
            mean_peak=Avg("peak"),
        )
        .order_by("source")
    )


def tool_overview(*, tool: Any) -> dict[str, Any]:
    """A tool's recent runs with their QC verdicts, and each bottle's pulse amplitude per run."""
    from django.db.models import Avg, Count, F, Q

    from depositions.models import RunPrecursor

    runs = list(
        DepositionRun.objects.filter(tool=tool)
        .select_related("recipe")
        .annotate(
            fails=Count("checks", filter=Q(checks__status="fail")),
            warns=Count("checks", filter=Q(checks__status="warn")),
            n_checks=Count("checks"),
        )
        .order_by("-created_at")[:50]
    )
    amplitude = {
        (row["run_id"], row["source"]): row["amp"]
        for row in PulseEvent.objects.filter(run__tool=tool, peak__isnull=False)
        .values("run_id", "source")
        .annotate(amp=Avg(F("peak") - F("baseline")))
    }
    bottles: dict[str, list[dict[str, Any]]] = {}
    for use in (
        RunPrecursor.objects.filter(run__tool=tool)
        .select_related("run", "tool_source", "precursor_lot__chemical")
        .order_by("run__started_at", "run__created_at")
    ):
        label = use.tool_source.reactant or use.tool_source.label
        bottles.setdefault(str(use.precursor_lot), []).append(
            {
                "run": use.run.code,
                "port": use.tool_source.label,
                "amplitude_torr": amplitude.get((use.run_id, label)),
            }
        )
    for run in runs:
        run.verdict = (  # type: ignore[attr-defined]
            "no log"
            if not run.n_checks
            else "fail"
            if run.fails
            else "warn"
            if run.warns
            else "pass"
        )
    return {"runs": runs, "bottles": bottles}
