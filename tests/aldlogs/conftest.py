"""Shared fixtures of the ALD log tests: the real files and the recipes they ran.

No database: everything here is pure parsing and arithmetic.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from depositions.aldlogs.parsers.controller import parse_controller_log, parse_controller_recipe
from depositions.aldlogs.parsers.labview import (
    parse_doses_table,
    parse_execution_table,
    parse_labview_datalog,
    parse_labview_run,
    parse_summary,
)
from depositions.aldlogs.parsers.types import (
    AldLog,
    ControllerRecipe,
    DosesTable,
    ExecutionTable,
    RunSummary,
)
from depositions.expansion import BlockSpec, RecipeSpec, StepSpec, SubCycleSpec
from lims.ingestion.parsing import ParseContext

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ald"
LABVIEW = FIXTURES / "labview_qcm_run"
STEM = "20190524_Run1_TMA-H2O-50cycles_TMA-10Pulses_TMA-H2O-20cycles_425C_GaPO4"
DATALOG = LABVIEW / f"{STEM}_DataLog.txt"
DOSES = LABVIEW / f"{STEM}_Doses-DeltaM.txt"
EXECUTION = LABVIEW / f"{STEM}_ExecutionTable.txt"
SUMMARY = LABVIEW / f"{STEM}_Summary.txt"
CONTROLLER = FIXTURES / "controller_eventlog"
EVENTLOG = CONTROLLER / "synthetic_controller_eventlog_deadvalve.log"
RECIPE_CSV = CONTROLLER / "synthetic_controller_recipe.csv"
CYCLER = Path(__file__).resolve().parents[1] / "fixtures" / "cycler"


def ctx_for(path: Path, **metadata: object) -> ParseContext:
    return ParseContext(filename=path.name, size=path.stat().st_size, metadata=dict(metadata))


def _step(order: int, kind: str, label: str, duration: float) -> StepSpec:
    return StepSpec(order=order, kind=kind, source_label=label, duration_s=duration)


def labview_recipe() -> RecipeSpec:
    """The run as its notes describe it: 5 min purge, 50 x TMA(1 s)/20 s/H2O(2 s)/20 s,
    5 min purge, 10 x TMA/20 s, 5 min purge, 20 x TMA/H2O, 10 min purge."""
    al2o3 = SubCycleSpec(
        "Al2O3",
        (
            _step(1, "pulse", "TMA", 1.0),
            _step(2, "purge", "", 20.0),
            _step(3, "pulse", "H2O", 2.0),
            _step(4, "purge", "", 20.0),
        ),
        gpc_angstrom=1.05,
    )
    tma_only = SubCycleSpec(
        "TMA-only", (_step(1, "pulse", "TMA", 1.0), _step(2, "purge", "", 20.0))
    )
    long_purge = SubCycleSpec("long purge", (_step(1, "purge", "", 300.0),))
    return RecipeSpec(
        subcycles=(al2o3, tma_only, long_purge),
        blocks=(
            BlockSpec("Al2O3", 50),
            BlockSpec("long purge", 1),
            BlockSpec("TMA-only", 10),
            BlockSpec("long purge", 1),
            BlockSpec("Al2O3", 20),
        ),
        repeats=1,
        pre_steps=(_step(1, "purge", "", 300.0),),
        post_steps=(_step(1, "purge", "", 600.0),),
    )


@pytest.fixture(scope="session")
def labview_log() -> AldLog:
    return parse_labview_run([DATALOG, DOSES, EXECUTION, SUMMARY])


@pytest.fixture(scope="session")
def datalog_only() -> AldLog:
    return parse_labview_datalog(DATALOG, ctx_for(DATALOG))


@pytest.fixture(scope="session")
def doses_table() -> DosesTable:
    return parse_doses_table(DOSES, ctx_for(DOSES))


@pytest.fixture(scope="session")
def execution_table() -> ExecutionTable:
    return parse_execution_table(EXECUTION, ctx_for(EXECUTION))


@pytest.fixture(scope="session")
def summary() -> RunSummary:
    return parse_summary(SUMMARY, ctx_for(SUMMARY))


@pytest.fixture(scope="session")
def controller_log() -> AldLog:
    return parse_controller_log(EVENTLOG, ctx_for(EVENTLOG))


@pytest.fixture(scope="session")
def controller_recipe() -> ControllerRecipe:
    return parse_controller_recipe(RECIPE_CSV, ctx_for(RECIPE_CSV))
