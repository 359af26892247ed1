"""What an instrument token may do: push files and read the jobs it made, nothing else.

Applied to every API view by default (``REST_FRAMEWORK["DEFAULT_PERMISSION_CLASSES"]``); a
view opens itself to instruments by listing the actions (viewset actions, or lower-case HTTP
methods for plain views) in ``instrument_actions``. A leaked or misconfigured cycler key can
then neither create cells nor change an active mass (which recomputes records).
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from lims import access
from lims.api.authentication import InstrumentUser


def _instrument_id(request: Request) -> int | None:
    user = request.user
    return user.instrument.pk if isinstance(user, InstrumentUser) else None


class InstrumentScope(BasePermission):
    message = "an instrument token may only ingest files and read its own jobs"

    def has_permission(self, request: Request, view: Any) -> bool:
        if _instrument_id(request) is None:
            return True
        action = getattr(view, "action", None) or (request.method or "").lower()
        return action in getattr(view, "instrument_actions", ())

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        instrument_id = _instrument_id(request)
        return instrument_id is None or getattr(obj, "instrument_id", None) == instrument_id


class ProjectRoles(BasePermission):
    """Project roles on every API view (``lims.access``): reads by viewers, writes by editors.

    Reads are already scoped to the user's projects by each view's queryset. A write needs the
    view's ``write_role`` (editor unless it says manager, or staff for shared catalogues) in
    some project before the payload is read, and then in the object's own project, found along
    the view's ``project_path`` (default: ``access.project_path`` of the model). A create
    names its project in the payload: the view checks it with ``access.require_role``.
    """

    def _role(self, request: Request, view: Any) -> str:
        if (request.method or "GET").upper() in access.SAFE_METHODS:
            return access.VIEWER
        return str(getattr(view, "write_role", access.EDITOR))

    def has_permission(self, request: Request, view: Any) -> bool:
        role = self._role(request, view)
        if role == access.VIEWER:
            return True
        self.message = access.denied_text(role)
        return access.holds_anywhere(user=request.user, role=role)

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        role = self._role(request, view)
        if role in (access.VIEWER, access.STAFF):
            return True  # reads: the scoped queryset; staff: has_permission
        self.message = access.denied_text(role)
        project_id = access.project_id_of(obj, getattr(view, "project_path", None))
        return access.has_role(user=request.user, project_id=project_id, role=role)
