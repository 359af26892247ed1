"""Ingestion: store bytes, find or create the job, run it, record the outcome.

One path for instruments (REST), people (browser form) and re-runs. Dedupe keys are the
unique constraints: ``RawFile.sha256`` and ``(raw_file, parser_name, parser_version)``.
"""

from __future__ import annotations

import logging
import time
from typing import IO, Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from lims.events.services import event_emit
from lims.ingestion import registry, storage
from lims.ingestion.parsing import ParseContext, ParseError
from lims.ingestion.registry import detect_parser, get_parser
from lims.ingestion.text import known_codec, stored_encoding
from lims.models import ColumnMapping, IngestionJob, Instrument, Project, RawFile
from lims.taskbase import TRANSIENT_ERRORS

log = logging.getLogger(__name__)

UNRECOGNISED = "unrecognised"
KINDS = ("cycler", "eis", "ald_log", "furnace_log")


def _job_payload(job: IngestionJob) -> dict[str, Any]:
    return {
        "job": job.pk,
        "raw_sha256": job.raw_file.sha256,
        "parser": job.parser_name,
        "parser_version": job.parser_version,
        "status": job.status,
        "project": job.project_id,
    }


def _dispatch(job_id: int) -> None:
    from lims.ingestion.tasks import ingest_job_run

    ingest_job_run.delay(job_id)


def ingest_submit(
    *,
    stream: IO[bytes],
    filename: str,
    project: Project,
    kind: str | None = None,
    params: dict[str, Any] | None = None,
    user: AbstractBaseUser | None = None,
    instrument: Instrument | None = None,
    content_type: str = "",
) -> tuple[IngestionJob, bool]:
    """Store an upload and return ``(job, created)``; identical bytes give the existing job."""
    if kind is not None and kind not in KINDS:
        raise ValidationError({"kind": f"unknown kind {kind!r}; expected one of {KINDS}"})
    params = dict(params or {})
    mapped = _mapped_parser(project=project, params=params, kind=kind)
    blob = storage.store_upload(stream)
    parser = mapped or detect_parser(blob.head, filename, kind)
    if parser is None:
        parser = _default_mapping(project=project, params=params, kind=kind, instrument=instrument)
    parser_name, parser_version = (parser.name, parser.version) if parser else (UNRECOGNISED, "0")
    with transaction.atomic():
        raw, _ = RawFile.objects.get_or_create(
            sha256=blob.sha256,
            defaults={
                "size": blob.size,
                "original_name": filename[:500],
                "content_type": content_type[:200],
                "encoding": stored_encoding(blob.head),
                "storage_path": blob.relpath,
                "project": project,
                "uploaded_by": user if user is not None and user.is_authenticated else None,
                "instrument": instrument,
            },
        )
        existing = raw.jobs.order_by("created_at").first()
        if existing is not None:
            return existing, False
        job, created = IngestionJob.objects.get_or_create(
            raw_file=raw,
            parser_name=parser_name,
            parser_version=parser_version,
            defaults={
                "kind": parser.kind if parser else (kind or ""),
                "project": raw.project,
                "params": params,
                "created_by": raw.uploaded_by,
                "instrument": instrument,
            },
        )
        if created:
            if instrument is not None:
                Instrument.objects.filter(pk=instrument.pk).update(last_file_at=timezone.now())
            event_emit(topic="lims.job.created", payload=_job_payload(job))
            transaction.on_commit(lambda: _dispatch(job.pk))
    return job, created


def _default_mapping(
    *, project: Project, params: dict[str, Any], kind: str | None, instrument: Instrument | None
) -> Any:
    """A file no parser recognises, from a source that has a saved map (an ALD tool's channel
    map): the first registered resolver returning one wins. Resolvers live in the domain apps
    (lims does not know what a tool is)."""
    for resolver in registry.mapping_resolvers():
        saved = resolver(project=project, params=params, kind=kind, instrument=instrument)
        if saved is not None:  # the map itself: it may belong to the tool's project
            params["metadata"] = {
                **(params.get("metadata") or {}),
                "column_mapping": saved.mapping,
                "column_mapping_name": saved.name,
            }
            return get_parser(saved.parser_name)
    return None


def _mapped_parser(*, project: Project, params: dict[str, Any], kind: str | None) -> Any:
    """Resolve ``metadata.column_mapping`` (a saved name or an inline dict) to its parser.

    The mapping itself is copied into the job's parameters: provenance for the numbers.
    """
    metadata = params.get("metadata")
    if not isinstance(metadata, dict) or "column_mapping" not in metadata:
        return None
    ref = metadata["column_mapping"]
    if isinstance(ref, str):
        saved = ColumnMapping.objects.filter(project=project, name=ref).first()
        if saved is None:
            raise ValidationError({"metadata": f"no saved column mapping named {ref!r}"})
        params["metadata"] = {
            **metadata,
            "column_mapping": saved.mapping,
            "column_mapping_name": saved.name,
        }
        return get_parser(saved.parser_name)
    if isinstance(ref, dict):
        if kind == "ald_log":
            return get_parser("generic_ald_log")
        return get_parser("generic") if kind in (None, "cycler") else None
    raise ValidationError({"metadata": "column_mapping must be a saved name or a mapping"})


def _finish(job: IngestionJob, *, status: str, error: str = "", result: dict[str, Any]) -> None:
    now = timezone.now()
    job.status = status
    job.error = error
    job.result = result
    job.progress = 100
    job.finished_at = now
    job.duration_s = (now - job.started_at).total_seconds() if job.started_at else None
    job.save(update_fields=["status", "error", "result", "progress", "finished_at", "duration_s"])
    topic = "lims.job.failed" if status == IngestionJob.Status.FAILED else "lims.job.finished"
    event_emit(topic=topic, payload={**_job_payload(job), "error": error, "result": result})


def job_progress(*, job_id: int, progress: int) -> None:
    IngestionJob.objects.filter(pk=job_id).update(progress=max(0, min(progress, 99)))


def job_run(*, job_id: int) -> IngestionJob | None:
    """Parse a job's raw file and hand it to its domain handler. Never raises for bad files."""
    with transaction.atomic():
        job = (
            IngestionJob.objects.select_for_update(skip_locked=True)
            .select_related("raw_file")
            .filter(pk=job_id, status=IngestionJob.Status.PENDING)
            .first()
        )
        if job is None:  # already taken, finished or gone: nothing to do (idempotent)
            return None
        job.status = IngestionJob.Status.RUNNING
        job.attempts += 1
        job.progress = 5
        job.started_at = timezone.now()
        job.error = ""
        job.save(update_fields=["status", "attempts", "progress", "started_at", "error"])

    raw = job.raw_file
    path = storage.absolute(raw.storage_path)
    started = time.monotonic()
    try:
        if job.parser_name == UNRECOGNISED:
            head = storage.read_head(raw.storage_path)
            raise ParseError(_unrecognised_message(head, job.kind))
        parser = get_parser(job.parser_name)
        if parser.version != job.parser_version:
            raise ParseError(
                f"job asks for parser {job.parser_name} {job.parser_version}, "
                f"this worker has {parser.version}; submit a re-run"
            )
        if not path.exists():
            raise ParseError("the stored raw file is missing from the store", location=str(path))
        ctx = ParseContext(
            filename=raw.original_name,
            size=raw.size,
            encoding=known_codec(raw.encoding),
            metadata=job.params.get("metadata") or {},
        )
        handler = registry.get_handler(parser.kind)
        data = parser.parse(path, ctx)
        job_progress(job_id=job.pk, progress=50)
        # Phase 1, outside any transaction: the slow part (series, summaries, checks) holds
        # no locks and no connection in a transaction.
        prepared = handler.prepare(job=job, data=data)
        prepared_s = time.monotonic() - started
        job_progress(job_id=job.pk, progress=90)
        # Phase 2: rows, records, events and the job's final status commit together.
        with transaction.atomic():
            outcome = handler.persist(job=job, prepared=prepared)
            outcome.result["parse_seconds"] = round(time.monotonic() - started, 3)
            outcome.result["phases_s"] = {
                "prepare": round(prepared_s, 3),
                "persist": round(time.monotonic() - started - prepared_s, 3),
            }
            _finish(job, status=outcome.status, result=outcome.result)
    except TRANSIENT_ERRORS:
        # Infrastructure hiccup, not a bad file: put the job back and let the task retry.
        IngestionJob.objects.filter(pk=job.pk).update(status=IngestionJob.Status.PENDING)
        raise
    except ParseError as exc:
        _fail(job, exc.describe(raw.original_name))
    except ValidationError as exc:
        _fail(job, f"{raw.original_name}: {'; '.join(exc.messages)}")
    except registry.NoHandler as exc:
        _fail(job, f"{raw.original_name}: {exc}")
    except Exception as exc:
        log.exception("ingestion job %s crashed", job.pk)
        _fail(job, f"{raw.original_name}: unexpected {type(exc).__name__} while ingesting: {exc}")
    if IngestionJob.objects.filter(pk=job.pk, requeue_requested=True).exists():
        job_requeue(job=job)
    job.refresh_from_db()
    return job


def _fail(job: IngestionJob, message: str) -> None:
    with transaction.atomic():
        _finish(job, status=IngestionJob.Status.FAILED, error=message, result={})


def _unrecognised_message(head: bytes, kind: str) -> str:
    if not head:
        return "the file is empty"
    what = f" as {kind}" if kind else ""
    preview = head[:16].hex(" ")
    return f"no parser recognises this file{what} (first bytes: {preview})"


def job_rerun(*, job: IngestionJob) -> IngestionJob:
    """Reset a finished job to pending and dispatch it again (handlers are idempotent)."""
    with transaction.atomic():
        if not job_requeue(job=job):
            raise ValidationError("this job is already queued or running")
    job.refresh_from_db()
    return job


def job_requeue(*, job: IngestionJob, after_running: bool = False) -> bool:
    """Queue a finished job again; False when there is nothing to add.

    A pending job will read the database as it is when it runs: nothing to add. A running one
    may already have read what changed (new thresholds): with ``after_running`` it is queued
    once more when it finishes (callers whose change the handler reads under a lock it holds,
    such as a run's companions, leave it alone).
    """
    with transaction.atomic():
        job = IngestionJob.objects.select_for_update().get(pk=job.pk)
        if job.status == IngestionJob.Status.PENDING:
            return False
        if job.status == IngestionJob.Status.RUNNING:
            if not after_running:
                return False
            job.requeue_requested = True
            job.save(update_fields=["requeue_requested"])
            return True
        _current_parser(job)
        job.status = IngestionJob.Status.PENDING
        job.progress = 0
        job.error = ""
        job.started_at = None
        job.finished_at = None
        job.queued_at = timezone.now()
        job.requeue_requested = False
        job.save(
            update_fields=[
                "status",
                "progress",
                "error",
                "started_at",
                "finished_at",
                "parser_version",
                "queued_at",
                "requeue_requested",
            ]
        )
        pk = job.pk
        transaction.on_commit(lambda: _dispatch(pk))
    return True


def _current_parser(job: IngestionJob) -> None:
    """A job queued again runs the parser this worker has: a re-check after an upgrade must
    not fail on the version it was first read with (the job's result records the new one)."""
    if job.parser_name == UNRECOGNISED:
        return
    try:
        version = get_parser(job.parser_name).version
    except ParseError:
        return  # the parser is gone: job_run says so
    taken = (
        IngestionJob.objects.filter(
            raw_file_id=job.raw_file_id, parser_name=job.parser_name, parser_version=version
        )
        .exclude(pk=job.pk)
        .exists()
    )
    if version != job.parser_version and not taken:
        job.parser_version = version
