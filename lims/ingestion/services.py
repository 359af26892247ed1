"""Ingestion: store bytes, find or create the job, run it, record the outcome.

One path for instruments (REST), people (browser form) and re-runs. Dedupe keys are the
unique constraints: ``(RawFile.project, RawFile.sha256)`` and ``(raw_file, parser_name,
parser_version)``; the blob itself is shared by every project holding the same bytes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import IO, Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from lims.changelog import atomic_chain_at_end
from lims.events.services import event_emit
from lims.fields import reject_nul
from lims.ingestion import lease, registry, storage
from lims.ingestion.errors import quote
from lims.ingestion.parsing import ParseContext, ParseError
from lims.ingestion.registry import detect_parser, get_parser
from lims.ingestion.text import known_codec, stored_encoding
from lims.models import ColumnMapping, IngestionJob, Instrument, Project, RawFile
from lims.services import stamp_recent
from lims.taskbase import TRANSIENT_ERRORS, enqueue

log = logging.getLogger(__name__)

UNRECOGNISED = "unrecognised"
KINDS = ("cycler", "eis", "ald_log", "furnace_log")
# The optional fields of an upload, the same for REST and the browser form: the job's params.
UPLOAD_FIELDS = ("cell", "sample", "temperature_c", "run", "anneal", "metadata")
# A temperature outside this range is a typo or a placeholder (Gamry writes -327.67 °C when no
# probe is connected), not a measurement.
TEMPERATURE_RANGE_C = (-273.15, 2000.0)


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
    """Send the job's task; a broker fault is logged, never raised (``taskbase.enqueue``):
    the job is committed, the upload is answered 202 and the sweep sends it later."""
    from lims.ingestion.tasks import ingest_job_run

    enqueue(ingest_job_run, job_id)


def upload_params(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The job parameters of an upload: its UPLOAD_FIELDS that were given (not empty).

    The REST endpoint and the browser form both call this and then ``ingest_submit``, which
    checks them (``_check_params``): one set of rules and messages for both.
    """
    return {k: fields[k] for k in UPLOAD_FIELDS if fields.get(k) not in (None, "")}


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
    """Store an upload and return ``(job, created)``.

    The same bytes again in the same project give that project's job, never another
    project's (whether the caller may see that job is the caller's to check: an instrument
    token sees only its own jobs, ``selectors.job_list``).
    """
    # before anything is stored: PostgreSQL refuses NUL in text, and the raw file would be
    # orphaned by the failed insert
    reject_nul(filename, "file")
    reject_nul(content_type, "content_type")
    reject_nul(kind, "kind")
    reject_nul(params or {}, "params")
    if kind is not None and kind not in KINDS:
        raise ValidationError({"kind": f"unknown kind {quote(kind)}; expected one of {KINDS}"})
    params = dict(params or {})
    _check_params(params)
    _check_metadata_size(params.get("metadata"))
    mapped = _mapped_parser(project=project, params=params, kind=kind)
    blob = storage.store_upload(stream)
    sniffed = _sniff(blob, filename)  # inside a .gz / single-member .zip: the inner file
    if sniffed.wrapper is not None:
        params["unwrapped"] = sniffed.wrapper.provenance()
    parser = mapped or detect_parser(sniffed.head, sniffed.filename, kind)
    if parser is None:
        parser = _default_mapping(project=project, params=params, kind=kind, instrument=instrument)
    parser_name, parser_version = (parser.name, parser.version) if parser else (UNRECOGNISED, "0")
    with transaction.atomic():
        raw, raw_created = RawFile.objects.get_or_create(
            project=project,
            sha256=blob.sha256,
            defaults={
                "size": blob.size,
                "original_name": filename[:500],
                "content_type": content_type[:200],
                "encoding": stored_encoding(sniffed.head),
                "storage_path": blob.relpath,
                "uploaded_by": user if user is not None and user.is_authenticated else None,
                "instrument": instrument,
            },
        )
        key = {"raw_file": raw, "parser_name": parser_name, "parser_version": parser_version}
        defaults = {
            "kind": parser.kind if parser else (kind or ""),
            "project": raw.project,
            "params": params,
            "created_by": raw.uploaded_by,
            "instrument": instrument,
        }
        if raw_created:  # new bytes have no job yet: no look-up, no savepoint
            job, created = IngestionJob.objects.create(**key, **defaults), True
        else:  # bytes seen before in this project: their job
            existing = raw.jobs.order_by("created_at").first()
            if existing is not None:
                return existing, False
            job, created = IngestionJob.objects.get_or_create(**key, defaults=defaults)
        if created:
            if instrument is not None:
                stamp_recent(instance=instrument, field="last_file_at")
            # relayed by the job's task when it starts (no relay task of its own)
            event_emit(topic="lims.job.created", payload=_job_payload(job), relay=False)
            transaction.on_commit(lambda: _dispatch(job.pk))
    return job, created


def _check_params(params: dict[str, Any]) -> None:
    """Refuse parameters that cannot be right before the bytes are stored (normalised in place).

    A code that names nothing is not refused: the file is stored and waits for linking.
    """
    if str(params.get("cell") or "").strip() and str(params.get("sample") or "").strip():
        raise ValidationError(
            {"sample": "a file belongs to a cell or to a sample, not both: give one of them"}
        )
    for key in ("cell", "sample", "run", "anneal"):
        if isinstance(params.get(key), str):
            params[key] = params[key].strip()
    value: Any = params.get("temperature_c")
    if value in (None, ""):
        params.pop("temperature_c", None)
        return
    low, high = TEMPERATURE_RANGE_C
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError({"temperature_c": f"{quote(str(value))} is not a number"}) from None
    if not (math.isfinite(number) and low <= number <= high):
        raise ValidationError({"temperature_c": f"{number:g} °C is outside {low:g}..{high:g} °C"})
    params["temperature_c"] = number


def _check_metadata_size(metadata: Any) -> None:
    """Metadata goes into the job's parameters and every parse: held small."""
    if metadata is None:
        return
    limit = settings.LIMS_FORM_FIELD_MAX_BYTES
    size = len(json.dumps(metadata, cls=DjangoJSONEncoder).encode())
    if size > limit:
        raise ValidationError({"metadata": f"metadata is {size} bytes as JSON; at most {limit}"})


def _sniff(blob: storage.StoredBlob, filename: str) -> storage.Sniffed:
    try:
        return storage.sniff_stored(blob, filename)
    except ParseError as exc:  # a refused wrapper (several data files, over the limits)
        raise ValidationError({"file": exc.describe(filename)}) from exc


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
            raise ValidationError({"metadata": f"no saved column mapping named {quote(ref)}"})
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
    job.leased_by, job.lease_expires_at = "", None
    job.save(
        update_fields=[
            "status",
            "error",
            "result",
            "progress",
            "finished_at",
            "duration_s",
            "leased_by",
            "lease_expires_at",
        ]
    )
    topic = "lims.job.failed" if status == IngestionJob.Status.FAILED else "lims.job.finished"
    # job.error, not error: the model bounds it on save (lims/ingestion/errors.py)
    event_emit(topic=topic, payload={**_job_payload(job), "error": job.error, "result": result})


def job_progress(*, job_id: int, progress: int, running_s: float | None = None) -> None:
    """Write a running job's progress, once it has run ``LIMS_JOB_PROGRESS_AFTER_S``.

    The pages poll once a second, so a job done sooner shows no progress anyway; writing it
    cost every small file two more write transactions (and, embedded, two more turns at
    SQLite's one write lock)."""
    if running_s is not None and running_s < settings.LIMS_JOB_PROGRESS_AFTER_S:
        return
    IngestionJob.objects.filter(pk=job_id).update(progress=max(0, min(progress, 99)))


class LeaseLost(Exception):
    """The job was taken back from this attempt (its lease expired): write nothing."""


def _hold(job: IngestionJob, token: str) -> None:
    """Lock the job row and check this attempt still holds it (inside a transaction)."""
    held = (
        IngestionJob.objects.select_for_update()
        .filter(pk=job.pk, status=IngestionJob.Status.RUNNING, leased_by=token)
        .exists()
    )
    if not held:
        raise LeaseLost(f"job {job.pk} is no longer held by {token}")


def _count_lost(job: IngestionJob) -> bool:
    """Record that a running job's worker died; True when that ends the job (locked row)."""
    if lease.ended_here(job.leased_by):
        return False
    job.lost_attempts += 1
    job.save(update_fields=["lost_attempts"])
    log.warning("ingestion job %s: its worker died (%s)", job.pk, job.leased_by or "unknown")
    if job.lost_attempts < settings.LIMS_JOB_MAX_LOST:
        return False
    _finish(
        job,
        status=IngestionJob.Status.FAILED,
        error=f"{job.raw_file.original_name}: the worker died while reading this file "
        f"({job.lost_attempts} attempts); not retried",
        result={},
    )
    return True


def _claim(job_id: int) -> tuple[IngestionJob, str] | None:
    """Take a pending job, or a running one nobody holds any more, under a new lease.

    The row lock is waited for, never skipped: this message may be the job's only ride, and
    the lock may be anyone's (a companion log's handler deciding whether to queue the job
    again, a person's re-run), not only a twin claim. A twin waits out the other's short
    claim, then finds the job running under a live lease and leaves it.
    """
    with transaction.atomic():
        job = (
            IngestionJob.objects.select_for_update()
            .select_related("raw_file")
            .filter(
                pk=job_id,
                status__in=[IngestionJob.Status.PENDING, IngestionJob.Status.RUNNING],
            )
            .first()
        )
        if job is None:  # already taken, finished or gone: nothing to do (idempotent)
            return None
        # a running job (a redelivered message) goes on only when its holder is gone
        if job.status == IngestionJob.Status.RUNNING and (
            not lease.is_stale(job) or _count_lost(job)
        ):
            return None
        token = lease.new_token()
        job.status = IngestionJob.Status.RUNNING
        job.attempts += 1
        job.progress = 5
        job.started_at = timezone.now()
        job.error = ""
        job.leased_by, job.lease_expires_at = token, lease.expiry(job.started_at)
        job.save(
            update_fields=[
                "status",
                "attempts",
                "progress",
                "started_at",
                "error",
                "leased_by",
                "lease_expires_at",
            ]
        )
    return job, token


def job_run(*, job_id: int) -> IngestionJob | None:
    """Parse a job's raw file and hand it to its domain handler. Never raises for bad files.

    The job is held under a lease a background thread renews while this runs; if the lease
    was lost (the sweep gave the job to another attempt), this attempt writes nothing.
    """
    claimed = _claim(job_id)
    if claimed is None:
        return None
    job, token = claimed
    keeper = lease.LeaseKeeper(job.pk, token)
    keeper.start()
    try:
        _run_held(job, token)
    except LeaseLost:
        log.warning("ingestion job %s: lease lost, this attempt's result is dropped", job.pk)
        return None
    finally:
        keeper.stop()
    if IngestionJob.objects.filter(pk=job.pk, requeue_requested=True).exists():
        job_requeue(job=job)
    job.refresh_from_db()
    return job


def _run_held(job: IngestionJob, token: str) -> None:
    raw = job.raw_file
    path = storage.absolute(raw.storage_path)
    started = time.monotonic()
    try:
        if job.parser_name == UNRECOGNISED:
            head = storage.read_head(raw.storage_path, raw.original_name)
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
        # A .gz / .zip upload is read from its inflated inner file, which lives until the
        # prepare phase has consumed what the parser returned (lazy frames included).
        with storage.parse_source(raw.storage_path, raw.original_name) as source:
            ctx = replace(ctx, filename=source.filename, size=source.size)
            data = parser.parse(source.path, ctx)
            job_progress(job_id=job.pk, progress=50, running_s=time.monotonic() - started)
            # Phase 1, outside any transaction: the slow part (series, summaries, checks)
            # holds no locks and no connection in a transaction.
            try:
                prepared = handler.prepare(job=job, data=data)
            except ParseError as exc:
                # a large table is read without placeholder values unless its first rows
                # show one (ParseContext.placeholders); one further on: read it again
                if not exc.unreadable_value or ctx.placeholders is not None:
                    raise
                ctx = replace(ctx, placeholders=True)
                data = parser.parse(source.path, ctx)
                prepared = handler.prepare(job=job, data=data)
        prepared_s = time.monotonic() - started
        job_progress(job_id=job.pk, progress=90, running_s=prepared_s)
        # Phase 2: rows, records, events and the job's final status commit together; the
        # change-log entries join the audit chain at the end (two workers' phases overlap)
        with atomic_chain_at_end():
            _hold(job, token)
            outcome = handler.persist(job=job, prepared=prepared)
            if source.unwrapped:  # provenance: what was read, with its counted size
                outcome.result["unwrapped"] = source.unwrapped
            if ctx.placeholders:
                outcome.result["read_again_with_placeholders"] = True
            outcome.result["parse_seconds"] = round(time.monotonic() - started, 3)
            outcome.result["phases_s"] = {
                "prepare": round(prepared_s, 3),
                "persist": round(time.monotonic() - started - prepared_s, 3),
            }
            _finish(job, status=outcome.status, result=outcome.result)
    except LeaseLost:
        raise
    except TRANSIENT_ERRORS:
        # Infrastructure hiccup, not a bad file: put the job back and let the task retry (if
        # the database is away, the lease runs out and the sweep puts it back instead).
        _give_back(job, token)
        raise
    except ParseError as exc:
        _storage_fault(job, token, exc)
        _fail(job, exc.describe(raw.original_name), token)
    except ValidationError as exc:
        _fail(job, f"{raw.original_name}: {'; '.join(exc.messages)}", token)
    except registry.NoHandler as exc:
        _fail(job, f"{raw.original_name}: {exc}", token)
    except MemoryError:
        data = prepared = None  # let go of what was read before recording the failure
        limit = settings.LIMS_WORKER_MEMORY_LIMIT_MB
        cap = f" (limit {limit} MiB per worker process)" if limit else ""
        _fail(job, f"{raw.original_name}: ran out of memory reading this file{cap}", token)
    except SoftTimeLimitExceeded:
        _fail(
            job,
            f"{raw.original_name}: reading this file took longer than "
            f"{settings.LIMS_INGEST_SOFT_TIME_LIMIT_S} s; not retried",
            token,
        )
    except Exception as exc:
        _storage_fault(job, token, exc)
        log.exception("ingestion job %s crashed", job.pk)
        what = f"unexpected {type(exc).__name__} while ingesting: {exc}"
        _fail(job, f"{raw.original_name}: {what}", token)


def _give_back(job: IngestionJob, token: str) -> None:
    with contextlib.suppress(*TRANSIENT_ERRORS):
        IngestionJob.objects.filter(pk=job.pk, leased_by=token).update(
            status=IngestionJob.Status.PENDING, leased_by="", lease_expires_at=None
        )


def _storage_fault(job: IngestionJob, token: str, exc: Exception) -> None:
    """Before a failure is blamed on the file: if the store cannot be written (or the raw
    file read) now, the failure was the store's (a read-only or full disk surfaces from a
    library as "unreadable data: Permission denied"). The job goes back to pending and the
    task retries (StorageUnavailable is transient); the sweep sends it again after that."""
    try:
        raw = job.raw_file
        storage.probe(raw.storage_path if storage.absolute(raw.storage_path).exists() else None)
    except storage.StorageUnavailable as fault:
        log.warning("ingestion job %s: %s (%s); back to pending", job.pk, fault, exc)
        _give_back(job, token)
        raise fault from exc


def _fail(job: IngestionJob, message: str, token: str | None = None) -> None:
    with transaction.atomic():
        if token is not None:
            _hold(job, token)
        _finish(job, status=IngestionJob.Status.FAILED, error=message, result={})


def job_reclaim(*, job_id: int) -> bool:
    """Give a running job whose worker died back to the queue (the sweep calls this); True
    when it was queued again. After ``LIMS_JOB_MAX_LOST`` such deaths it fails instead: a
    poison file must not take a worker down forever."""
    with transaction.atomic():
        job = (
            IngestionJob.objects.select_for_update(skip_locked=True)
            .select_related("raw_file")
            .filter(pk=job_id, status=IngestionJob.Status.RUNNING)
            .first()
        )
        if job is None or not lease.is_stale(job) or _count_lost(job):
            return False
        _reset_pending(job)
    _dispatch(job.pk)
    return True


def _reset_pending(job: IngestionJob) -> None:
    job.status = IngestionJob.Status.PENDING
    job.progress = 0
    job.started_at = None
    job.queued_at = timezone.now()
    job.leased_by, job.lease_expires_at = "", None
    job.save(
        update_fields=[
            "status",
            "progress",
            "started_at",
            "queued_at",
            "leased_by",
            "lease_expires_at",
        ]
    )


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
            job.refresh_from_db()
            if job.status == IngestionJob.Status.RUNNING and job.lease_expires_at:
                until = timezone.localtime(job.lease_expires_at).strftime("%H:%M:%S")
                raise ValidationError(
                    f"this job is running (its worker holds it until {until} and renews that "
                    "while it works); a job whose worker died can be re-run after that"
                )
            raise ValidationError("this job is already queued or running")
    job.refresh_from_db()
    return job


def job_requeue(*, job: IngestionJob, after_running: bool = False) -> bool:
    """Queue a finished job again; False when there is nothing to add.

    A pending job will read the database as it is when it runs: nothing to add. A running one
    may already have read what changed (new thresholds): with ``after_running`` it is queued
    once more when it finishes (callers whose change the handler reads under a lock it holds,
    such as a run's companions, leave it alone). A running job nobody holds any more (its
    worker died, the lease expired) is queued again at once.
    """
    with transaction.atomic():
        job = IngestionJob.objects.select_for_update().get(pk=job.pk)
        if job.status == IngestionJob.Status.PENDING:
            return False
        stale = lease.is_stale(job)
        if job.status == IngestionJob.Status.RUNNING and not stale:
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
        job.leased_by, job.lease_expires_at = "", None
        if not stale:  # a finished job starts a fresh count of worker deaths
            job.lost_attempts = 0
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
                "leased_by",
                "lease_expires_at",
                "lost_attempts",
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
