"""Related fields that find only the caller's projects' objects.

A payload naming another project's sample, lot, run or project then gets exactly the answer
of a code that does not exist ("Object with code=... does not exist."): the globally unique
codes are no existence oracle (security review, finding 6). Shared catalogue rows (no project)
and serializers built without a request (the caller scopes those lookups) are left as they are.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.relations import ManyRelatedField, RelatedField

from lims import access
from lims.models import Project
from lims.selectors import project_ids_visible


def _scoped(queryset: Any, ids: list[int] | None) -> Any:
    if ids is None:  # staff
        return queryset
    if queryset.model is Project:
        return queryset.filter(pk__in=ids)
    path = access.project_path(queryset.model)
    if path is None:
        return queryset
    return queryset.filter(**{path.removesuffix("_id").replace(".", "__") + "__in": ids})


def _visible_ids(request: Any) -> list[int] | None:
    """The caller's project ids, asked once per request (serializers are built per object)."""
    if not hasattr(request, "_lims_visible_ids"):
        request._lims_visible_ids = project_ids_visible(user=request.user)
    ids: list[int] | None = request._lims_visible_ids
    return ids


# Limits every writable related field's queryset to the request user's projects. No docstrings
# here: drf-spectacular would describe every schema component with them.
class ScopedRelationsMixin:
    def get_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = super().get_fields()  # type: ignore[misc]
        request = getattr(self, "context", {}).get("request")
        if request is None:
            return fields
        for field in fields.values():
            target = field.child_relation if isinstance(field, ManyRelatedField) else field
            if isinstance(target, RelatedField) and target.queryset is not None:
                target.queryset = _scoped(target.queryset, _visible_ids(request))
        return fields


# The project's ModelSerializer (no docstring: drf-spectacular would give it to every schema).
class ModelSerializer(ScopedRelationsMixin, serializers.ModelSerializer):
    pass
