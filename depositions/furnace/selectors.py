"""Reads of the furnace side: an anneal's plan as the pure checker sees it, its logs and the
furnace-log jobs not checked against it (yet)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import QuerySet

from depositions.filtersets import FurnaceLogFilterSet
from depositions.furnace.profile import Profile, SegmentSpec, planned_profile
from depositions.models import AnnealSegment, FurnaceLog, PostTreatment
from lims.models import IngestionJob
from lims.selectors import scope_to_user

KIND = "furnace_log"


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def segment_specs(rows: Iterable[AnnealSegment]) -> list[SegmentSpec]:
    return [
        SegmentSpec(
            kind=r.kind,
            target_c=float(r.target_c),
            rate_k_per_min=_float(r.rate_k_per_min),
            duration_min=_float(r.duration_min),
        )
        for r in sorted(rows, key=lambda r: r.order)
    ]


def treatment_profile(*, treatment: PostTreatment) -> Profile:
    return planned_profile(
        segment_specs(treatment.segments.all()),
        start_c=float(treatment.start_temperature_c),
    )


def plan_rows(segments: Iterable[AnnealSegment]) -> list[dict[str, Any]]:
    """The segments as stored with a log: what it was checked against (JSON-safe)."""
    return [
        {
            "kind": s.kind,
            "target_c": str(s.target_c),
            "rate_k_per_min": None if s.rate_k_per_min is None else str(s.rate_k_per_min),
            "duration_min": None if s.duration_min is None else str(s.duration_min),
        }
        for s in sorted(segments, key=lambda s: s.order)
    ]


def furnace_log_list(*, user: Any, filters: dict[str, Any] | None = None) -> QuerySet[FurnaceLog]:
    qs = FurnaceLog.objects.select_related("treatment", "raw_file", "attached_by", "job")
    qs = scope_to_user(qs, user=user, field="treatment__project")
    return FurnaceLogFilterSet(filters or {}, queryset=qs.order_by("-created_at")).qs


def treatment_logs(*, treatment: PostTreatment) -> QuerySet[FurnaceLog]:
    return treatment.furnace_logs.select_related("raw_file", "job").order_by("-created_at")


def treatment_pending_jobs(*, treatment: PostTreatment) -> QuerySet[IngestionJob]:
    """Furnace-log jobs naming this anneal that have no checked log (yet): queued, running,
    failed (with the file's error) or waiting for a link."""
    return (
        IngestionJob.objects.filter(
            project=treatment.project_id,
            kind=KIND,
            params__anneal=treatment.code,
            furnace_log__isnull=True,
        )
        .select_related("raw_file")
        .order_by("-created_at")
    )


def unlinked_furnace_jobs(*, project: Any) -> QuerySet[IngestionJob]:
    """Furnace logs of a project read without an anneal to check them against (or with an
    anneal code that did not exist): what the anneal page offers to link."""
    return (
        IngestionJob.objects.filter(
            project=project,
            kind=KIND,
            status=IngestionJob.Status.NEEDS_LINKING,
            furnace_log__isnull=True,
        )
        .select_related("raw_file")
        .order_by("-created_at")
    )
