"""Field checks for the services that take ``**fields``: a typo is refused, never dropped.

``setattr(cell, "cathode_mas_mg", 99)`` sets a plain attribute that ``save()`` ignores, so an
update would save nothing, raise nothing and still emit its event; ``Model(**fields)`` would
raise a ``TypeError`` (a 500, not a form error). Both go through here first.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

# A code in a URL (API detail routes): the codes' own pattern, dots included (run outputs
# such as ``R-12.out`` carry one; DRF's default lookup stops at a dot).
CODE_LOOKUP_REGEX = r"[A-Za-z0-9][A-Za-z0-9._-]*"


def settable_fields(model: type[models.Model]) -> set[str]:
    """Names a service may set: editable concrete fields (and ``<fk>_id``), never the key."""
    names: set[str] = set()
    for f in model._meta.concrete_fields:
        if f.editable and not f.primary_key:
            names.update({f.name, f.attname})
    return names


def check_fields(
    model: type[models.Model], fields: Mapping[str, Any], *, fixed: Iterable[str] = ()
) -> None:
    """Refuse names that are not settable fields of ``model`` (``fixed`` ones included).

    The error is keyed by the offending name and suggests the closest field.
    """
    known = settable_fields(model) - set(fixed)
    unknown = [name for name in fields if name not in known]
    if not unknown:
        return
    what = model._meta.verbose_name
    errors: dict[str, str] = {}
    for name in unknown:
        if name in fixed:
            errors[name] = f"{name} of a {what} cannot be changed here"
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        errors[name] = f"{name!r} is not a field of {what}{hint}"
    raise ValidationError(errors)


def assign_fields(
    instance: models.Model, fields: Mapping[str, Any], *, fixed: Iterable[str] = ()
) -> None:
    """``check_fields``, then set every value on ``instance`` (the caller validates and saves)."""
    check_fields(type(instance), fields, fixed=fixed)
    for name, value in fields.items():
        setattr(instance, name, value)


def find_nul(value: Any, where: str = "") -> str | None:
    """Where a NUL character sits in a string, or in a dict's keys/values or a list's items
    (JSON metadata): PostgreSQL cannot store it in text or jsonb, so an insert would fail
    with a 500 after the work before it was done. ``None`` when there is none."""
    if isinstance(value, str):
        return where or "value" if "\x00" in value else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            here = f"{where}.{key}" if where else str(key)
            if "\x00" in str(key):
                return here
            if (found := find_nul(item, here)) is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if (found := find_nul(item, f"{where}[{index}]")) is not None:
                return found
    return None


def reject_nul(value: Any, where: str) -> None:
    """Refuse a value holding a NUL character, naming the place (a 400, not a 500)."""
    found = find_nul(value, where)
    if found is not None:
        raise ValidationError({where: f"{found}: contains a NUL character (\\x00), not allowed"})
