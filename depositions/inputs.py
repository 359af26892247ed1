"""Typed inputs of the services (what the API and forms hand over after validation)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from depositions.models import ToolSource
    from samples.models import Sample


@dataclass
class StepInput:
    kind: str
    duration_s: Decimal
    source_label: str = ""
    source: ToolSource | None = None
    flow_sccm: Decimal | None = None
    plasma_power_w: Decimal | None = None


@dataclass
class SubCycleInput:
    name: str
    steps: list[StepInput] = field(default_factory=list)
    gpc_angstrom: Decimal | None = None
    target_material: str = ""


@dataclass
class BlockInput:
    subcycle: str
    repeat: int = 1


@dataclass
class SegmentInput:
    kind: str
    target_c: Decimal
    rate_k_per_min: Decimal | None = None
    duration_min: Decimal | None = None


@dataclass
class LoadOutput:
    """Override what a run load becomes; defaults: code '<sample>.<run>', same quantity."""

    code: str | None = None
    quantity: Decimal | None = None


@dataclass
class AnnealInput:
    sample: Sample
    quantity: Decimal | None = None  # default: all that remains
    output_code: str | None = None
