"""What the run, tool and list pages show of the tool logs (reads only)."""

from __future__ import annotations

from typing import Any

import polars as pl
from django.db.models import Avg, Count, F, Q

from depositions.models import (
    DepositionRun,
    PulseEvent,
    RunLogFile,
    RunLogSegment,
    RunPrecursor,
)
from depositions.selectors import with_qc
from lims.ingestion import storage
from lims.selectors import scope_to_user


def run_segments(*, run: DepositionRun) -> list[RunLogSegment]:
    """The parts of tool logs that belong to the run (a whole data log, or one session of an
    appended controller log), newest log first."""
    return list(
        RunLogSegment.objects.filter(run=run)
        .select_related("log__raw_file")
        .annotate(sessions=Count("log__segments"))
        .order_by("-log__created_at", "-index")
    )


def run_log_files(*, run: DepositionRun) -> list[RunLogFile]:
    """The tool logs of a run: linked as a whole, or holding one of its sessions."""
    return list(
        RunLogFile.objects.filter(Q(run=run) | Q(segments__run=run))
        .distinct()
        .select_related("raw_file", "job")
        .order_by("-created_at")
    )


def run_trace(*, run: DepositionRun, max_points: int = 5000) -> dict[str, Any] | None:
    """Chamber pressure of the run's newest data-log segment (downsampled for display, never
    for checks) with every pulse of that segment marked by source."""
    segment = (
        RunLogSegment.objects.filter(run=run)
        .exclude(log__series_path="")
        .select_related("log")
        .order_by("-log__created_at", "-index")
        .first()
    )
    if segment is None:
        return None
    log = segment.log
    pressure = next((c for c in log.channels if c.get("role") == "pressure"), None)
    temps = [c["name"] for c in log.channels if c.get("role") == "temperature"][:4]
    qcm = next((c["name"] for c in log.channels if c.get("role") == "qcm_mass"), None)
    plasma = next(
        (
            c["name"]
            for c in log.channels
            if c.get("role") == "power" and segment.pulses.filter(channel=c["name"]).exists()
        ),
        None,
    )
    columns = ["time_s"] + ([pressure["name"]] if pressure else []) + temps
    columns += [c for c in (qcm, plasma) if c]
    scan = pl.scan_parquet(storage.absolute(log.series_path))
    if "segment" in scan.collect_schema().names():  # a log of several sessions
        scan = scan.filter(pl.col("segment") == segment.index)
    frame = scan.select(columns).collect()
    step = max(1, -(-frame.height // max_points))  # ceil: never more than max_points
    frame = frame.gather_every(step)
    pulses = list(
        segment.pulses.order_by("start_s").values(
            "source", "index", "start_s", "width_s", "peak", "baseline", "dead", "power_w"
        )
    )
    return {
        "time_s": frame["time_s"].to_list(),
        "pressure": frame[pressure["name"]].to_list() if pressure else None,
        "pressure_name": pressure["name"] if pressure else None,
        "temperatures": {name: frame[name].to_list() for name in temps},
        "qcm": frame[qcm].to_list() if qcm else None,
        "qcm_name": qcm,
        "power": frame[plasma].to_list() if plasma else None,
        "power_name": plasma,
        "pulses": pulses,
        "downsampled_every": step,
        "log": log.pk,
        "segment": segment.index,
    }


def run_pulse_summary(*, run: DepositionRun) -> list[dict[str, Any]]:
    return list(
        PulseEvent.objects.filter(run=run)
        .values("source")
        .annotate(
            count=Count("pk"),
            dead=Count("pk", filter=Q(dead=True)),
            mean_width_s=Avg("width_s"),
            mean_peak=Avg("peak"),
            mean_power_w=Avg("power_w"),
        )
        .order_by("source")
    )


def tool_overview(*, tool: Any, user: Any) -> dict[str, Any]:
    """A tool's recent runs with their QC verdicts, and each bottle's pulse amplitude per run."""
    runs = list(
        with_qc(scope_to_user(DepositionRun.objects.filter(tool=tool), user=user))
        .select_related("recipe")
        .order_by("-created_at")[:50]
    )
    amplitude = {
        (row["run_id"], row["source"]): row["amp"]
        for row in scope_to_user(
            PulseEvent.objects.filter(run__tool=tool, peak__isnull=False),
            user=user,
            field="run__project",
        )
        .values("run_id", "source")
        .annotate(amp=Avg(F("peak") - F("baseline")))
    }
    bottles: dict[str, list[dict[str, Any]]] = {}
    for use in (
        scope_to_user(RunPrecursor.objects.filter(run__tool=tool), user=user, field="run__project")
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
    return {"runs": runs, "bottles": bottles}
