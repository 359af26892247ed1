"""ALD tool logs: parsers, pulse detection and run checks (pure: no ORM, no settings).

Importing the package registers its parsers (kind ``ald_log``) with ``lims.ingestion.base``:
``labview_datalog``, ``labview_execution_table``, ``labview_execution_array``,
``labview_doses``, ``labview_summary``, ``controller_eventlog``, ``controller_recipe`` and
``generic_ald_log``.
"""

from depositions.aldlogs.checks import (
    CHECKER_VERSION,
    AldCheck,
    CheckReport,
    DoseContext,
    GpcReference,
    Thresholds,
    overall_verdict,
    run_checks,
)
from depositions.aldlogs.controller import (
    ControllerEventLogParser,
    ControllerRecipeParser,
    parse_controller_log,
    parse_controller_recipe,
    plan_from_controller_recipe,
)
from depositions.aldlogs.generic import GenericAldLogParser, parse_generic_log
from depositions.aldlogs.labview import (
    LabviewDatalogParser,
    LabviewDosesParser,
    LabviewExecutionTableParser,
    LabviewSummaryParser,
    infer_valve_sources,
    merge_labview,
    parse_doses_table,
    parse_execution_table,
    parse_labview_datalog,
    parse_labview_run,
    parse_summary,
    plan_from_execution_table,
)
from depositions.aldlogs.pulses import (
    Alignment,
    DetectionOptions,
    PlannedDose,
    align_to_plan,
    detect_pulses,
    planned_doses,
)
from depositions.aldlogs.types import (
    AldLog,
    Channel,
    ControllerRecipe,
    DoseRecord,
    DosesTable,
    ExecutionStep,
    ExecutionTable,
    LogEvent,
    PulseEvent,
    RecipeRow,
    RunSummary,
)

__all__ = [
    "CHECKER_VERSION",
    "AldCheck",
    "AldLog",
    "Alignment",
    "Channel",
    "CheckReport",
    "ControllerEventLogParser",
    "ControllerRecipe",
    "ControllerRecipeParser",
    "DetectionOptions",
    "DoseContext",
    "DoseRecord",
    "DosesTable",
    "ExecutionStep",
    "ExecutionTable",
    "GenericAldLogParser",
    "GpcReference",
    "LabviewDatalogParser",
    "LabviewDosesParser",
    "LabviewExecutionTableParser",
    "LabviewSummaryParser",
    "LogEvent",
    "PlannedDose",
    "PulseEvent",
    "RecipeRow",
    "RunSummary",
    "Thresholds",
    "align_to_plan",
    "detect_pulses",
    "infer_valve_sources",
    "merge_labview",
    "overall_verdict",
    "parse_controller_log",
    "parse_controller_recipe",
    "parse_doses_table",
    "parse_execution_table",
    "parse_generic_log",
    "parse_labview_datalog",
    "parse_labview_run",
    "parse_summary",
    "plan_from_controller_recipe",
    "plan_from_execution_table",
    "planned_doses",
    "run_checks",
]
