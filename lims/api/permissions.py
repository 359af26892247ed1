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
