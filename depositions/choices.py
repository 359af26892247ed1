"""Vocabularies of the ALD/MLD side: tools, precursors, recipes, runs, measurements, anneals."""

from django.db import models


class ReactorType(models.TextChoices):
    CROSS_FLOW = "cross_flow", "Cross-flow (wafer)"
    SHOWERHEAD = "showerhead", "Showerhead"
    FLUIDIZED_BED = "fluidized_bed", "Fluidized bed"
    ROTARY_DRUM = "rotary_drum", "Rotary drum"
    STATIC_BED = "static_bed", "Static powder bed"
    SPATIAL = "spatial", "Spatial ALD"


class Delivery(models.TextChoices):
    VAPOUR_DRAW = "vapour_draw", "Vapour draw"
    BUBBLER = "bubbler", "Bubbler"
    BOOSTER = "booster", "Booster"
    GAS_LINE = "gas_line", "Gas line"
    OZONE = "ozone", "Ozone generator"
    PLASMA = "plasma", "Plasma source"


class ChemicalState(models.TextChoices):
    SOLID = "solid", "Solid"
    LIQUID = "liquid", "Liquid"
    GAS = "gas", "Gas"


class LotStatus(models.TextChoices):
    SEALED = "sealed", "Sealed"
    IN_USE = "in_use", "In use"
    EMPTY = "empty", "Empty"
    DISPOSED = "disposed", "Disposed"


class RecipeMode(models.TextChoices):
    THERMAL = "thermal", "Thermal ALD"
    PLASMA = "plasma", "Plasma-enhanced ALD"
    MLD = "mld", "MLD"
    STOP_FLOW = "stop_flow", "Stop-flow (exposure)"


class StepKind(models.TextChoices):
    PULSE = "pulse", "Pulse"
    EXPOSURE = "exposure", "Exposure / hold"
    FILL = "fill", "Fill"
    PURGE = "purge", "Purge"
    PLASMA = "plasma", "Plasma"
    WAIT = "wait", "Wait"


# Step kinds that put a reactant into the chamber: they are what "pulses per source" counts.
DOSE_KINDS = frozenset({StepKind.PULSE.value, StepKind.FILL.value, StepKind.PLASMA.value})


class StepPhase(models.TextChoices):
    PRE = "pre", "Before the first cycle"
    CYCLE = "cycle", "In a sub-cycle"
    POST = "post", "After the last cycle"


class RunStatus(models.TextChoices):
    PLANNED = "planned", "Planned"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    ABORTED = "aborted", "Aborted"
    FAILED_QC = "failed_qc", "Failed QC"


class LoadRole(models.TextChoices):
    PRODUCT = "product", "Product"
    WITNESS = "witness", "Witness"


class ThicknessMethod(models.TextChoices):
    ELLIPSOMETRY = "ellipsometry", "Ellipsometry"
    XRR = "xrr", "XRR"
    TEM = "tem", "TEM"
    PROFILOMETRY = "profilometry", "Profilometry"
    QCM = "qcm", "QCM-derived"


class CompositionMethod(models.TextChoices):
    XPS = "xps", "XPS"
    ICP = "icp", "ICP-OES/MS"
    EDS = "eds", "EDS"


class AnnealAtmosphere(models.TextChoices):
    O2 = "o2", "O2"
    AR = "ar", "Ar"
    N2 = "n2", "N2"
    DRY_AIR = "dry_air", "Dry air"
    VACUUM = "vacuum", "Vacuum"


class TreatmentStatus(models.TextChoices):
    PLANNED = "planned", "Planned"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    ABORTED = "aborted", "Aborted"


class SegmentKind(models.TextChoices):
    RAMP = "ramp", "Ramp"
    DWELL = "dwell", "Dwell"
    COOL = "cool", "Cool"


class CheckStatus(models.TextChoices):
    PASS = "pass", "Pass"
    WARN = "warn", "Warn"
    FAIL = "fail", "Fail"


# A run's tool-log verdict (selectors.with_qc): the worst check status, or why there is none.
QC_VERDICTS = ("pass", "warn", "fail", "no data", "checking", "no log")
