"""Writes of the explorer: saving a view."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from cells.explorer.query import ExplorerQuery
from cells.models import ExplorerView

MAX_QUERY = 4000


def explorer_view_save(*, owner: Any, name: str, query: ExplorerQuery) -> ExplorerView:
    """Store the query in its normal form (defaults filled in, unknown names dropped)."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "give the view a name"})
    text = query.querystring()
    if len(text) > MAX_QUERY:
        raise ValidationError({"query": f"the query is longer than {MAX_QUERY} characters"})
    return ExplorerView.objects.create(name=name[:120], query=text, owner=owner)
