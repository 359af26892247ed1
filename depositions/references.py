"""Reference processes shipped with the app (``data/process_references.csv``).

The loader takes the model class as an argument so the data migration can pass its historical
model. Loading is idempotent: rows are keyed by ``key``; existing rows are left as staff edited
them unless ``update=True`` (the management command's ``--update``).
"""

from __future__ import annotations

import csv
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

DATA_FILE = Path(__file__).resolve().parent / "data" / "process_references.csv"
DECIMAL_FIELDS = ("gpc_min_angstrom", "gpc_max_angstrom")
FLOAT_FIELDS = ("ionic_conductivity_s_cm", "ionic_conductivity_max_s_cm")
TEXT_FIELDS = (
    "material",
    "precursors",
    "co_reactant",
    "temperature_range",
    "application",
    "post_treatment",
    "source",
    "notes",
)


def read_rows(path: Path = DATA_FILE) -> list[dict[str, Any]]:
    """Parse the data file into field dicts; empty cells become None (numbers) or ''."""
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8", newline="") as fh:
        for line, raw in enumerate(csv.DictReader(fh), start=2):
            key = (raw.get("key") or "").strip()
            if not key:
                raise ValueError(f"{path.name} line {line}: every row needs a key")
            if not (raw.get("source") or "").strip():
                raise ValueError(f"{path.name} line {line}: every row must say its source")
            row: dict[str, Any] = {"key": key}
            for name in TEXT_FIELDS:
                row[name] = (raw.get(name) or "").strip()
            try:
                for name in DECIMAL_FIELDS:
                    text = (raw.get(name) or "").strip()
                    row[name] = Decimal(text) if text else None
                for name in FLOAT_FIELDS:
                    text = (raw.get(name) or "").strip()
                    row[name] = float(text) if text else None
            except (InvalidOperation, ValueError) as exc:
                raise ValueError(f"{path.name} line {line}: not a number ({exc})") from exc
            rows.append(row)
    return rows


def load(*, model: Any, update: bool = False, path: Path = DATA_FILE) -> tuple[int, int]:
    """Create missing reference rows (and overwrite existing ones with ``update``)."""
    created = updated = 0
    for row in read_rows(path):
        key = row.pop("key")
        obj, was_created = model.objects.get_or_create(key=key, defaults=row)
        if was_created:
            created += 1
        elif update:
            for name, value in row.items():
                setattr(obj, name, value)
            obj.save()
            updated += 1
    return created, updated
