"""An anneal's planned temperature profile from its segments. Pure: no Django.

:func:`planned_profile`: segments (ramp / dwell / cool) -> temperature knots over time and the
dwells a furnace log is checked against (``depositions.furnace.checks``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# The values of depositions.choices.SegmentKind (a test keeps them equal).
RAMP, DWELL, COOL = "ramp", "dwell", "cool"


@dataclass(frozen=True)
class SegmentSpec:
    kind: str
    target_c: float
    rate_k_per_min: float | None = None
    duration_min: float | None = None


@dataclass(frozen=True)
class ProfilePoint:
    t_s: float
    temperature_c: float


@dataclass(frozen=True)
class PlannedDwell:
    segment: int  # 0-based index in the segment list
    target_c: float
    start_s: float
    duration_s: float


@dataclass(frozen=True)
class Profile:
    points: list[ProfilePoint]
    dwells: list[PlannedDwell]
    total_s: float | None  # None: ends with natural cooling (no planned end)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def planned_profile(segments: Sequence[SegmentSpec], *, start_c: float = 25.0) -> Profile:
    """Temperature knots of the plan; ramps are linear between knots.

    A ramp or cool takes ``|ΔT| / rate`` minutes, or its given duration; a dwell holds its
    target for its duration (a dwell target away from the current temperature is a step the
    furnace cannot make: refused). A cool with neither rate nor duration is natural cooling:
    the plan ends there, with no planned end time.
    """
    t = 0.0
    temp = float(start_c)
    points = [ProfilePoint(0.0, temp)]
    dwells: list[PlannedDwell] = []
    notes: list[str] = []
    for i, seg in enumerate(segments):
        target = float(seg.target_c)
        if seg.kind == DWELL:
            if seg.duration_min is None or seg.duration_min < 0:
                raise ValueError(f"segment {i + 1}: a dwell needs a duration")
            if abs(target - temp) > 1e-9:
                raise ValueError(
                    f"segment {i + 1}: dwell at {target:g} degC follows {temp:g} degC; "
                    "add a ramp first"
                )
            dwells.append(PlannedDwell(i, target, t, seg.duration_min * 60.0))
            t += seg.duration_min * 60.0
        elif seg.kind in (RAMP, COOL):
            if seg.rate_k_per_min is not None:
                if seg.rate_k_per_min <= 0:
                    raise ValueError(f"segment {i + 1}: the rate must be above zero")
                t += abs(target - temp) / seg.rate_k_per_min * 60.0
            elif seg.duration_min is not None:
                t += seg.duration_min * 60.0
            elif seg.kind == COOL:
                notes.append(f"segment {i + 1}: natural cooling to {target:g} degC (no end time)")
                return Profile(points=points, dwells=dwells, total_s=None, notes=notes)
            else:
                raise ValueError(f"segment {i + 1}: a ramp needs a rate or a duration")
            temp = target
        else:
            raise ValueError(f"segment {i + 1}: unknown kind {seg.kind!r}")
        points.append(ProfilePoint(round(t, 6), temp))
    return Profile(points=points, dwells=dwells, total_s=round(t, 6), notes=notes)
