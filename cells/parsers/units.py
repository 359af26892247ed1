"""Column labels, units and the conversions to canonical SI-ish units.

Vendors spell the same quantity many ways (``Current(A)``, ``Current (mA)``, ``I/mA``,
``Current / A``, ``current_ampere``); splitting a label into a normalised name and a unit
lets one alias table per vendor survive new software versions.
"""

from __future__ import annotations

import functools

from lims.ingestion import text
from lims.ingestion.text import Label

# quantity -> unit -> (scale, offset): canonical = raw * scale + offset
QUANTITY_UNITS: dict[str, dict[str, tuple[float, float]]] = {
    "time_s": {
        "s": (1.0, 0.0),
        "ms": (1e-3, 0.0),
        "us": (1e-6, 0.0),
        "min": (60.0, 0.0),
        "h": (3600.0, 0.0),
        "d": (86400.0, 0.0),
    },
    "current_a": {"A": (1.0, 0.0), "mA": (1e-3, 0.0), "uA": (1e-6, 0.0), "nA": (1e-9, 0.0)},
    "voltage_v": {"V": (1.0, 0.0), "mV": (1e-3, 0.0), "uV": (1e-6, 0.0)},
    "capacity": {
        "Ah": (1.0, 0.0),
        "mAh": (1e-3, 0.0),
        "uAh": (1e-6, 0.0),
        "As": (1 / 3600, 0.0),
        "mAs": (1e-3 / 3600, 0.0),
    },
    "energy": {
        "Wh": (1.0, 0.0),
        "mWh": (1e-3, 0.0),
        "uWh": (1e-6, 0.0),
        "kWh": (1e3, 0.0),
        "J": (1 / 3600, 0.0),
        "mJ": (1e-3 / 3600, 0.0),
    },
    "temperature_c": {"degC": (1.0, 0.0), "K": (1.0, -273.15), "degF": (5 / 9, -160 / 9)},
    "index": {"1": (1.0, 0.0)},
}

# Which unit family each mapping quantity uses. ``capacity_ah``/``energy_wh`` are unsigned
# single columns split into charge/discharge by the sign of the current.
QUANTITY_FAMILY: dict[str, str] = {
    "time_s": "time_s",
    "cycle": "index",
    "step": "index",
    "current_a": "current_a",
    "voltage_v": "voltage_v",
    "charge_capacity_ah": "capacity",
    "discharge_capacity_ah": "capacity",
    "capacity_ah": "capacity",
    "charge_energy_wh": "energy",
    "discharge_energy_wh": "energy",
    "energy_wh": "energy",
    "temperature_c": "temperature_c",
}
DEFAULT_UNIT: dict[str, str] = {
    "time_s": "s",
    "index": "1",
    "current_a": "A",
    "voltage_v": "V",
    "capacity": "Ah",
    "energy": "Wh",
    "temperature_c": "degC",
}
# Time given as text ("hh:mm:ss", "1d 02:03:04.5") or as a timestamp (seconds from first row).
TEXT_TIME_UNITS = frozenset({"hms", "datetime"})

_UNIT_ALIASES: dict[str, str] = {
    "sec": "s",
    "secs": "s",
    "second": "s",
    "seconds": "s",
    "millisecond": "ms",
    "msec": "ms",
    "µs": "us",
    "minute": "min",
    "minutes": "min",
    "mins": "min",
    "hr": "h",
    "hrs": "h",
    "hour": "h",
    "hours": "h",
    "day": "d",
    "days": "d",
    "amp": "A",
    "amps": "A",
    "ampere": "A",
    "µa": "uA",
    "μa": "uA",
    "volt": "V",
    "volts": "V",
    "a.h": "Ah",
    "ma.h": "mAh",
    "µa.h": "uAh",
    "μa.h": "uAh",
    "µah": "uAh",
    "a.s": "As",
    "ma.s": "mAs",
    "c": "degC",
    "°c": "degC",
    "℃": "degC",
    "deg c": "degC",
    "degc": "degC",
    "celsius": "degC",
    "k": "K",
    "°f": "degF",
    "degf": "degF",
    "w.h": "Wh",
    "mw.h": "mWh",
    "ws": "J",
    "w.s": "J",
    "mws": "mJ",
    "mw.s": "mJ",
    "h:min:s": "hms",
    "h:min:s.ms": "hms",
    "hh:mm:ss": "hms",
}
_CANONICAL_UNITS = {u for units in QUANTITY_UNITS.values() for u in units} | TEXT_TIME_UNITS
_CANONICAL_BY_LOWER: dict[str, str] = {}
for _unit in sorted(_CANONICAL_UNITS):
    # Case-insensitive fallback only where it is unambiguous (mA vs MA cannot clash here).
    _CANONICAL_BY_LOWER.setdefault(_unit.lower(), _unit)


def normalize_unit(unit: str | None) -> str | None:
    """Map a vendor unit spelling to the canonical one; None when unknown."""
    if unit is None:
        return None
    text = unit.strip().replace("μ", "µ")
    if text in _CANONICAL_UNITS:
        return text
    lowered = text.lower()
    if lowered in _UNIT_ALIASES:
        return _UNIT_ALIASES[lowered]
    if text.startswith("µ") and "u" + text[1:] in _CANONICAL_UNITS:
        return "u" + text[1:]
    return _CANONICAL_BY_LOWER.get(lowered)


def unit_factor(quantity: str, unit: str) -> tuple[float, float] | None:
    """(scale, offset) converting ``unit`` to the canonical unit of ``quantity``."""
    family = QUANTITY_FAMILY.get(quantity)
    if family is None:
        return None
    if family == "capacity" and unit.strip() in ("C", "mC"):
        # Coulombs, as in EC-Lab's "(Q-Qo)/C"; elsewhere a bare C means degrees Celsius.
        unit = "As" if unit.strip() == "C" else "mAs"
    canonical = normalize_unit(unit)
    if canonical is None:
        return None
    return QUANTITY_UNITS[family].get(canonical)


@functools.lru_cache(maxsize=4096)
def split_label(raw: str) -> Label:
    """The toolkit's header split, knowing the cycler units (``I/mA`` splits, ``a/b`` not).

    Cached (a ``Label`` is frozen): every sniffer splits the same header line of an upload,
    and an instrument sends the same header with every file."""
    return text.split_label(raw, is_unit=lambda unit: normalize_unit(unit) is not None)
