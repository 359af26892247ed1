"""Planned sequences from the tool's own files: a LabVIEW execution table, a controller recipe.

The parsers read what the files say; this turns it into the :class:`PlannedStep` list that
pulse alignment and the checks compare the log with (the same type a LIMS recipe expands to),
so a run without a LIMS recipe can still be checked against what the tool was told to do.
"""

from __future__ import annotations

from depositions.aldlogs.parsers.controller import cell_action, valve_of_column
from depositions.aldlogs.parsers.labview import step_kind
from depositions.aldlogs.parsers.types import ControllerRecipe, ExecutionTable, RecipeRow
from depositions.expansion import PlannedStep

# A plan is a list of steps in memory: more recipe rows than this is not a run anyone planned.
MAX_PLANNED_ROWS = 2_000_000


def plan_from_execution_table(table: ExecutionTable) -> list[PlannedStep]:
    """The execution table as a planned sequence (doses then purges, offsets summed).

    A pulse-purge step is a ``pulse`` of the dose time. A stop-flow step (``Fill-Hold``, or a
    fill pressure without process-type words) is a ``fill`` lasting the dose time: the
    precursor fills the closed chamber up to the fill pressure and stays there until the purge;
    the plan does not split the fill from the hold (their split is set by the pressure, not by
    the table), so the fill's planned width is the whole dose time. The fill pressure stays in
    the declared recipe (``metadata.declared_recipe.steps[].fill_pressure_torr``).
    """
    steps: list[PlannedStep] = []
    t = 0.0
    for row in table.steps:
        if row.precursor and row.dose_time_s:
            steps.append(_planned(row.step, step_kind(row), row.precursor, t, row.dose_time_s))
            t += row.dose_time_s
        if row.purge_time_s:
            steps.append(_planned(row.step, "purge", "", t, row.purge_time_s))
            t += row.purge_time_s
    return steps


def _planned(order: int, kind: str, label: str, start: float, duration: float) -> PlannedStep:
    return PlannedStep(
        phase="cycle",
        supercycle=None,
        block=None,
        subcycle=None,
        repetition=None,
        order=order,
        kind=kind,
        source_label=label,
        start_s=round(start, 6),
        duration_s=duration,
    )


def plan_from_controller_recipe(
    recipe: ControllerRecipe,
    loops: int,
    *,
    valve_labels: dict[str, str] | None = None,
    column_to_valve: dict[str, str] | None = None,
) -> list[PlannedStep]:
    """The planned sequence as the controller runs it: ``loops`` times the recipe rows.

    On each row the controller sets, in column order, every ALD valve cell (``aldvN``, or the
    columns of ``column_to_valve``) whose integer part is not -1 and which differs from the row
    above (the first row of a loop always acts): integer part 1 opens the valve, sleeps the
    row's delay without logging it and closes it -- a pulse of the delay; any other value
    closes the valve, sleeps the delay and closes it again -- a wait. Then, except on a loop's
    first row, it logs ``going to sleep`` and sleeps the delay once more (a purge). So a row
    repeating the row above does not pulse again, a valve row after the first lasts twice its
    delay, and a first row with nothing to set takes no time. The time the program spends
    reading the gauge and plotting (~0.1 s a row on the real tool) is not planned. Labels are
    the log's valve names (``valve 1``) unless ``valve_labels`` maps them to chemicals.
    """
    if loops < 1:
        raise ValueError("loops must be >= 1")
    if loops * max(len(recipe.rows), 1) > MAX_PLANNED_ROWS:
        # the loop count may come from a log ("run the loops this many times N")
        raise ValueError(
            f"{loops} loops of {len(recipe.rows)} rows are more than the {MAX_PLANNED_ROWS:,} "
            "recipe rows a plan is built for"
        )
    labels = valve_labels or {}
    custom = column_to_valve or {}
    mapping = {
        column: custom.get(column) or valve_of_column(column) or ""
        for column in recipe.columns
        if column in custom or valve_of_column(column)
    }
    steps: list[PlannedStep] = []
    t = 0.0

    def add(loop: int, row: RecipeRow, kind: str, valve: str | None) -> None:
        nonlocal t
        steps.append(
            PlannedStep(
                phase="cycle",
                supercycle=loop,
                block=0,
                subcycle="recipe",
                repetition=0,
                order=row.index + 1,
                kind=kind,
                source_label=labels.get(valve, valve) if valve else "",
                start_s=round(t, 6),
                duration_s=row.delay_s,
            )
        )
        t += row.delay_s

    for loop in range(loops):
        above: dict[str, float] | None = None
        for row in recipe.rows:
            cells = {c: controller_cell(row.values.get(c)) for c in mapping}
            for column, valve in mapping.items():
                before = cells[column] + 1 if above is None else above[column]
                action = cell_action(cells[column], before)
                if action == "pulse":
                    add(loop, row, "pulse", valve)
                elif action == "wait":
                    add(loop, row, "purge", None)  # valve closed, the delay slept anyway
            if above is not None:
                add(loop, row, "purge", None)
            above = cells
    return steps


def controller_cell(value: float | None) -> float:
    """A parsed recipe cell as the controller sees it (``None`` was -1 or blank)."""
    return -1.0 if value is None else value
