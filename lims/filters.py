"""Filters shared by the apps' FilterSets.

``IsoDateTimeFilter``: django-filter keeps the offset of an aware value as given, and Python
accepts offsets up to ±23:59 while PostgreSQL refuses any beyond ±15:59 (``started_after=
...+16:00`` was a 500). The value is turned into the same instant in UTC before it reaches the
query; one that cannot be (out of range near year 1 or 9999) is a 400.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django.utils import timezone
from django_filters.fields import IsoDateTimeField


class UtcIsoDateTimeField(IsoDateTimeField):
    def to_python(self, value: Any) -> datetime | None:
        moment = super().to_python(value)
        if moment is None or timezone.is_naive(moment):
            return moment
        try:
            return moment.astimezone(UTC)
        except OverflowError as exc:
            raise forms.ValidationError("date and time out of range", code="invalid") from exc


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField
