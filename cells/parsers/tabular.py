"""Shared flow for table-shaped exports (delimited text and spreadsheets) with column specs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from cells.parsers.mapping import (
    ColumnSpec,
    canonical_expressions,
    derived_step,
    source_dtype,
)
from cells.parsers.types import (
    CyclerData,
    canonical_eager,
    canonical_frame,
    derived_cycle,
    drop_blank_rows,
    integrated_capacity,
)
from lims.ingestion.parsing import ParseError
from lims.ingestion.text import (
    TextLayout,
    describe_exception,
    finalize,
    scan_table,
    truncated_tail_warning,
)

REQUIRED = ("time_s", "current_a", "voltage_v")


def _column_samples(layout: TextLayout) -> dict[str, list[str]]:
    return {
        name: [row[index] for row in layout.sample if index < len(row)]
        for index, name in enumerate(layout.columns)
    }


def check_required(specs: Sequence[ColumnSpec], columns: Sequence[str], what: str) -> None:
    """Vendor exports without time, current and voltage are not cycler data for us."""
    have = {spec.quantity for spec in specs}
    missing = [quantity for quantity in REQUIRED if quantity not in have]
    if missing:
        shown = ", ".join(repr(c) for c in list(columns)[:40])
        raise ParseError(
            f"{what}: no column for {', '.join(missing)} among the header columns ({shown})",
            location="header",
        )


def build_conventions(specs: Sequence[ColumnSpec]) -> dict[str, str]:
    return {
        f"column:{spec.quantity}": f"{spec.source!r} [{spec.unit}]"
        + (" x -1" if spec.sign == -1 else "")
        for spec in specs
    }


def text_to_cycler(
    layout: TextLayout,
    specs: Sequence[ColumnSpec],
    *,
    vendor: str,
    conventions: dict[str, str],
    metadata: dict[str, Any],
    warnings: list[str],
    overrides: Callable[[Mapping[str, pl.DataType]], dict[str, pl.Expr]] | None = None,
) -> CyclerData:
    """Scan a delimited export lazily and map it to the canonical columns.

    ``overrides`` replaces expressions the plain mapping cannot express (Maccor's State).
    """
    samples = _column_samples(layout)
    dtypes = {spec.source: source_dtype(spec, samples.get(spec.source, [])) for spec in specs}
    frame = drop_blank_rows(scan_table(layout, dtypes), _row_markers(specs))
    exprs = canonical_expressions(specs, dtypes, samples)
    if overrides is not None:
        exprs.update(overrides(dtypes))
    _derive_missing(exprs, conventions)
    series = finalize(canonical_frame(frame, exprs), layout)
    tail = truncated_tail_warning(layout)
    if tail:
        warnings.append(tail)
    conventions.update(build_conventions(specs))
    metadata.update(
        {
            "encoding": layout.encoding,
            "delimiter": layout.separator,
            "decimal": "," if layout.decimal_comma else ".",
            "header_line": layout.header_line + 1,
            "source_columns": list(layout.raw_columns),
        }
    )
    return CyclerData(series, vendor, conventions, metadata, warnings)


def frame_to_cycler(
    frame: pl.DataFrame,
    specs: Sequence[ColumnSpec],
    *,
    vendor: str,
    conventions: dict[str, str],
    metadata: dict[str, Any],
    warnings: list[str],
) -> CyclerData:
    """Map an in-memory table (spreadsheet, database table) to the canonical columns."""
    schema = dict(frame.schema)
    samples = {
        spec.source: [str(v) for v in frame.get_column(spec.source).head(50).drop_nulls()]
        for spec in specs
    }
    exprs = canonical_expressions(specs, schema, samples)
    _derive_missing(exprs, conventions)
    frame = drop_blank_rows(frame.lazy(), _row_markers(specs)).collect()
    series = canonical_eager(frame, exprs).lazy()
    conventions.update(build_conventions(specs))
    metadata.setdefault("source_columns", list(frame.columns))
    return CyclerData(series, vendor, conventions, metadata, warnings)


def _row_markers(specs: Sequence[ColumnSpec]) -> list[str]:
    """Columns whose values make a row a measurement: time, current, voltage when mapped.

    A blank line is null in all of them; testing these few instead of every mapped column
    keeps the filter cheap on 10 M-row scans.
    """
    markers = [spec.source for spec in specs if spec.quantity in REQUIRED]
    return markers or [spec.source for spec in specs]


def _derive_missing(exprs: dict[str, pl.Expr], conventions: dict[str, str]) -> None:
    """Step, capacity and cycle a file lacks, derived from its current (and said so)."""
    if "step" not in exprs and "current_a" in exprs:
        exprs["step"] = derived_step(exprs["current_a"])
        conventions["step"] = "derived: segment counter, +1 whenever the current sign changes"
    integrated_capacity(exprs, conventions)
    derived_cycle(exprs, conventions)


def read_excel_sheets(
    path: Path,
    choose: Callable[[list[str]], Sequence[str | int]],
    header_row: int = 0,
) -> tuple[pl.DataFrame, list[str], list[str]]:
    """Read the sheets ``choose`` picks from the sheet names and stack them (fastexcel).

    Returns the stacked frame, the chosen sheet names and all sheet names.
    """
    import fastexcel

    try:
        reader = fastexcel.read_excel(path)
        names = list(reader.sheet_names)
    except Exception as exc:  # fastexcel raises its own hierarchy plus ValueError/OSError
        raise ParseError(
            f"not a readable .xlsx workbook: {describe_exception(exc)}", location="workbook"
        ) from exc
    chosen = list(choose(names))
    if not chosen:
        raise ParseError(f"no data sheet among {names}", location="workbook")
    frames = []
    for sheet in chosen:
        try:
            frames.append(reader.load_sheet(sheet, header_row=header_row).to_polars())
        except Exception as exc:
            raise ParseError(
                f"cannot read sheet: {describe_exception(exc)}", location=f"sheet {sheet!r}"
            ) from exc
    frame = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
    if frame.height == 0:
        raise ParseError("the data sheet has no rows", location=f"sheet {chosen[0]!r}")
    picked = [names[s] if isinstance(s, int) else s for s in chosen]
    return frame, picked, names
