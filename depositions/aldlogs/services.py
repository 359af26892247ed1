"""ALD tool-log ingestion: store the log, find every pulse, check each run against its recipe.

The parsing, pulse detection and checks are pure (``parsers``, ``pulses``, ``checks`` beside
this module). This is the ``kind=ald_log`` ingest handler, in two phases, plus link, re-check
and the run page's upload:

- ``ald_log_prepare`` (outside any transaction, no locks): the series to Parquet; each run of
  the file (a segment: the whole log, or one session of a controller log appended session
  after session) resolved to a deposition run, merged with the run's companion files, its
  pulses detected and its checks run. It records what it read (:class:`Inputs`).
- ``ald_log_ingest`` (inside the job's short transaction): locks the runs involved, reads the
  inputs again and, when a companion, a link, thresholds or a calibration changed meanwhile,
  computes again (rare); then writes one ``RunLogSegment`` per segment, its ``PulseEvent`` and
  ``RunCheck`` rows (bulk) and emits each linked run's verdict. So the files of one run pushed
  in any order, by any number of workers, end with the same verdict.

A segment goes to the run named in the upload when the file is one run; otherwise, and for
the sessions of an appended log, to the run of the same tool whose window (started_at ..
ended_at, widened by :data:`LINK_TOLERANCE`) overlaps the session most; a person's link wins.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import IO, Any

import polars as pl
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from depositions import selectors
from depositions.aldlogs.checks import (
    FAIL,
    CheckReport,
    DoseContext,
    GpcReference,
    Thresholds,
    run_checks,
)
from depositions.aldlogs.parsers.labview import merge_labview
from depositions.aldlogs.parsers.types import AldLog, Channel, LogSegment
from depositions.aldlogs.parsers.types import PulseEvent as Pulse
from depositions.aldlogs.pulses import detect_pulses
from depositions.choices import RunStatus
from depositions.dose import LoadArea
from depositions.expansion import RecipeSpec
from depositions.models import (
    DepositionRun,
    PulseEvent,
    RunCheck,
    RunLogFile,
    RunLogSegment,
    Tool,
)
from depositions.services import run_start
from lims.events.services import event_emit
from lims.ingestion import storage
from lims.ingestion.parsing import ParseContext
from lims.ingestion.registry import IngestOutcome, get_parser
from lims.ingestion.services import ingest_submit, job_requeue
from lims.models import ColumnMapping, IngestionJob
from lims.selectors import scope_to_user

# How far a session may lie outside a run's recorded window and still be that run's: people
# enter start and end times by hand, the tool's clock is exact.
LINK_TOLERANCE = timedelta(minutes=15)
# How often persist re-reads the inputs when the runs to lock changed while it locked them.
_LOCK_ROUNDS = 3

COMPANION_PARSERS = (
    "labview_execution_table",
    "labview_execution_array",
    "labview_doses",
    "labview_summary",
)
# Data logs whose checks read the companions above (merge_labview).
COMPANION_READERS = ("labview_datalog",)
# Logs the tool appends to run after run: a later copy holds the earlier sessions again.
APPENDED_LOGS = ("controller_eventlog",)
Link = RunLogSegment.Link


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


# --- what the checks read ---------------------------------------------------------------------


def _source_map(tool: Tool) -> dict[str, str]:
    """Valve names the logs use (port label, log channel) -> the chemical on that port."""
    out: dict[str, str] = {}
    for port in tool.sources.all():
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


def _thresholds(tool: Tool | None) -> Thresholds:
    try:
        return Thresholds.from_dict(tool.check_thresholds if tool else None)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"the check thresholds of tool {tool} are invalid: {exc}") from exc


@dataclasses.dataclass(frozen=True)
class RunInputs:
    """What the checks of a run's segments read about the run (plan, ports, loads, companions)."""

    run: DepositionRun
    spec: RecipeSpec
    source_map: dict[str, str]
    dose: DoseContext
    gpc: GpcReference | None
    thresholds: Thresholds
    companions: tuple[RunLogFile, ...]  # oldest first: a later one of a kind replaces it

    def key(self) -> Any:
        return [
            self.run.pk,
            self.run.tool_id,
            self.spec.to_dict(),
            self.source_map,
            _jsonable(self.dose),
            _jsonable(self.gpc),
            self.thresholds.as_dict(),
            [(c.pk, c.parser_name, c.raw_file.sha256) for c in self.companions],
        ]


def _run_inputs(run: DepositionRun) -> RunInputs:
    run = DepositionRun.objects.select_related("tool", "recipe").get(pk=run.pk)
    companions = tuple(
        run.log_files.filter(parser_name__in=COMPANION_PARSERS)
        .select_related("raw_file")
        .order_by("created_at", "pk")
    )
    return RunInputs(
        run=run,
        spec=selectors.run_spec(run=run),
        source_map=_source_map(run.tool),
        dose=_dose_context(run),
        gpc=_reference_gpc(run),
        thresholds=_thresholds(run.tool),
        companions=companions,
    )


@dataclasses.dataclass(frozen=True)
class Inputs:
    """Everything a pass over one log read from the database: which run each segment goes to
    (and why), the runs' inputs, and the tool's for segments without a run. Two reads give the
    same verdicts when their keys are equal."""

    links: dict[int, tuple[int | None, str]]  # segment index -> (run pk, Link value)
    notes: list[str]
    runs: dict[int, RunInputs]
    tool_sources: dict[str, str]
    tool_thresholds: Thresholds

    def key(self) -> str:
        return json.dumps(
            [
                sorted(self.links.items()),
                [self.runs[pk].key() for pk in sorted(self.runs)],
                self.tool_sources,
                self.tool_thresholds.as_dict(),
            ],
            sort_keys=True,
            default=str,
        )


def _aware(iso: str | None) -> datetime | None:
    """An instrument time (naive: the lab's zone, settings.TIME_ZONE) as an aware datetime."""
    found = parse_datetime(iso) if iso else None
    if found is None:
        return None
    return timezone.make_aware(found) if timezone.is_naive(found) else found


def _window(run: DepositionRun) -> tuple[datetime, datetime] | None:
    """The run's recorded window (a run without an end is the moment it started)."""
    if run.started_at is None:
        return None
    return run.started_at, run.ended_at or run.started_at


def _match(part: LogSegment, run: DepositionRun) -> tuple[float, float] | None:
    """(seconds the session shares with the run's window, seconds between them); None when
    they are further apart than :data:`LINK_TOLERANCE` or the session has no time."""
    start, window = _aware(part.start_time), _window(run)
    if start is None or window is None:
        return None
    end = _aware(part.end_time) or start
    shared = (min(end, window[1]) - max(start, window[0])).total_seconds()
    gap = max(0.0, -shared)
    if gap > LINK_TOLERANCE.total_seconds():
        return None
    return max(0.0, shared), gap


def _by_time(
    part: LogSegment, candidates: Sequence[DepositionRun]
) -> tuple[DepositionRun | None, float, str]:
    """The run whose window shares most time with the session (then: the nearest one), and
    the gap between them; none when two runs are equally good."""
    scored = sorted(
        (
            (-found[0], found[1], run.pk, run)
            for run in candidates
            if (found := _match(part, run)) is not None
        ),
        key=lambda item: item[:3],
    )
    if not scored:
        return None, 0.0, ""
    best = scored[0]
    if len(scored) > 1 and abs(scored[1][0] - best[0]) < 1 and abs(scored[1][1] - best[1]) < 1:
        names = ", ".join(item[3].code for item in scored[:3])
        return None, 0.0, f"session {part.index} fits runs {names} equally well: link it by hand"
    return best[3], best[1], ""


def _assign_by_time(
    parts: Sequence[LogSegment], candidates: Sequence[DepositionRun]
) -> tuple[dict[int, DepositionRun], list[str]]:
    """Sessions to runs by time. A session goes to the run it shares most time with (then the
    nearest); a run takes every session that touches its window and, when none does, only the
    nearest one within :data:`LINK_TOLERANCE`: an aborted attempt minutes before a run's
    recorded start is not taken for the run."""
    best: dict[int, tuple[DepositionRun, float]] = {}
    notes: list[str] = []
    for part in parts:
        run, gap, note = _by_time(part, candidates)
        if note:
            notes.append(note)
        if run is not None:
            best[part.index] = (run, gap)
    touching = {run.pk for run, gap in best.values() if gap == 0}
    nearest: dict[int, tuple[float, int]] = {}
    for index, (run, gap) in best.items():
        if gap > 0 and run.pk not in touching and (gap, index) < nearest.get(run.pk, (gap + 1, 0)):
            nearest[run.pk] = (gap, index)
    chosen = {
        index: run
        for index, (run, gap) in best.items()
        if gap == 0 or nearest.get(run.pk, (0.0, -1))[1] == index
    }
    return chosen, notes


def _candidates(
    job: IngestionJob, tool: Tool | None, parts: Sequence[LogSegment]
) -> list[DepositionRun]:
    """The tool's runs with a recorded window near the file's sessions (one query)."""
    starts = [t for p in parts if (t := _aware(p.start_time)) is not None]
    ends = [_aware(p.end_time) or _aware(p.start_time) for p in parts if p.start_time]
    if tool is None or not starts:
        return []
    first, last = min(starts) - LINK_TOLERANCE, max(e for e in ends if e) + LINK_TOLERANCE
    return list(
        DepositionRun.objects.filter(
            project=job.project, tool=tool, started_at__isnull=False, started_at__lte=last
        ).filter(Q(ended_at__gte=first) | Q(ended_at__isnull=True, started_at__gte=first))
    )


def _inputs(
    job: IngestionJob, data: AldLog, parts: Sequence[LogSegment], log_file: RunLogFile | None
) -> Inputs:
    """Which run each segment belongs to, and what the checks will read (reads only)."""
    params = IngestionJob.objects.values_list("params", flat=True).get(pk=job.pk) or {}
    code = str(params.get("run") or "").strip()
    notes: list[str] = []
    named: DepositionRun | None = None
    if code:
        in_project = DepositionRun.objects.select_related("tool").filter(project=job.project)
        named = in_project.filter(code=code).first()
        if named is None:
            notes.append(f"run {code!r} not found in project {job.project}; link it by hand")
    tool = named.tool if named is not None else None
    if tool is None and job.instrument_id is not None:
        tool = Tool.objects.filter(instrument_id=job.instrument_id).first()
    hand: dict[int, int] = {}
    if log_file is not None and log_file.pk is not None:
        hand = dict(
            log_file.segments.filter(link=Link.HAND, run__isnull=False).values_list("index", "run")
        )
    runs_by_pk: dict[int, DepositionRun] = {}
    links: dict[int, tuple[int | None, str]] = {}
    for index, run_pk in hand.items():
        links[index] = (run_pk, Link.HAND.value)
    free = [part for part in parts if part.index not in hand]
    if named is not None:
        # the named run takes the file when it is one run, else the sessions in its window
        to_named = {p.index: named for p in free} if len(parts) == 1 else {}
        if len(parts) > 1:
            to_named, _ = _assign_by_time(free, [named])
        for index in to_named:
            links[index] = (named.pk, Link.UPLOAD.value)
            runs_by_pk[named.pk] = named
        free = [part for part in free if part.index not in to_named]
    others = [run for run in _candidates(job, tool, parts) if named is None or run.pk != named.pk]
    by_time, time_notes = _assign_by_time(free, others)
    notes += time_notes
    for part in free:
        found = by_time.get(part.index)
        links[part.index] = (found.pk, Link.TIME.value) if found else (None, "")
        if found is not None:
            runs_by_pk[found.pk] = found
    if named is not None and named.pk not in runs_by_pk and len(parts) > 1:
        # the run named with an appended log matches none of its sessions by time (no window
        # yet): it is the session the log is read as (the last one with valve commands)
        chosen = data.metadata.get("run_index")
        chosen = chosen if chosen in links else parts[-1].index
        if chosen not in hand:
            links[chosen] = (named.pk, Link.UPLOAD.value)
            notes.append(
                f"run {named.code} has no recorded window that overlaps a session of this log: "
                f"session {chosen} (the last one with valve commands) was taken for it"
            )
    run_pks = {pk for pk, _ in links.values() if pk is not None}
    runs = {pk: _run_inputs(runs_by_pk.get(pk) or DepositionRun(pk=pk)) for pk in run_pks}
    return Inputs(
        links=links,
        notes=notes,
        runs=runs,
        tool_sources=_source_map(tool) if tool else {},
        tool_thresholds=_thresholds(tool),
    )


# --- phase 1 (and its rare repeat in phase 2): pulses and checks ---------------------------------


def _with_companions(inputs: RunInputs, data: AldLog) -> tuple[AldLog, list[dict[str, str]]]:
    """Merge the run's stored LabVIEW companion files (execution table, doses, summary).

    Companions are re-read from their raw files (parsers are pure). One that arrives after the
    data log queues the data log's job again (:func:`_recheck_readers`), and persist compares
    the companions it finds with the ones prepare read, so the order in which an instrument
    pushes the files does not change the verdict.
    """
    if data.parser not in COMPANION_READERS or not inputs.companions:
        return data, []
    found: dict[str, Any] = {}
    used: list[dict[str, str]] = []
    for companion in inputs.companions:
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
    merged: AldLog = merge_labview(
        data,
        execution=found.get("labview_execution_table"),
        doses=found.get("labview_doses"),
        summary=found.get("labview_summary"),
        execution_array=found.get("labview_execution_array"),
    )
    return merged, used


@dataclasses.dataclass
class SegmentResult:
    """One segment checked: its (merged) log, pulses, report and the run it goes to."""

    part: LogSegment
    log: AldLog
    pulses: list[Pulse]
    report: CheckReport
    run_pk: int | None
    link: str
    companions: list[dict[str, str]]


def _check(parts: Sequence[LogSegment], inputs: Inputs) -> list[SegmentResult]:
    """Pulses and checks of every segment with what ``inputs`` says (no database access)."""
    out: list[SegmentResult] = []
    for part in parts:
        run_pk, link = inputs.links.get(part.index, (None, ""))
        run = inputs.runs.get(run_pk) if run_pk is not None else None
        log, used = _with_companions(run, part.log) if run else (part.log, [])
        thresholds = run.thresholds if run else inputs.tool_thresholds
        pulses = detect_pulses(
            log,
            source_map=(run.source_map if run else inputs.tool_sources) or None,
            options=thresholds.detection_options(),
        )
        # run_checks also fills each pulse's cycle/sub-cycle and dead flag: stored after.
        report = run_checks(
            log,
            pulses,
            run.spec if run else None,
            thresholds,
            dose_context=run.dose if run else None,
            reference_gpc=run.gpc if run else None,
        )
        out.append(SegmentResult(part, log, pulses, report, run_pk, link, used))
    return out


def _series(data: AldLog, parts: Sequence[LogSegment]) -> tuple[pl.DataFrame, list[Channel]]:
    """The file's series: one run as parsed; several stacked with a ``segment`` column, each
    on its own time axis (the pulses of a segment are on the same one)."""
    if len(parts) == 1:
        return parts[0].log.series, list(parts[0].log.channels)
    frames = [p.log.series.with_columns(pl.lit(p.index, pl.Int32).alias("segment")) for p in parts]
    channels: dict[str, Channel] = {}
    for part in parts:
        for channel in part.log.channels:
            channels.setdefault(channel.name, channel)
    return pl.concat(frames, how="diagonal_relaxed"), list(channels.values())


@dataclasses.dataclass
class PreparedLog:
    data: AldLog
    parts: list[LogSegment]
    series_path: str
    rows: int
    channels: list[Channel]
    inputs: Inputs
    results: list[SegmentResult]


@dataclasses.dataclass
class PreparedCompanion:
    data: Any


def ald_log_prepare(*, job: IngestionJob, data: Any) -> PreparedLog | PreparedCompanion:
    """Phase 1, outside any transaction: Parquet, segment -> run, pulses and checks."""
    if not isinstance(data, AldLog):
        return PreparedCompanion(data)
    parts = data.parts()
    series, channels = _series(data, parts)
    raw = job.raw_file
    rel = storage.series_relpath(
        raw.sha256, job.parser_name, job.parser_version, project_id=raw.project_id
    )
    path = storage.absolute(rel)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    series.write_parquet(tmp, compression="zstd")
    os.replace(tmp, path)
    log_file = RunLogFile.objects.filter(raw_file=job.raw_file_id).first()
    inputs = _inputs(job, data, parts, log_file)
    return PreparedLog(data, parts, rel, series.height, channels, inputs, _check(parts, inputs))


# --- phase 2: rows, verdicts, events ------------------------------------------------------------


def _lock_run(run: DepositionRun) -> DepositionRun:
    """Serialise the handlers of one run's files: a data log and a companion processed at the
    same time by two workers must not both miss each other."""
    # NO KEY: rows pointing at the run (loads, checks) can still be written meanwhile
    locked = DepositionRun.objects.select_for_update(no_key=True)
    return locked.select_related("tool", "recipe").get(pk=run.pk)


def _lock_runs(pks: Iterable[int]) -> None:
    """Row locks on several runs, in key order (two handlers never wait on each other)."""
    ordered = sorted(set(pks))
    if ordered:
        list(
            DepositionRun.objects.select_for_update(no_key=True)
            .filter(pk__in=ordered)
            .order_by("pk")
            .values_list("pk", flat=True)
        )


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


@transaction.atomic
def ald_log_ingest(
    *, job: IngestionJob, prepared: PreparedLog | PreparedCompanion
) -> IngestOutcome:
    """Phase 2 of the ``ald_log`` handler (registered in ``depositions.apps``)."""
    raw = job.raw_file
    log_file, _ = RunLogFile.objects.select_for_update().get_or_create(
        raw_file=raw,
        defaults={"project": job.project, "parser_name": job.parser_name},
    )
    # a link made while this job waited for the lock rewrote its run: read it fresh
    job.params = IngestionJob.objects.values_list("params", flat=True).get(pk=job.pk)
    log_file.job = job
    log_file.parser_name = job.parser_name
    log_file.parser_version = job.parser_version
    if isinstance(prepared, PreparedCompanion):
        return _persist_companion(job, log_file, prepared.data)
    return _persist_log(job, log_file, prepared)


def _persist_companion(job: IngestionJob, log_file: RunLogFile, data: Any) -> IngestOutcome:
    """A companion table (execution table, QCM doses, summary, controller recipe): kept with
    the run for people and for the checks of the run's data logs."""
    run, note = _run_for(job, log_file.run)
    if run is not None:
        run = _lock_run(run)
    log_file.run = run
    log_file.metadata = _jsonable(data)
    log_file.save()
    result: dict[str, Any] = {"log_file": log_file.pk, "run": run.code if run else None}
    if note:
        result["note"] = note
    result["companion"] = type(data).__name__
    if run is None:
        return IngestOutcome(status=IngestionJob.Status.NEEDS_LINKING, result=result)
    if log_file.parser_name in COMPANION_PARSERS:
        result["rechecks_queued"] = _recheck_readers(run)
    return IngestOutcome(status=IngestionJob.Status.SUCCEEDED, result=result)


def _fresh_inputs(job: IngestionJob, prepared: PreparedLog, log_file: RunLogFile) -> Inputs:
    """The inputs again, read under the locks of every run they name."""
    locked: set[int] = set()
    wanted = set(prepared.inputs.runs)
    for _ in range(_LOCK_ROUNDS):
        _lock_runs(wanted - locked)
        locked |= wanted
        inputs = _inputs(job, prepared.data, prepared.parts, log_file)
        wanted = set(inputs.runs)
        if wanted <= locked:
            return inputs
    raise ValidationError("the runs this log belongs to keep changing; run the job again")


def _persist_log(job: IngestionJob, log_file: RunLogFile, prepared: PreparedLog) -> IngestOutcome:
    inputs = _fresh_inputs(job, prepared, log_file)
    results = prepared.results
    recomputed = inputs.key() != prepared.inputs.key()
    if recomputed:
        # a companion, a link, thresholds or a calibration changed since prepare read them
        results = _check(prepared.parts, inputs)
    left = set(log_file.segments.exclude(run=None).values_list("run", flat=True))
    if log_file.run_id:
        left.add(log_file.run_id)
    linked = {r.run_pk for r in results if r.run_pk is not None}
    data = prepared.data
    first = results[0]
    # the log as a whole belongs to a run when all its linked sessions do
    log_file.run = inputs.runs[next(iter(linked))].run if len(linked) == 1 else None
    log_file.series_path = prepared.series_path
    log_file.row_count = prepared.rows
    log_file.sample_period_s = data.sample_period_s
    log_file.channels = [_jsonable(c) for c in prepared.channels]
    log_file.warnings = list(data.warnings)
    log_file.metadata = _jsonable(data.metadata)
    if len(results) == 1 and first.run_pk is not None:
        log_file.metadata = {
            **_jsonable(first.log.metadata),  # with what the companions added
            "companions": first.companions,
            "checks_skipped": first.report.skipped,
            "thresholds": first.report.thresholds,
        }
    log_file.save()
    log_file.segments.all().delete()  # their pulses and checks go with them
    PulseEvent.objects.filter(log=log_file).delete()
    RunCheck.objects.filter(log=log_file).delete()

    result: dict[str, Any] = {
        "log_file": log_file.pk,
        "run": log_file.run.code if log_file.run else None,
    }
    if inputs.notes:
        result["note"] = "; ".join(inputs.notes)
    if recomputed:
        result["checked_again_in_persist"] = True
    per_run: dict[int, list[tuple[RunLogSegment, SegmentResult]]] = {}
    summaries: list[dict[str, Any]] = []
    for res in results:
        segment = _store_segment(log_file, res, inputs)
        if res.run_pk is not None:
            per_run.setdefault(res.run_pk, []).append((segment, res))
        summaries.append(
            {
                "index": res.part.index,
                "start": res.part.start_time,
                "end": res.part.end_time,
                "run": inputs.runs[res.run_pk].run.code if res.run_pk else None,
                "link": res.link,
                "verdict": res.report.verdict,
                "pulses_per_source": segment.pulses_per_source,
            }
        )
    for run_pk in sorted(left - linked):
        _settle(DepositionRun.objects.select_for_update().get(pk=run_pk))
    pulses = [p for res in results for p in res.pulses]
    result["pulses"] = len(pulses)
    result["pulses_per_source"] = _count(pulses)
    if data.warnings:
        result["warnings"] = data.warnings[:20]
    if len(results) > 1:
        result["segments"] = summaries
    for run_pk, stored in per_run.items():
        result.update(
            _persist_run(inputs.runs[run_pk].run, log_file, stored, single=len(results) == 1)
        )
    status = IngestionJob.Status.SUCCEEDED if per_run else IngestionJob.Status.NEEDS_LINKING
    return IngestOutcome(status=status, result=result)


def _store_segment(log_file: RunLogFile, res: SegmentResult, inputs: Inputs) -> RunLogSegment:
    run = inputs.runs[res.run_pk].run if res.run_pk is not None else None
    report = res.report
    segment = RunLogSegment.objects.create(
        log=log_file,
        index=res.part.index,
        run=run,
        link=res.link,
        started_at=_aware(res.part.start_time),
        ended_at=_aware(res.part.end_time),
        rows=res.log.series.height,
        verdict=report.verdict,
        reasons=report.reasons,
        pulses_per_source=_count(res.pulses),
        checks=[_jsonable(c.as_dict()) for c in report.results],
        metadata={
            "run_info": _jsonable(res.log.metadata.get("run_info")),
            "companions": res.companions,
            "checks_skipped": report.skipped,
            "thresholds": report.thresholds,
            "checker_version": report.checker_version,
        },
        warnings=list(res.log.warnings),
    )
    _store_pulses(log_file, segment, run, res.pulses)
    if run is None:
        return segment
    if segment.started_at is not None and log_file.parser_name in APPENDED_LOGS:
        # a newer copy of an appended log holds this session again: it replaces the older one
        older = RunLogSegment.objects.filter(
            run=run, started_at=segment.started_at, log__parser_name=log_file.parser_name
        ).exclude(log=log_file)
        RunCheck.objects.filter(segment__in=older).delete()
        PulseEvent.objects.filter(segment__in=older).update(run=None)
        older.update(run=None, link=Link.SUPERSEDED)
    RunCheck.objects.bulk_create(
        RunCheck(
            run=run,
            log=log_file,
            segment=segment,
            name=check.name[:100],
            status=check.status,
            value=check.value,
            threshold=check.threshold,
            details=(f"[{check.subject}] " if check.subject else "") + check.details,
            checker_version=check.checker_version,
        )
        for check in report.results
    )
    return segment


def _persist_run(
    run: DepositionRun,
    log_file: RunLogFile,
    stored: list[tuple[RunLogSegment, SegmentResult]],
    *,
    single: bool,
) -> dict[str, Any]:
    """A run's share of the log: cycles and start from the log, its QC status, the event."""
    run = DepositionRun.objects.select_related("tool", "recipe").get(pk=run.pk)  # locked
    result: dict[str, Any] = {}
    supercycles = [
        p.supercycle for _, res in stored for p in res.pulses if p.supercycle is not None
    ]
    if supercycles and run.actual_cycles is None:
        # The log is the best witness of how many supercycles really ran.
        run.actual_cycles = max(supercycles) + 1
        run.save(update_fields=["actual_cycles", "updated_at"])
        result["actual_cycles_from_log"] = run.actual_cycles
    _start_from_log(run, stored[0][1].log, result)
    reports = [res.report for _, res in stored]
    failed = [r for r in reports if r.verdict == FAIL]
    result["run_status"] = _apply_verdict(run, failed)
    for segment, res in stored:
        report = res.report
        event_emit(
            topic="depositions.run.qc_failed"
            if report.verdict == FAIL
            else "depositions.run.qc_passed",
            payload={
                "run": run.code,
                "log": log_file.pk,
                "segment": segment.index,
                "verdict": report.verdict,
                "reasons": report.reasons,
                "failed_checks": [c.as_dict() for c in report.results if c.status == FAIL],
                "checker_version": report.checker_version,
            },
        )
    if single:
        report = reports[0]
        result.update(
            verdict=report.verdict,
            reasons=report.reasons,
            checks=len(report.results),
            checks_skipped=len(report.skipped),
        )
    return result


def _start_from_log(run: DepositionRun, data: AldLog, result: dict[str, Any]) -> None:
    """A planned run whose log arrives has run: it starts at the log's start time (naive
    instrument times are the lab's zone, settings.TIME_ZONE). Completing it stays a person's
    act: it consumes the loads and names the coated samples."""
    if run.status != RunStatus.PLANNED or not data.start_time:
        return
    started = _aware(data.start_time)
    if started is None:
        return
    run_start(run=run, started_at=started)
    run.refresh_from_db(fields=["status", "started_at"])
    result["run_started_from_log"] = started.isoformat()


def _apply_verdict(run: DepositionRun, failed: Sequence[CheckReport]) -> str:
    """A completed run whose log fails goes to failed QC (marked as the logs' doing); a run
    the logs failed goes back to completed once no check of any of its logs fails (new
    companion, thresholds, calibration). A person's QC failure is never undone."""
    if failed:
        if run.status == RunStatus.COMPLETED:
            run.status = RunStatus.FAILED_QC
            run.qc_failed_by_log = True
            reasons = [reason for report in failed for reason in report.reasons]
            run.notes = (run.notes + "\nfailed QC: " + "; ".join(reasons)).strip()
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


def _store_pulses(
    log_file: RunLogFile, segment: RunLogSegment, run: DepositionRun | None, pulses: list[Pulse]
) -> None:
    PulseEvent.objects.bulk_create(
        [
            PulseEvent(
                log=log_file,
                segment=segment,
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


def _count(pulses: Iterable[Pulse]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in pulses:
        key = p.source_label or p.source
        counts[key] = counts.get(key, 0) + 1
    return counts


# --- link, re-check, upload -------------------------------------------------------------------


def logs_of_run(run: DepositionRun) -> Q:
    """Tool logs of a run: linked as a whole, or holding one of its sessions."""
    return Q(run=run) | Q(segments__run=run)


@transaction.atomic
def run_log_link(
    *, log_file: RunLogFile, run: DepositionRun, segment: int | None = None
) -> list[int]:
    """Attach a log uploaded without (or with a wrong) run code to a run, and check it.

    A log of one run: the job's ``run`` parameter is rewritten too, so any later re-run
    resolves the same run. A log of several sessions: ``segment`` (its index) names the
    session, else the one whose time overlaps the run's window; the link is kept on the
    session and honoured by every later pass. Returns the ids of the jobs queued (the data
    log's own, or the run's data logs after a companion).
    """
    if run.project_id != log_file.project_id:
        raise ValidationError("the run belongs to another project than the log file")
    # the handler's lock order: log file, then run
    log_file = RunLogFile.objects.select_for_update().get(pk=log_file.pk)
    run = _lock_run(run)
    job = IngestionJob.objects.select_for_update().filter(pk=log_file.job_id or 0).first()
    segments = list(log_file.segments.order_by("index"))
    if len(segments) > 1:
        chosen = _session_for(segments, run, segment)
        RunLogSegment.objects.filter(pk=chosen.pk).update(run=run, link=Link.HAND)
        return [job.pk] if job is not None and job_requeue(job=job) else []
    log_file.run = run
    log_file.save(update_fields=["run"])
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


def _session_for(
    segments: Sequence[RunLogSegment], run: DepositionRun, index: int | None
) -> RunLogSegment:
    """The session of a many-session log a person links to ``run``."""
    if index is not None:
        found = next((s for s in segments if s.index == index), None)
        if found is None:
            raise ValidationError(f"the log holds sessions 0-{len(segments) - 1}, not {index}")
        return found
    window = _window(run)
    if window is not None:
        overlapping = [
            s
            for s in segments
            if s.started_at is not None
            and s.started_at <= window[1] + LINK_TOLERANCE
            and (s.ended_at or s.started_at) >= window[0] - LINK_TOLERANCE
        ]
        if len(overlapping) == 1:
            return overlapping[0]
    listed = "; ".join(
        f"{s.index}: {s.started_at:%Y-%m-%d %H:%M}" for s in segments[:10] if s.started_at
    )
    raise ValidationError(
        f"the log holds {len(segments)} sessions and no single one overlaps the window of run "
        f"{run.code}: name the session ({listed})"
    )


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
    logs = RunLogFile.objects.filter(logs_of_run(run)).exclude(series_path="").exclude(job=None)
    jobs = IngestionJob.objects.filter(pk__in=logs.values("job_id"))
    return [job.pk for job in jobs if job_requeue(job=job, after_running=True)]


def tool_runs_recheck(*, tool: Any, user: Any) -> list[int]:
    """Every logged run of a tool the user may see checked again (after new thresholds):
    a tool shared by several projects is re-checked only where the user works."""
    queued: list[int] = []
    runs = DepositionRun.objects.filter(tool=tool).filter(
        Q(log_files__isnull=False) | Q(log_segments__isnull=False)
    )
    for run in scope_to_user(runs.distinct(), user=user):
        queued += run_log_recheck(run=run)
    return queued
