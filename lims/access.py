"""Who may do what: the one place that reads project roles.

Viewers read a project's data; editors also write it; managers also manage its members,
instruments, tokens and webhooks; staff may do everything and alone write the shared
catalogues (chemicals, materials: a molar mass feeds every dose check). An instrument token
counts as an editor of its own project, but ``lims.api.permissions.InstrumentScope`` lets it
only ingest and read its own jobs.

Reads stay scoped by ``lims.selectors.scope_to_user`` (another project's object is "not
found"); this module answers the write question for the API permission, the page decorator
and the services, so the rule lives here only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import HttpRequest, HttpResponse

from lims.models import Membership, Project

VIEWER = Membership.Role.VIEWER
EDITOR = Membership.Role.EDITOR
MANAGER = Membership.Role.MANAGER
STAFF = "staff"  # not a project role: the shared catalogues and the dashboard
_RANK: dict[str, int] = {VIEWER: 1, EDITOR: 2, MANAGER: 3}
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def role_for_method(method: str | None) -> str:
    """Reading needs a viewer, anything else an editor (views may ask for more)."""
    return VIEWER if (method or "GET").upper() in SAFE_METHODS else EDITOR


def _at_least(role: str) -> list[str]:
    return [r for r, rank in _RANK.items() if rank >= _RANK[role]]


def project_ids_with(*, user: Any, role: str) -> list[int] | None:
    """Project ids where ``user`` holds at least ``role``; None means every project (staff)."""
    if user is None or not user.is_authenticated:
        return []
    instrument = getattr(user, "instrument", None)
    if instrument is not None:
        return [instrument.project_id] if role in (VIEWER, EDITOR) else []
    if user.is_staff:
        return None
    if role == STAFF:
        return []
    return list(
        Membership.objects.filter(user=user, role__in=_at_least(role)).values_list(
            "project_id", flat=True
        )
    )


def holds_anywhere(*, user: Any, role: str) -> bool:
    ids = project_ids_with(user=user, role=role)
    return ids is None or bool(ids)


def has_role(*, user: Any, project_id: int | None, role: str) -> bool:
    ids = project_ids_with(user=user, role=role)
    return ids is None or (project_id is not None and project_id in ids)


def require_role(*, user: Any, project_id: int | None, role: str) -> None:
    """Raise ``PermissionDenied`` unless ``user`` holds ``role`` in the project.

    The text never says whether the project exists or whose it is.
    """
    if not has_role(user=user, project_id=project_id, role=role):
        raise PermissionDenied(denied_text(role))


def denied_text(role: str) -> str:
    if role == STAFF:
        return "only staff may change the shared catalogue"
    return f"this needs the {role} role in the project"


def project_path(model: type[Model], depth: int = 4) -> str | None:
    """The dotted path from a model to its project, following foreign keys (breadth first)."""
    frontier: list[tuple[type[Model], str]] = [(model, "")]
    for _ in range(depth):
        following: list[tuple[type[Model], str]] = []
        for current, prefix in frontier:
            for f in current._meta.concrete_fields:
                related = f.related_model
                if not f.is_relation or not isinstance(related, type):
                    continue
                if related is Project:
                    return f"{prefix}{f.attname}"
                following.append((related, f"{prefix}{f.name}."))
        frontier = following
    return None


def project_id_of(obj: Any, path: str | None = None) -> int | None:
    """The project of ``obj`` along a dotted attribute path (``tool.instrument.project_id``);
    without a path, the one ``project_path`` finds (None: the object has no project)."""
    path = path or project_path(type(obj))
    if path is None:
        return None
    value = obj
    for name in path.split("."):
        value = getattr(value, name, None)
        if value is None:
            return None
    return int(value) if not hasattr(value, "pk") else int(value.pk)


def write_required(role: str = EDITOR) -> Callable[[Callable[..., HttpResponse]], Any]:
    """Page decorator: a POST needs ``role`` in some project (403 otherwise).

    The page then checks the object's own project with ``require_role`` (or the form only
    offers the projects where the user holds the role: ``selectors.projects_for_user``).
    """

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in SAFE_METHODS and not holds_anywhere(
                user=request.user, role=role
            ):
                raise PermissionDenied(denied_text(role))
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


def check_request(request: HttpRequest, project_id: int | None, role: str = EDITOR) -> None:
    """Pages: a POST on an object needs ``role`` in its project (a GET was scoped already)."""
    if request.method not in SAFE_METHODS:
        require_role(user=request.user, project_id=project_id, role=role)
