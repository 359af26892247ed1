"""Interfacial resistance vs cycle (pure: no Django).

A cell's spectra taken between cycles belong to the cycle they follow: R_interface of each
spectrum, placed on the stitched cycle numbers, is part of the cell's performance record.
docs/eis.md ("Interfacial resistance vs cycle") states the rules; the service reads the
cycles, spectra and fits and stores the outcome.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

# A spectrum that starts within this of a cycle's last logged row is "after" it, not inside:
# the clocks of a cycler and a potentiostat drift by seconds.
TOLERANCE_S = 60.0

_ARC = re.compile(r"^R([1-9]\d*)$")


@dataclass(frozen=True)
class CycleSpan:
    """One stitched cycle, in seconds since the epoch."""

    number: int
    start_s: float
    end_s: float


@dataclass(frozen=True)
class SpectrumAt:
    """A spectrum with its acquisition moment (seconds since the epoch) and its fit."""

    key: int
    at_s: float
    r_ohm: float | None
    r_stderr_ohm: float | None = None


@dataclass(frozen=True)
class Placement:
    key: int
    cycle: int | None  # the stitched cycle it follows; 0 = before the first cycle
    r_ohm: float | None
    r_stderr_ohm: float | None
    note: str = ""


def interface_resistance(
    parameters: Sequence[dict[str, object]],
) -> tuple[float, float | None, list[str]] | None:
    """R_interface of a fit: the sum of its arc resistances (R1, R2, ...; R0, the series
    resistance of the electrolyte and contacts, is left out). ``cell_interfaces`` gives
    R1 + R2, a one-arc circuit R1. The standard error adds in quadrature (None when a term
    has none). None when the fit has no arc."""
    total, var, names, known = 0.0, 0.0, [], True
    for p in parameters:
        name = str(p.get("name", ""))
        if not _ARC.match(name):
            continue
        value = p.get("value")
        if not isinstance(value, int | float) or not math.isfinite(value):
            return None
        total += float(value)
        names.append(name)
        se = p.get("stderr")
        if isinstance(se, int | float) and math.isfinite(se):
            var += float(se) ** 2
        else:
            known = False
    if not names:
        return None
    return total, (math.sqrt(var) if known else None), names


def place_spectra(cycles: Sequence[CycleSpan], spectra: Sequence[SpectrumAt]) -> list[Placement]:
    """Assign each spectrum to the stitched cycle it follows: the last cycle that started at
    or before the spectrum. Before the first cycle: cycle 0 (pristine). A spectrum inside a
    cycle's logged span (an impedance step in the cycle's closing rest, or one whose cycle
    rows go on after it) stays on that cycle with a note. Spectra come back in time order."""
    ordered = sorted(cycles, key=lambda c: c.start_s)
    out = []
    for s in sorted(spectra, key=lambda s: (s.at_s, s.key)):
        follows: CycleSpan | None = None
        for c in ordered:
            if c.start_s <= s.at_s:
                follows = c
        note = ""
        if follows is not None and s.at_s < follows.end_s - TOLERANCE_S:
            note = (
                f"taken {follows.end_s - s.at_s:.0f} s before cycle {follows.number}'s last "
                "logged row: inside the cycle's span"
            )
        elif follows is None and ordered:
            note = "before the first cycle (pristine)"
        out.append(
            Placement(
                key=s.key,
                cycle=follows.number if follows else 0,
                r_ohm=s.r_ohm,
                r_stderr_ohm=s.r_stderr_ohm,
                note=note,
            )
        )
    return out
