"""Small display filters shared by the pages."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def percent(value: float | None, places: int = 2) -> str:
    """A fraction as a percentage (0.9953 -> "99.53 %"); "-" when unknown."""
    if value is None:
        return "-"
    return f"{value * 100:.{int(places)}f} %"
