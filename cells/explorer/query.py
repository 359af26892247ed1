"""What the explorer is asked: axes, grouping, filters and the cells to overlay (pure).

The same query string drives the page, the API and the exports, and a saved view is just
that string under a name, so a shared URL reopens exactly what was on screen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

from cells.explorer.columns import BY_KEY, NUMERIC, TEXT
from cells.explorer.selectors import Filter

DEFAULT_X = "subcycle_ratio_value"
DEFAULT_Y = "retention_c100_pct"
DEFAULT_COLOR = "recipe"
MAX_OVERLAY = 24


@dataclass(frozen=True)
class ExplorerQuery:
    x: str = DEFAULT_X
    y: str = DEFAULT_Y
    color: str = DEFAULT_COLOR
    plot: str = "scatter"  # or "box": y by the colour column
    filters: tuple[Filter, ...] = ()
    cells: tuple[str, ...] = ()  # overlaid in the curve plots
    cycle: int = 1  # the cycle of the voltage-capacity overlay
    errors: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def parse(cls, params: Mapping[str, str], lists: Mapping[str, Sequence[str]]) -> ExplorerQuery:
        """From a request's GET (``params`` single values, ``lists`` repeated ones). Unknown
        names fall back to the defaults, each said in ``errors``."""
        errors: list[str] = []

        def pick(name: str, default: str, allowed: Sequence[str]) -> str:
            value = params.get(name) or default
            if value not in allowed:
                errors.append(f"{name}: no column {value!r}")
                return default
            return value

        filters = []
        for text in lists.get("f", ()):
            parsed = Filter.parse(text)
            if parsed is None:
                errors.append(f"filter {text!r} is not column:op:value")
            else:
                filters.append(parsed)
        cells = tuple(dict.fromkeys(c for c in lists.get("cell", ()) if c))[:MAX_OVERLAY]
        try:
            cycle = max(1, int(params.get("cycle") or 1))
        except ValueError:
            errors.append("cycle must be a whole number")
            cycle = 1
        return cls(
            x=pick("x", DEFAULT_X, NUMERIC),
            y=pick("y", DEFAULT_Y, NUMERIC),
            color=pick("color", DEFAULT_COLOR, TEXT + NUMERIC),
            plot="box" if params.get("plot") == "box" else "scatter",
            filters=tuple(filters),
            cells=cells,
            cycle=cycle,
            errors=tuple(errors),
        )

    def querystring(self) -> str:
        pairs: list[tuple[str, str]] = [
            ("x", self.x),
            ("y", self.y),
            ("color", self.color),
            ("plot", self.plot),
        ]
        pairs += [("f", str(f)) for f in self.filters]
        pairs += [("cell", c) for c in self.cells]
        if self.cycle != 1:
            pairs.append(("cycle", str(self.cycle)))
        return urlencode(pairs)

    def describe(self) -> str:
        what = f"{BY_KEY[self.y].label} vs {BY_KEY[self.x].label}"
        if self.plot == "box":
            what = f"{BY_KEY[self.y].label} by {BY_KEY[self.color].label}"
        if self.filters:
            what += " where " + " and ".join(
                f"{BY_KEY[f.column].label} {f.op} {f.value}" for f in self.filters
            )
        return what
