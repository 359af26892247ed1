"""Furnace logs through the one ingestion path: upload, check against the anneal's plan, link.

A furnace log arrives like every raw file (``POST /api/v1/ingest/`` with ``kind=furnace_log``
and ``anneal=<code>``, or the anneal page, both through ``ingest_submit``); the worker parses
it with the registered ``furnace-csv`` parser and hands it to the handler below in two phases:
:func:`furnace_log_prepare` (outside any transaction) checks the series against the anneal's
planned dwells; :func:`furnace_log_persist` (one short transaction) stores the ``FurnaceLog``
with the plan it was checked against and emits ``depositions.post_treatment.log_checked``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import IO, Any

from django.core.exceptions import ValidationError
from django.db import transaction

from depositions.furnace import selectors
from depositions.furnace.checks import DEFAULT_TOLERANCE_K, furnace_log_check
from depositions.furnace.parser import FurnaceSeries
from depositions.furnace.profile import planned_profile
from depositions.models import FurnaceLog, PostTreatment
from depositions.qc import FAIL, PASS, WARN, CheckResult, overall_status
from lims.events.services import event_emit
from lims.ingestion.registry import IngestOutcome
from lims.ingestion.services import ingest_submit, job_requeue
from lims.models import IngestionJob

KIND = selectors.KIND


@dataclass(frozen=True)
class PreparedFurnaceLog:
    """What the slow phase found: the series, the anneal named and the checks against it."""

    series: FurnaceSeries
    tolerance_k: Decimal
    treatment_id: int | None
    plan: list[dict[str, Any]] = field(default_factory=list)
    results: list[CheckResult] = field(default_factory=list)
    note: str = ""


def _tolerance(job: IngestionJob) -> Decimal:
    """``metadata.tolerance_k`` of the upload (K, above zero), else the default 5 K."""
    metadata = (job.params or {}).get("metadata") or {}
    raw = metadata.get("tolerance_k") if isinstance(metadata, dict) else None
    if raw in (None, ""):
        return Decimal(str(DEFAULT_TOLERANCE_K))
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value <= 0 or value >= 10_000:
        shown = str(raw)[:40]
        raise ValidationError(f"metadata.tolerance_k: {shown!r} is not a temperature band in K > 0")
    return value.quantize(Decimal("0.01"))


def _treatment_for(job: IngestionJob) -> tuple[PostTreatment | None, str]:
    """The anneal named in the upload (``anneal=<code>``, in the job's project), and why not."""
    code = str((job.params or {}).get("anneal") or "").strip()
    if not code:
        return None, "no anneal named (anneal=<code>); link it on the anneal's page"
    found = PostTreatment.objects.filter(project=job.project_id, code=code).first()
    if found is None:
        return None, f"anneal {code!r} not found in project {job.project}; link it by hand"
    return found, ""


def _check(
    series: FurnaceSeries, treatment: PostTreatment, tolerance_k: Decimal
) -> tuple[list[dict[str, Any]], list[CheckResult]]:
    segments = list(treatment.segments.all())
    try:
        profile = planned_profile(
            selectors.segment_specs(segments), start_c=float(treatment.start_temperature_c)
        )
    except ValueError as exc:  # segments are validated when written; an old plan may not be
        raise ValidationError(f"the plan of anneal {treatment.code} is invalid: {exc}") from exc
    results = furnace_log_check(
        profile=profile,
        times_s=series.times_s,
        temperatures_c=series.temperatures_c,
        tolerance_k=float(tolerance_k),
    )
    if series.warnings:
        results.append(CheckResult("log_parse", WARN, None, None, "; ".join(series.warnings)))
    return selectors.plan_rows(segments), results


def furnace_log_prepare(*, job: IngestionJob, data: Any) -> PreparedFurnaceLog:
    """Phase 1, outside any transaction: check the log against the plan of the anneal named."""
    if not isinstance(data, FurnaceSeries):
        raise TypeError(f"the furnace-log handler got {type(data).__name__}, not FurnaceSeries")
    tolerance = _tolerance(job)
    treatment, note = _treatment_for(job)
    if treatment is None:
        return PreparedFurnaceLog(series=data, tolerance_k=tolerance, treatment_id=None, note=note)
    plan, results = _check(data, treatment, tolerance)
    return PreparedFurnaceLog(
        series=data, tolerance_k=tolerance, treatment_id=treatment.pk, plan=plan, results=results
    )


def furnace_log_persist(*, job: IngestionJob, prepared: PreparedFurnaceLog) -> IngestOutcome:
    """Phase 2, in the job's transaction: the log row (one per job: a re-run checks it again in
    place, the change log keeps the earlier result), and the event."""
    series = prepared.series
    result: dict[str, Any] = {
        "points": len(series.times_s),
        "time_column": series.time_column,
        "temperature_column": series.temperature_column,
        "encoding": series.encoding,
    }
    if prepared.treatment_id is None:
        result["note"] = prepared.note
        return IngestOutcome(status=IngestionJob.Status.NEEDS_LINKING, result=result)
    # The plan may have changed since phase 1 read it: under the anneal's lock, check the
    # plan stored with the log is the one in force (checking again is cheap and pure).
    treatment = (
        PostTreatment.objects.select_for_update(no_key=True)
        .select_related("project")
        .get(pk=prepared.treatment_id)
    )
    plan, results = prepared.plan, prepared.results
    if selectors.plan_rows(treatment.segments.all()) != plan:
        plan, results = _check(series, treatment, prepared.tolerance_k)
    overall = overall_status(results)
    log, _ = FurnaceLog.objects.update_or_create(
        job=job,
        defaults={
            "treatment": treatment,
            "raw_file": job.raw_file,
            "parser_version": f"{job.parser_name}-{job.parser_version}"[:20],
            "tolerance_k": prepared.tolerance_k,
            "points": len(series.times_s),
            "overall": overall,
            "checks": [r.as_dict() for r in results],
            "plan": plan,
            "attached_by": job.created_by,
        },
    )
    event_emit(
        topic="depositions.post_treatment.log_checked",
        payload={
            "post_treatment": treatment.code,
            "id": treatment.pk,
            "project": treatment.project_id,
            "status": treatment.status,
            "furnace_log": log.pk,
            "job": job.pk,
            "raw_sha256": job.raw_file.sha256,
            "overall": overall,
            "failed_checks": [r.as_dict() for r in results if r.status == FAIL],
        },
    )
    result.update(
        furnace_log=log.pk,
        anneal=treatment.code,
        overall=overall,
        checks=len(results),
        reasons=[
            f"{r.name}: {r.details}" for r in results if r.status == overall and overall != PASS
        ],
    )
    return IngestOutcome(status=IngestionJob.Status.SUCCEEDED, result=result)


def furnace_log_submit(
    *,
    treatment: PostTreatment,
    stream: IO[bytes],
    filename: str,
    user: Any,
    tolerance_k: Decimal | None = None,
    content_type: str = "",
) -> tuple[IngestionJob, bool]:
    """Upload one furnace log for an anneal (the anneal page's form): stored and queued like
    every raw file. Bytes already stored without an anneal are linked to this one instead."""
    params: dict[str, Any] = {"anneal": treatment.code}
    if tolerance_k is not None:
        params["metadata"] = {"tolerance_k": str(tolerance_k)}
    job, created = ingest_submit(
        stream=stream,
        filename=filename,
        project=treatment.project,
        kind=KIND,
        params=params,
        user=user,
        instrument=treatment.furnace,
        content_type=content_type,
    )
    unlinked = selectors.unlinked_furnace_jobs(project=treatment.project_id)
    if not created and unlinked.filter(pk=job.pk).exists():
        furnace_log_link(job=job, treatment=treatment)
    return job, created


@transaction.atomic
def furnace_log_link(*, job: IngestionJob, treatment: PostTreatment) -> bool:
    """Check a furnace log read without (or with a wrong) anneal code against this anneal.

    The job's ``anneal`` parameter is rewritten, so a later re-run resolves the same anneal;
    the job is queued again (True when it was). A log already checked against another anneal
    stays there: a raw file is one anneal's log.
    """
    job = IngestionJob.objects.select_for_update().get(pk=job.pk)
    if job.kind != KIND:
        raise ValidationError(f"job {job.pk} is a {job.kind or 'unrecognised'} file")
    if job.project_id != treatment.project_id:
        raise ValidationError("the anneal belongs to another project than the log")
    checked = FurnaceLog.objects.filter(job=job).exclude(treatment=treatment).first()
    if checked is not None:
        raise ValidationError(f"this log is already checked against anneal {checked.treatment}")
    job.params = {**(job.params or {}), "anneal": treatment.code}
    job.save(update_fields=["params"])
    return job_requeue(job=job, after_running=True)


def furnace_log_recheck(*, treatment: PostTreatment) -> list[int]:
    """Check the anneal's logs again (after a plan edit): their jobs are queued, so the worker
    does it the one way it always does."""
    jobs = IngestionJob.objects.filter(furnace_log__treatment=treatment)
    return [job.pk for job in jobs if job_requeue(job=job, after_running=True)]
