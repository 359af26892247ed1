"""Cross-cutting services: the safety-net sweep, worker heartbeat, projects and instruments."""

from __future__ import annotations

import logging
import socket
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from lims.ingestion.parsing import ParseError
from lims.ingestion.registry import get_parser
from lims.models import (
    ColumnMapping,
    EventDelivery,
    IngestionJob,
    Instrument,
    InstrumentToken,
    Membership,
    OutboxEvent,
    Project,
    WorkerHeartbeat,
)
from lims.taskbase import enqueue

log = logging.getLogger(__name__)


def raw_files_verify() -> dict[str, Any]:
    """Re-hash every stored raw file (each blob once, however many projects hold it) and say
    which are missing or no longer give their sha256. Run by beat every
    ``LIMS_RAW_VERIFY_EVERY_S`` and by ``manage.py verify_raw_files``; each problem is logged
    as an error naming the file, the projects that hold it and the cause."""
    from lims.ingestion import storage
    from lims.models import RawFile

    holders: dict[tuple[str, str], list[str]] = {}
    rows = RawFile.objects.order_by("pk").values_list(
        "storage_path", "sha256", "project__slug", "original_name"
    )
    for path, sha, slug, name in rows.iterator(chunk_size=2000):
        holders.setdefault((path, sha), []).append(f"{slug}:{name}")
    problems: list[dict[str, Any]] = []
    checked_bytes = 0
    for (path, sha), held_by in holders.items():
        try:
            storage.raw_verify(path, sha)
            checked_bytes += storage.absolute(path).stat().st_size
        except ParseError as exc:
            kind = "altered" if isinstance(exc, storage.RawFileAltered) else "missing"
            problems.append({"sha256": sha, "path": path, "problem": kind, "held_by": held_by})
            log.error("raw file %s %s (%s): %s", path, kind, ", ".join(held_by), exc.message)
    return {"checked": len(holders), "bytes": checked_bytes, "problems": problems}


def sweep_stuck() -> dict[str, int]:
    """Re-dispatch jobs, events and deliveries that a lost message, a broker outage or a dead
    worker left behind.

    A running job whose lease expired (its worker stopped renewing it) goes back to pending
    and is dispatched again, or fails once its workers died ``LIMS_JOB_MAX_LOST`` times. A
    pending job is sent again once it has waited ``LIMS_STUCK_AFTER_S`` since it was last
    sent (``queued_at`` moves on, so a long queue is not flooded with copies; a copy is a
    no-op for a job already taken). Pending events go to one batch relay. A broker fault is
    logged per message, never raised: what could not be sent waits for the next sweep.
    """
    from lims.events.tasks import event_relay_pending, webhook_deliver
    from lims.ingestion.services import job_reclaim
    from lims.ingestion.tasks import ingest_job_run

    now = timezone.now()
    stale = now - timedelta(seconds=settings.LIMS_STUCK_AFTER_S)
    unleased = now - timedelta(seconds=settings.LIMS_JOB_LEASE_S)
    lost_ids = list(
        IngestionJob.objects.filter(status=IngestionJob.Status.RUNNING)
        .filter(
            Q(lease_expires_at__lt=now)
            | Q(lease_expires_at__isnull=True, started_at__lt=unleased)  # from before leases
        )
        .values_list("pk", flat=True)[:500]
    )
    reclaimed = sum(job_reclaim(job_id=job_id) for job_id in lost_ids)
    job_ids = list(
        IngestionJob.objects.filter(
            status=IngestionJob.Status.PENDING, queued_at__lt=stale
        ).values_list("pk", flat=True)[:500]
    )
    events = OutboxEvent.objects.filter(
        status=OutboxEvent.Status.PENDING, created_at__lt=stale
    ).count()
    delivery_ids = list(
        EventDelivery.objects.filter(
            Q(status=EventDelivery.Status.PENDING, created_at__lt=stale)
            | Q(status=EventDelivery.Status.RETRYING, next_attempt_at__lt=stale)
        ).values_list("pk", flat=True)[:500]
    )
    sent_jobs = [job_id for job_id in job_ids if enqueue(ingest_job_run, job_id)]
    IngestionJob.objects.filter(pk__in=sent_jobs, status=IngestionJob.Status.PENDING).update(
        queued_at=now
    )
    if events:
        enqueue(event_relay_pending)
    for delivery_id in delivery_ids:
        enqueue(webhook_deliver, delivery_id)
    jobs = len(job_ids) + reclaimed
    return {"jobs": jobs, "events": events, "deliveries": len(delivery_ids)}


def worker_heartbeat(*, hostname: str | None = None) -> WorkerHeartbeat:
    beat, _ = WorkerHeartbeat.objects.update_or_create(
        hostname=hostname or socket.gethostname(), defaults={"seen_at": timezone.now()}
    )
    return beat


@transaction.atomic
def instrument_token_create(
    *,
    instrument_name: str,
    project: Project,
    kind: str = Instrument.Kind.OTHER,
    owner: AbstractBaseUser | None = None,
) -> InstrumentToken:
    """A new token for an instrument, creating the instrument in ``project`` when needed;
    ``owner`` is the person the change log names for what the instrument sends."""
    instrument, _ = Instrument.objects.get_or_create(
        name=instrument_name, defaults={"project": project, "kind": kind}
    )
    return InstrumentToken.objects.create(instrument=instrument, owner=owner)  # type: ignore[misc]


# An instrument's last file and its token's last use say when it was last heard from (a
# harvester is stale after LIMS_HARVESTER_STALE_S, 15 min by default): a minute's resolution
# is plenty, and stamping every call cost each upload of a busy instrument row writes.
STAMP_RESOLUTION_S = 60


def stamp_recent(*, instance: Any, field: str) -> None:
    """Set ``instance.<field>`` to now in the database, unless it is less than a minute old."""
    now = timezone.now()
    last = getattr(instance, field)
    if last is None or (now - last).total_seconds() >= STAMP_RESOLUTION_S:
        type(instance).objects.filter(pk=instance.pk).update(**{field: now})


@transaction.atomic
def project_get_or_create(*, name: str, slug: str, description: str = "") -> Project:
    project, _ = Project.objects.get_or_create(
        slug=slug, defaults={"name": name, "description": description}
    )
    return project


@transaction.atomic
def column_mapping_save(
    *,
    project: Project,
    name: str,
    mapping: dict[str, Any],
    kind: str = "cycler",
    parser_name: str = "generic",
    description: str = "",
) -> ColumnMapping:
    """Create or replace a saved column mapping; jobs keep their own copy of the old one."""
    parser = get_parser(parser_name)  # raises ParseError for an unknown parser
    validate = getattr(parser, "validate_mapping", None)  # the parser knows its map format
    if validate is not None:
        try:
            validate(mapping)
        except ParseError as exc:
            raise ValidationError({"mapping": exc.describe("mapping")}) from exc
    elif not isinstance(mapping, dict) or not isinstance(mapping.get("columns"), dict):
        raise ValidationError({"mapping": "a mapping needs a 'columns' object"})
    saved = ColumnMapping.objects.filter(project=project, name=name).first() or ColumnMapping(
        project=project, name=name
    )
    saved.kind, saved.parser_name = kind, parser_name
    saved.mapping, saved.description = mapping, description
    saved.full_clean()
    saved.save()
    return saved


# --- project management: managers add people, set roles and issue instrument tokens ---------


def _require_manager(*, by: Any, project: Project) -> None:
    from lims import access

    access.require_role(user=by, project_id=project.pk, role=access.MANAGER)


def _keeps_a_manager(project: Project, *, leaving: Membership) -> None:
    """A project always keeps one manager, else nobody could add people any more."""
    others = Membership.objects.filter(project=project, role=Membership.Role.MANAGER).exclude(
        pk=leaving.pk
    )
    if leaving.role == Membership.Role.MANAGER and not others.exists():
        raise ValidationError("a project keeps at least one manager: make someone else one first")


@transaction.atomic
def membership_set(*, project: Project, username: str, role: str, by: Any) -> Membership:
    """Add a person to the project or change their role (managers only)."""
    from django.contrib.auth import get_user_model

    _require_manager(by=by, project=project)
    if role not in Membership.Role.values:
        raise ValidationError({"role": f"one of {', '.join(Membership.Role.values)}"})
    person = get_user_model().objects.filter(username=username, is_active=True).first()
    if person is None:
        raise ValidationError({"username": f"no active account {username!r}"})
    membership = Membership.objects.select_for_update().filter(project=project, user=person).first()
    if membership is None:
        return Membership.objects.create(project=project, user=person, role=role)
    if role != Membership.Role.MANAGER:
        _keeps_a_manager(project, leaving=membership)
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, project: Project, username: str, by: Any) -> None:
    _require_manager(by=by, project=project)
    membership = (
        Membership.objects.select_for_update()
        .filter(project=project, user__username=username)
        .first()
    )
    if membership is None:
        raise ValidationError({"username": f"{username!r} is not a member"})
    _keeps_a_manager(project, leaving=membership)
    membership.delete()


@transaction.atomic
def project_token_issue(
    *, project: Project, instrument_name: str, kind: str, by: Any
) -> InstrumentToken:
    """A manager issues a token for an instrument of the project (created when new); the
    manager is the token's owner, whom the change log names for what the instrument sends.
    An instrument name held by another project is refused (names are unique across the lab)."""
    _require_manager(by=by, project=project)
    if kind not in Instrument.Kind.values:
        raise ValidationError({"kind": f"one of {', '.join(Instrument.Kind.values)}"})
    taken = Instrument.objects.filter(name=instrument_name).exclude(project=project).exists()
    if taken:
        raise ValidationError({"instrument_name": "that name is taken: choose another"})
    return instrument_token_create(
        instrument_name=instrument_name, project=project, kind=kind, owner=by
    )


@transaction.atomic
def instrument_token_revoke(*, token: InstrumentToken, by: Any) -> InstrumentToken:
    _require_manager(by=by, project=token.instrument.project)
    token = InstrumentToken.objects.select_for_update().get(pk=token.pk)
    if not token.revoked:
        token.revoked = True
        token.save(update_fields=["revoked"])
    return token
