"""Cross-cutting reads: what a user may see."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Prefetch, QuerySet

from lims import access
from lims.models import IngestionJob, Instrument, InstrumentToken, Membership, Project, RawFile


def project_ids_visible(*, user: Any, role: str = access.VIEWER) -> list[int] | None:
    """Project ids where a user holds ``role`` (any role reads); None means all (staff)."""
    return access.project_ids_with(user=user, role=role)


def scope_to_user(
    qs: QuerySet[Any], *, user: Any, field: str = "project", role: str = access.VIEWER
) -> QuerySet[Any]:
    """Rows of the projects where ``user`` holds ``role``: viewer to read, editor to choose
    the project of something new (a form's choices)."""
    ids = project_ids_visible(user=user, role=role)
    return qs if ids is None else qs.filter(**{f"{field}__in": ids})


def projects_for_user(*, user: Any, role: str = access.VIEWER) -> QuerySet[Project]:
    return scope_to_user(Project.objects.all(), user=user, field="pk", role=role)


def raw_file_list(*, user: Any) -> QuerySet[RawFile]:
    """Raw files of the user's projects (an instrument token reads none: InstrumentScope)."""
    return scope_to_user(RawFile.objects.select_related("project"), user=user)


def job_list(*, user: Any) -> QuerySet[IngestionJob]:
    """Jobs of the user's projects; an instrument sees only the jobs of its own files."""
    qs = IngestionJob.objects.select_related("raw_file", "project", "instrument")
    instrument = getattr(user, "instrument", None)
    if instrument is not None:
        qs = qs.filter(instrument=instrument)
    return scope_to_user(qs, user=user)


def job_actor(*, job_id: int) -> tuple[Any, str]:
    """Who the change log names for a job's changes: the person who uploaded it (for an
    instrument's upload, the owner of its token) and the instrument that sent it."""
    job = (
        IngestionJob.objects.select_related("created_by", "instrument")
        .only("created_by", "instrument__name")
        .filter(pk=job_id)
        .first()
    )
    if job is None:
        return None, ""
    return job.created_by, job.instrument.name if job.instrument else ""


def ingest_project_for(*, user: Any, slug: str | None) -> Project:
    """The project an upload belongs to: the instrument's, the named one, or the only one."""
    from django.core.exceptions import PermissionDenied, ValidationError

    instrument = getattr(user, "instrument", None)
    if instrument is not None:
        if slug and slug != instrument.project.slug:
            raise PermissionDenied("this instrument token may only ingest into its own project")
        project: Project = instrument.project
        return project
    projects = projects_for_user(user=user, role=access.EDITOR)
    if slug:
        found = projects.filter(slug=slug).first()
        if found is None:
            raise PermissionDenied(f"you may not add files to project {slug!r}")
        return found
    mine = list(projects[:2])
    if len(mine) == 1:
        return mine[0]
    raise ValidationError({"project": "say which project the file belongs to (project slug)"})


def raw_file_check(
    *, user: Any, sha256: str, slug: str | None = None
) -> tuple[bool, IngestionJob | None]:
    """Are these bytes already stored, and under which job the caller may follow?

    The question a harvester asks before it sends a file, so that the bytes travel once. An
    instrument asks about its own project (what its upload would answer 200 or 409 to); a
    person about the named project or all of theirs. The job is named only when the caller
    sees it (an instrument: its own uploads): bytes another source brought say stored, no job.
    """
    if getattr(user, "instrument", None) is not None:
        projects: Any = [ingest_project_for(user=user, slug=slug).pk]
    else:
        projects = projects_for_user(user=user)
        if slug:
            projects = projects.filter(slug=slug)
    raws = RawFile.objects.filter(sha256=sha256, project__in=projects)
    if not raws.exists():
        return False, None
    job = job_list(user=user).filter(raw_file__in=raws).order_by("created_at").first()
    return True, job


@dataclass(frozen=True)
class HarvesterContact:
    token: InstrumentToken
    last_contact: datetime | None
    stale: bool


def harvester_contacts(*, now: datetime, stale_after_s: float) -> list[HarvesterContact]:
    """Each live instrument token (a harvester or a script) with its last call to the API.

    Every authenticated call stamps ``last_used_at`` (the harvester's sha256 checks and its
    heartbeat too), so a harvester silent for longer than ``stale_after_s`` is down, cut off,
    or has a wrong token; one never seen has never called.
    """
    tokens = (
        InstrumentToken.objects.filter(revoked=False)
        .select_related("instrument__project")
        .order_by("instrument__name", "created_at")
    )
    limit = now - timedelta(seconds=stale_after_s)
    return [
        HarvesterContact(
            token=t,
            last_contact=t.last_used_at,
            stale=t.last_used_at is None or t.last_used_at < limit,
        )
        for t in tokens
    ]


def broker_queue_depth(queue: str = "lims") -> int | None:
    """Messages waiting in the broker queue; None when the broker cannot be asked."""
    from lims.celery import app

    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            ok = conn.default_channel.queue_declare(queue=queue, passive=True)
            return int(ok.message_count)
    except Exception:  # noqa: BLE001 - a dashboard must render even when the broker is down
        return None


def project_get(*, user: Any, slug: str) -> Project | None:
    """One of the user's projects by slug (None for a project they are not in)."""
    return projects_for_user(user=user).filter(slug=slug).first()


def project_members(*, project: Project) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(project=project).select_related("user").order_by("user__username")
    )


def project_instruments(*, project: Project) -> QuerySet[Instrument]:
    """The project's instruments with their tokens (newest first) and last contact."""
    tokens = InstrumentToken.objects.select_related("owner").order_by("-created_at")
    return (
        Instrument.objects.filter(project=project)
        .prefetch_related(Prefetch("tokens", queryset=tokens))
        .order_by("name")
    )
