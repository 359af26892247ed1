"""Units written in ALD log headers and their conversion to canonical units.

Headers carry units in brackets (``Chamber Pressure [Torr]``, ``HTR6(C)``, ``Mass [ng/cm²]``)
in whatever the instrument's code page made of the degree and superscript signs (LabVIEW
writes ``ºC`` with the ordinal indicator, not ``°``). Canonical units: Torr, degC, sccm,
ng/cm2, Hz, W, s. A unit we do not know is never guessed: the column keeps its values as
written under the role ``other`` (auto-detected headers) or the parse fails (explicit maps).
"""

from __future__ import annotations

import re

from lims.ingestion.text import split_label

TORR_PER_PA = 1.0 / 133.322368

# role family -> normalised unit -> (scale, offset): canonical = raw * scale + offset
UNIT_TABLE: dict[str, dict[str, tuple[float, float]]] = {
    "pressure": {
        "torr": (1.0, 0.0),
        "mtorr": (1e-3, 0.0),
        "utorr": (1e-6, 0.0),
        "mmhg": (1.000000142, 0.0),
        "pa": (TORR_PER_PA, 0.0),
        "kpa": (1e3 * TORR_PER_PA, 0.0),
        "hpa": (1e2 * TORR_PER_PA, 0.0),
        "mbar": (1e2 * TORR_PER_PA, 0.0),
        "ubar": (1e-1 * TORR_PER_PA, 0.0),
        "bar": (1e5 * TORR_PER_PA, 0.0),
        "psi": (6894.757293168 * TORR_PER_PA, 0.0),
        "psia": (6894.757293168 * TORR_PER_PA, 0.0),
        "atm": (760.0, 0.0),
    },
    "temperature": {
        "degc": (1.0, 0.0),
        "k": (1.0, -273.15),
        "degf": (5.0 / 9.0, -160.0 / 9.0),
    },
    "mfc": {
        "sccm": (1.0, 0.0),
        "ml/min": (1.0, 0.0),
        "slm": (1e3, 0.0),
        "slpm": (1e3, 0.0),
        "l/min": (1e3, 0.0),
    },
    "qcm_mass": {
        "ng/cm2": (1.0, 0.0),
        "ug/cm2": (1e3, 0.0),
        "mg/cm2": (1e6, 0.0),
        "ng/mm2": (1e2, 0.0),
    },
    "qcm_frequency": {"hz": (1.0, 0.0), "khz": (1e3, 0.0), "mhz": (1e6, 0.0)},
    "power": {"w": (1.0, 0.0), "kw": (1e3, 0.0), "mw": (1e-3, 0.0)},
    "time": {
        "s": (1.0, 0.0),
        "ms": (1e-3, 0.0),
        "us": (1e-6, 0.0),
        "min": (60.0, 0.0),
        "h": (3600.0, 0.0),
    },
    "valve": {"1": (1.0, 0.0), "v": (1.0, 0.0), "bool": (1.0, 0.0)},
}
FAMILY_OF_ROLE: dict[str, str] = {
    "pressure": "pressure",
    "temperature": "temperature",
    "temperature_setpoint": "temperature",
    "mfc": "mfc",
    "qcm_mass": "qcm_mass",
    "qcm_frequency": "qcm_frequency",
    "power": "power",
    "valve": "valve",
}
_ALIASES: dict[str, str] = {
    "c": "degc",
    "°c": "degc",
    "ºc": "degc",
    "˚c": "degc",
    "deg": "degc",
    "degc": "degc",
    "deg.c": "degc",
    "celsius": "degc",
    "℃": "degc",
    "°k": "k",
    "kelvin": "k",
    "f": "degf",
    "°f": "degf",
    "ºf": "degf",
    "millitorr": "mtorr",
    "mt": "mtorr",
    "torr": "torr",
    "pascal": "pa",
    "millibar": "mbar",
    "ng/cm^2": "ng/cm2",
    "ng/sqcm": "ng/cm2",
    "µg/cm2": "ug/cm2",
    "ug/cm^2": "ug/cm2",
    "sec": "s",
    "secs": "s",
    "seconds": "s",
    "msec": "ms",
    "watt": "w",
    "watts": "w",
    "0/1": "1",
    "on/off": "1",
    "": "1",
}


def normalize_unit(unit: str | None) -> str | None:
    """Lower-case comparison key of a unit as written (``ng/cm²`` -> ``ng/cm2``)."""
    if unit is None:
        return None
    text = (
        unit.strip()
        .replace("²", "2")
        .replace("³", "3")
        .replace("μ", "u")
        .replace("µ", "u")
        .replace(" ", "")
        .lower()
    )
    return _ALIASES.get(text, text)


def conversion(role: str, unit: str | None) -> tuple[float, float] | None:
    """(scale, offset) from ``unit`` to the canonical unit of ``role``; None when unknown."""
    family = FAMILY_OF_ROLE.get(role)
    if family is None:
        return (1.0, 0.0)
    key = normalize_unit(unit)
    if key is None:
        return (1.0, 0.0) if family == "valve" else None
    return UNIT_TABLE[family].get(key)


def family_of_unit(unit: str | None) -> str | None:
    """Which quantity a unit measures (``mbar`` -> pressure), None when unknown or ambiguous."""
    key = normalize_unit(unit)
    if key is None:
        return None
    for family, units in UNIT_TABLE.items():
        if family == "valve":
            continue
        if key in units:
            return family
    return None


def time_scale(unit: str | None) -> float | None:
    key = normalize_unit(unit) or "s"
    factor = UNIT_TABLE["time"].get(key)
    return None if factor is None else factor[0]


def split_header(label: str) -> tuple[str, str | None]:
    """``Chamber Pressure [Torr]`` -> (``Chamber Pressure``, ``Torr``)."""
    parsed = split_label(label, is_unit=lambda unit: family_of_unit(unit) is not None)
    return parsed.name or label.strip(), parsed.unit


_VALVE_LABEL = re.compile(
    r"^(mod\d+\s*/\s*do\d+|do\d+|dio\d+|valve\b.*|.*\bvalve\s*\d+.*|ald\s*v(alve)?\s*\d+|v\d+)$",
    re.IGNORECASE,
)
_SETPOINT = re.compile(r"(set\s*-?point|\bsp\b|\bsetp\b|target)", re.IGNORECASE)
_NOT_QCM = re.compile(r"(\brf\b|plasma|generator|match)", re.IGNORECASE)
_OFFSET = re.compile(r"(offset|tooling|life)", re.IGNORECASE)
_ZONES = (
    ("line", re.compile(r"\b(line|manifold|delivery)\b", re.IGNORECASE)),
    ("source", re.compile(r"\b(source|bubbler|booster|bottle|cylinder)\b", re.IGNORECASE)),
    ("chamber", re.compile(r"\b(chamber|reactor|wall|lid)\b", re.IGNORECASE)),
    ("substrate", re.compile(r"\b(substrate|chuck|stage|sample|susceptor)\b", re.IGNORECASE)),
)


def infer_role(name: str, unit: str | None) -> str:
    """Role of a column from its header words and unit; ``other`` when unsure.

    The unit decides the quantity (a temperature without a unit cannot be converted, so it is
    not taken as one); the words decide between roles that share a unit (a temperature and its
    setpoint, the QCM mass and its offset).
    """
    family = family_of_unit(unit)
    key = normalize_unit(unit)
    if _VALVE_LABEL.match(name.strip()) and (key is None or key in UNIT_TABLE["valve"]):
        return "valve"
    setpoint = bool(_SETPOINT.search(name))
    if family == "temperature":
        return "temperature_setpoint" if setpoint else "temperature"
    if family == "qcm_mass":
        return "other" if _OFFSET.search(name) else "qcm_mass"
    if family == "qcm_frequency":
        return "qcm_frequency" if "freq" in name.lower() and not _NOT_QCM.search(name) else "other"
    if family in ("pressure", "mfc", "power") and not setpoint:
        return family
    return "other"


def infer_zone(name: str) -> str | None:
    for zone, pattern in _ZONES:
        if pattern.search(name):
            return zone
    return None


def slug(name: str) -> str:
    """A stable channel name (kept readable: only whitespace is normalised)."""
    return " ".join(name.split())
