"""Charge or discharge from a row's step state, for vendors whose counters are not split.

Several exports write one unsigned capacity (and energy) counter per step and say in a state
column whether the step charges or discharges (Maccor ``State``, Neware ``Step Type``, Novonix
``Step Type`` codes, PEC ``Instruction Name``, Landt ``Step-State``). The state decides the
direction; rows whose state says neither (rest, pulse, unknown) fall back to the current's sign.
"""

from __future__ import annotations

import polars as pl

# Lower-cased state words (English and Chinese-locale exports); "discharge" words first because
# "dchg"/"discharge" contain "chg"/"charge".
DISCHARGE_WORDS = r"dchg|dischg|discharg|放电|^d$"
CHARGE_WORDS = r"chg|charg|充电|^c$"


def state_direction(state: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(is_charge, is_discharge) from a text state; both false where it says neither."""
    text = state.cast(pl.String).str.strip_chars().str.to_lowercase()
    discharge = text.str.contains(DISCHARGE_WORDS).fill_null(False)
    charge = (~discharge & text.str.contains(CHARGE_WORDS)).fill_null(False)
    return charge, discharge


def apply_direction(
    exprs: dict[str, pl.Expr], charge: pl.Expr, discharge: pl.Expr
) -> dict[str, pl.Expr]:
    """Sign the current and split single counters by direction, in place.

    ``exprs`` holds the canonical expressions of the plain columns; single unsigned counters
    are passed as ``capacity_ah``/``energy_wh``. The current is made ``+|I|`` on charge rows and
    ``-|I|`` on discharge rows (other rows as written); a single counter goes to charge on charge
    rows, discharge on discharge rows, and by the current's sign on the others.
    """
    current = exprs.get("current_a")
    if current is not None:
        exprs["current_a"] = (
            pl.when(charge)
            .then(current.abs())
            .when(discharge)
            .then(-current.abs())
            .otherwise(current)
        )
        charge = charge | (~discharge & (current > 0))
        discharge = discharge | (~charge & (current < 0))
    for name in ("capacity_ah", "energy_wh"):
        value = exprs.pop(name, None)
        if value is None or f"charge_{name}" in exprs or f"discharge_{name}" in exprs:
            continue
        exprs[f"charge_{name}"] = pl.when(charge).then(value).otherwise(0.0)
        exprs[f"discharge_{name}"] = pl.when(discharge).then(value).otherwise(0.0)
    return exprs
