"""ALD/MLD tools, precursor bottles, recipes, runs, film measurements and anneals.

Writes go through ``depositions.services``; nothing else calls ``save()``. A run and an anneal
each own one ``samples.Operation``: that is where inputs are debited and coated or annealed
outputs enter the sample lineage.
"""

from __future__ import annotations

import re
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from depositions.choices import (
    AnnealAtmosphere,
    CheckStatus,
    ChemicalState,
    CompositionMethod,
    Delivery,
    LoadRole,
    LotStatus,
    ReactorType,
    RecipeMode,
    RunStatus,
    SegmentKind,
    StepKind,
    StepPhase,
    ThicknessMethod,
    TreatmentStatus,
)

CODE_VALIDATOR = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
    "letters, digits, '.', '_' and '-' only, so the code prints as a barcode and reads back",
)
_POS = [MinValueValidator(Decimal("0"))]
_CAS = re.compile(r"^(\d{2,7})-(\d{2})-(\d)$")


def validate_cas(value: str) -> None:
    """CAS numbers carry a check digit: a typo is caught here, not months later."""
    match = _CAS.match(value)
    if not match:
        raise ValidationError(f"{value!r} is not a CAS number (like 75-24-1)")
    digits = (match.group(1) + match.group(2))[::-1]
    if sum((i + 1) * int(d) for i, d in enumerate(digits)) % 10 != int(match.group(3)):
        raise ValidationError(f"{value!r}: the CAS check digit does not match")


def _dec(max_digits: int = 10, places: int = 4, help_text: str = "") -> models.DecimalField:
    """An optional, non-negative decimal."""
    return models.DecimalField(
        max_digits=max_digits,
        decimal_places=places,
        null=True,
        blank=True,
        validators=_POS,
        help_text=help_text,
    )


def _temp(help_text: str = "") -> models.DecimalField:
    return models.DecimalField(
        max_digits=7, decimal_places=2, null=True, blank=True, help_text=help_text
    )


# --- tools and sources -------------------------------------------------------------------


class Tool(models.Model):
    """The ALD side of an instrument: what kind of reactor it is and how many chambers."""

    instrument = models.OneToOneField(
        "lims.Instrument",
        on_delete=models.PROTECT,
        related_name="ald_tool",
        limit_choices_to={"kind": "ald_tool"},
    )
    reactor_type = models.CharField(max_length=20, choices=ReactorType.choices)
    chambers = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    check_thresholds = models.JSONField(
        default=dict,
        blank=True,
        encoder=DjangoJSONEncoder,
        help_text="Per-tool overrides of the tool-log check thresholds (docs/ald-checks.md)",
    )
    log_mapping = models.ForeignKey(
        "lims.ColumnMapping",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        limit_choices_to={"parser_name": "generic_ald_log"},
        help_text="Channel map for the tool's plain CSV/TSV logs (no dedicated parser)",
    )
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["instrument__name"]

    def __str__(self) -> str:
        return str(self.instrument)

    def clean(self) -> None:
        if self.instrument_id and self.instrument.kind != "ald_tool":
            raise ValidationError({"instrument": "the instrument must be of kind 'ALD tool'"})
        from depositions.aldlogs.checks import Thresholds  # pure module, no models

        try:
            Thresholds.from_dict(self.check_thresholds)
        except (TypeError, ValueError) as exc:
            raise ValidationError({"check_thresholds": str(exc)}) from exc
        mapping = self.log_mapping if self.log_mapping_id else None
        if mapping and self.instrument_id and mapping.project_id != self.instrument.project_id:
            raise ValidationError({"log_mapping": "the map belongs to another project"})


class ToolSource(models.Model):
    """A precursor or gas port on a tool, with the log channel its valve is recorded under."""

    tool = models.ForeignKey(Tool, on_delete=models.CASCADE, related_name="sources")
    label = models.CharField(max_length=50, help_text="Port label on the tool, e.g. 'P3'")
    reactant = models.CharField(
        max_length=100,
        blank=True,
        help_text="What the port usually delivers, as recipes name it (e.g. 'TMA', 'H2O')",
    )
    log_channel = models.CharField(
        max_length=100, blank=True, help_text="Column/channel name of this valve in tool logs"
    )
    delivery = models.CharField(max_length=20, choices=Delivery.choices)
    source_temperature_c = _temp("Bubbler/booster temperature")
    line_temperature_c = _temp("Delivery line temperature (keep above the source)")
    dose_umol_per_pulse = _dec(
        12,
        4,
        "Calibrated amount per pulse (e.g. bottle mass loss / pulses); empty = unknown",
    )
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["tool", "label"]
        constraints = [
            models.UniqueConstraint(fields=["tool", "label"], name="toolsource_unique_label"),
        ]

    def __str__(self) -> str:
        what = f" ({self.reactant})" if self.reactant else ""
        return f"{self.tool} {self.label}{what}"


# --- chemicals and bottles ---------------------------------------------------------------


class Chemical(models.Model):
    """A precursor or co-reactant; synonyms make 'TMA' find trimethylaluminum."""

    name = models.CharField(max_length=120, unique=True)
    formula = models.CharField(max_length=120, blank=True)
    synonyms = models.JSONField(
        default=list, blank=True, help_text="Other names and abbreviations, e.g. ['TMA']"
    )
    cas_number = models.CharField(
        "CAS number", max_length=20, blank=True, validators=[validate_cas]
    )
    molar_mass_g_mol = _dec(10, 4, "g/mol")
    state = models.CharField(max_length=10, choices=ChemicalState.choices)
    hazards = models.TextField(blank=True)
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not isinstance(self.synonyms, list) or not all(
            isinstance(s, str) and s.strip() for s in self.synonyms
        ):
            raise ValidationError({"synonyms": "a list of non-empty names"})
        self.synonyms = [s.strip() for s in self.synonyms]


class PrecursorLot(models.Model):
    """A bottle: the chemistry side of a received material lot."""

    material_lot = models.OneToOneField(
        "samples.MaterialLot", on_delete=models.PROTECT, related_name="precursor"
    )
    chemical = models.ForeignKey(Chemical, on_delete=models.PROTECT, related_name="lots")
    bottle_label = models.CharField(max_length=100)
    fill_date = models.DateField(null=True, blank=True)
    opened_on = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=LotStatus.choices, default=LotStatus.SEALED)
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["chemical", "bottle_label"]

    def __str__(self) -> str:
        return f"{self.chemical} bottle {self.bottle_label}"


class SourceInstallation(models.Model):
    """Which bottle sat on which port, from when to when (open = still installed)."""

    tool_source = models.ForeignKey(
        ToolSource, on_delete=models.CASCADE, related_name="installations"
    )
    precursor_lot = models.ForeignKey(
        PrecursorLot, on_delete=models.PROTECT, related_name="installations"
    )
    installed_at = models.DateTimeField()
    removed_at = models.DateTimeField(null=True, blank=True)
    installed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    notes = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["tool_source", "-installed_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tool_source"],
                condition=Q(removed_at__isnull=True),
                name="installation_one_open_per_port",
            ),
            models.UniqueConstraint(
                fields=["precursor_lot"],
                condition=Q(removed_at__isnull=True),
                name="installation_one_open_per_bottle",
            ),
            models.CheckConstraint(
                condition=Q(removed_at__isnull=True) | Q(removed_at__gte=models.F("installed_at")),
                name="installation_removed_after_installed",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.precursor_lot} on {self.tool_source}"


# --- recipes ------------------------------------------------------------------------------


class ProcessReference(models.Model):
    """A literature process (seed data file + staff edits): what GPC and sigma to expect."""

    key = models.SlugField(max_length=100, unique=True, help_text="Stable id in the data file")
    material = models.CharField(max_length=100)
    precursors = models.CharField(max_length=200, blank=True)
    co_reactant = models.CharField(max_length=200, blank=True)
    temperature_range = models.CharField(max_length=100, blank=True, help_text="degC, as given")
    gpc_min_angstrom = _dec(6, 3, "Å/cycle")
    gpc_max_angstrom = _dec(6, 3, "Å/cycle (same as min when one value is given)")
    ionic_conductivity_s_cm = models.FloatField(
        null=True, blank=True, help_text="S/cm near room temperature (lower value of a range)"
    )
    ionic_conductivity_max_s_cm = models.FloatField(
        null=True, blank=True, help_text="Upper value when the source gives a range"
    )
    application = models.CharField(max_length=200, blank=True)
    post_treatment = models.CharField(max_length=200, blank=True)
    source = models.TextField(help_text="Where each value comes from")
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["material", "key"]

    def __str__(self) -> str:
        return f"{self.material} ({self.precursors or 'precursors n/a'})"


class Recipe(models.Model):
    """A versioned process. Frozen once a run uses it: edits then go into a new version."""

    project = models.ForeignKey("lims.Project", on_delete=models.PROTECT, related_name="recipes")
    name = models.CharField(max_length=120)
    version = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    mode = models.CharField(max_length=20, choices=RecipeMode.choices, default=RecipeMode.THERMAL)
    target_material = models.CharField(max_length=100, blank=True)
    deposition_temperature_c = _temp("Deposition (substrate) temperature")
    chamber_pressure_torr = _dec(10, 4, "Torr")
    carrier_gas = models.CharField(max_length=30, blank=True)
    carrier_flow_sccm = _dec(10, 2, "sccm")
    film_density_g_cm3 = _dec(
        8,
        3,
        "Density of the deposited film, g/cm3: with BET area and thickness, the expected "
        "coating loading of a powder",
    )
    supercycle_repeats = models.PositiveIntegerField(
        default=1, validators=[MinValueValidator(1)], help_text="N: times the block list runs"
    )
    process_reference = models.ForeignKey(
        ProcessReference, null=True, blank=True, on_delete=models.SET_NULL, related_name="recipes"
    )
    previous_version = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="next_versions"
    )
    frozen = models.BooleanField(default=False, editable=False)
    frozen_at = models.DateTimeField(null=True, blank=True, editable=False)
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "name", "version"], name="recipe_unique_version"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class SubCycle(models.Model):
    """One binary process (e.g. 'Li2O' = LiOtBu pulse, purge, H2O pulse, purge)."""

    recipe = models.ForeignKey(Recipe, on_delete=models.CASCADE, related_name="subcycles")
    name = models.CharField(max_length=60)
    order = models.PositiveSmallIntegerField()
    gpc_angstrom = _dec(6, 3, "Reference growth per sub-cycle, Å")
    target_material = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["recipe", "order"]
        constraints = [
            models.UniqueConstraint(fields=["recipe", "name"], name="subcycle_unique_name"),
            models.UniqueConstraint(fields=["recipe", "order"], name="subcycle_unique_order"),
        ]

    def __str__(self) -> str:
        return f"{self.recipe} / {self.name}"


class Step(models.Model):
    """A dose, purge or wait; in a sub-cycle, or before/after all cycles of a recipe.

    ``source_label`` is the canonical identity of the reactant ('TMA', 'H2O'), so a recipe can
    be written before a tool is chosen; ``source`` optionally pins it to a tool port.
    """

    subcycle = models.ForeignKey(
        SubCycle, null=True, blank=True, on_delete=models.CASCADE, related_name="steps"
    )
    recipe = models.ForeignKey(
        Recipe, null=True, blank=True, on_delete=models.CASCADE, related_name="extra_steps"
    )
    phase = models.CharField(max_length=10, choices=StepPhase.choices, default=StepPhase.CYCLE)
    order = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=20, choices=StepKind.choices)
    source = models.ForeignKey(
        ToolSource, null=True, blank=True, on_delete=models.SET_NULL, related_name="steps"
    )
    source_label = models.CharField(max_length=60, blank=True)
    duration_s = models.DecimalField(max_digits=10, decimal_places=4, validators=_POS)
    flow_sccm = _dec(10, 2, "sccm")
    plasma_power_w = _dec(8, 1, "W")

    class Meta:
        ordering = ["phase", "order"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(subcycle__isnull=False, recipe__isnull=True, phase="cycle")
                    | Q(subcycle__isnull=True, recipe__isnull=False, phase__in=["pre", "post"])
                ),
                name="step_in_subcycle_or_pre_post",
            ),
            models.UniqueConstraint(
                fields=["subcycle", "order"],
                condition=Q(subcycle__isnull=False),
                name="step_unique_order_in_subcycle",
            ),
            models.UniqueConstraint(
                fields=["recipe", "phase", "order"],
                condition=Q(recipe__isnull=False),
                name="step_unique_order_in_phase",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.source_label} {self.duration_s} s"

    def clean(self) -> None:
        if self.kind == StepKind.PLASMA and self.plasma_power_w is None:
            raise ValidationError({"plasma_power_w": "a plasma step needs its power (W)"})
        source = self.source if self.source_id else None
        if source is not None:
            # another project's port would hand its reactant back through this recipe
            recipe = self.subcycle.recipe if self.subcycle is not None else self.recipe
            if recipe is not None and source.tool.instrument.project_id != recipe.project_id:
                raise ValidationError({"source": "no such tool port in this recipe's project"})


class SupercycleBlock(models.Model):
    """'Run sub-cycle X ``repeat`` times' at position ``order`` of the supercycle."""

    recipe = models.ForeignKey(Recipe, on_delete=models.CASCADE, related_name="blocks")
    order = models.PositiveSmallIntegerField()
    subcycle = models.ForeignKey(SubCycle, on_delete=models.CASCADE, related_name="blocks")
    repeat = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])

    class Meta:
        ordering = ["recipe", "order"]
        constraints = [
            models.UniqueConstraint(fields=["recipe", "order"], name="block_unique_order"),
            models.CheckConstraint(condition=Q(repeat__gte=1), name="block_repeat_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.subcycle.name} x{self.repeat}"


# --- runs -----------------------------------------------------------------------------------


class DepositionRun(models.Model):
    code = models.CharField(max_length=64, unique=True, validators=[CODE_VALIDATOR])
    project = models.ForeignKey(
        "lims.Project", on_delete=models.PROTECT, related_name="deposition_runs"
    )
    tool = models.ForeignKey(Tool, on_delete=models.PROTECT, related_name="runs")
    chamber = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    recipe = models.ForeignKey(Recipe, on_delete=models.PROTECT, related_name="runs")
    recipe_snapshot = models.JSONField(
        default=dict, blank=True, editable=False, encoder=DjangoJSONEncoder
    )
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.PLANNED)
    qc_failed_by_log = models.BooleanField(
        default=False,
        help_text="Failed QC because of its tool-log checks (a re-check may take it back); "
        "False when a person failed it",
    )
    setpoint_temperature_c = _temp()
    measured_temperature_c = _temp("As the thermocouples read (may differ from the setpoint)")
    base_pressure_torr = _dec(12, 6, "Torr")
    planned_cycles = models.PositiveIntegerField(help_text="Supercycle repeats N of the recipe")
    actual_cycles = models.PositiveIntegerField(null=True, blank=True)
    operation = models.OneToOneField(
        "samples.Operation",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="deposition_run",
        editable=False,
    )
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True)
                | Q(started_at__isnull=True)
                | Q(ended_at__gte=models.F("started_at")),
                name="run_ends_after_start",
            ),
        ]

    def __str__(self) -> str:
        return self.code


class RunLoad(models.Model):
    """A sample in the reactor; ``quantity`` (in the sample's unit) is what the run consumes."""

    run = models.ForeignKey(DepositionRun, on_delete=models.CASCADE, related_name="loads")
    sample = models.ForeignKey(
        "samples.Sample", on_delete=models.PROTECT, related_name="deposition_loads"
    )
    role = models.CharField(max_length=10, choices=LoadRole.choices, default=LoadRole.PRODUCT)
    position = models.CharField(max_length=100, blank=True)
    mass_g = _dec(14, 6, "g loaded (powders)")
    bet_m2_g = _dec(10, 4, "BET m²/g (default: the sample's)")
    area_cm2 = _dec(10, 4, "cm² (wafers, pellets, foils)")
    quantity = models.DecimalField(
        max_digits=14,
        decimal_places=6,
        validators=_POS,
        help_text="Taken from the sample, in the sample's unit",
    )
    output_sample = models.OneToOneField(
        "samples.Sample",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="coated_by_load",
        editable=False,
    )
    notes = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["run", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["run", "sample"], name="runload_unique_sample"),
        ]

    def __str__(self) -> str:
        return f"{self.sample} in {self.run} ({self.role})"

    @property
    def surface_area_m2(self) -> Decimal | None:
        """Powder surface area = mass x BET; None when either is unknown."""
        if self.mass_g is None or self.bet_m2_g is None:
            return None
        return self.mass_g * self.bet_m2_g


class RunPrecursor(models.Model):
    """The bottle that was actually on a port during a run."""

    run = models.ForeignKey(DepositionRun, on_delete=models.CASCADE, related_name="precursors")
    tool_source = models.ForeignKey(ToolSource, on_delete=models.PROTECT, related_name="+")
    precursor_lot = models.ForeignKey(
        PrecursorLot, on_delete=models.PROTECT, related_name="run_uses"
    )
    from_installation = models.BooleanField(
        default=False, help_text="Filled in from the installation history (not typed by hand)"
    )

    class Meta:
        ordering = ["run", "tool_source__label"]
        constraints = [
            models.UniqueConstraint(fields=["run", "tool_source"], name="runprecursor_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.run}: {self.precursor_lot} on {self.tool_source.label}"


# --- measurements on run outputs -------------------------------------------------------------


class ThicknessMeasurement(models.Model):
    sample = models.ForeignKey(
        "samples.Sample", on_delete=models.CASCADE, related_name="thickness_measurements"
    )
    run = models.ForeignKey(
        DepositionRun,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="thickness_measurements",
    )
    method = models.CharField(max_length=20, choices=ThicknessMethod.choices)
    value_nm = models.DecimalField(max_digits=10, decimal_places=3, validators=_POS)
    uncertainty_nm = _dec(10, 3)
    location = models.CharField(max_length=100, blank=True, help_text="e.g. 'centre', 'x=10 mm'")
    optical_model = models.CharField(max_length=200, blank=True, help_text="Ellipsometry model")
    measured_at = models.DateTimeField()
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["-measured_at"]

    def __str__(self) -> str:
        return f"{self.sample} {self.value_nm} nm ({self.method})"


class CompositionMeasurement(models.Model):
    sample = models.ForeignKey(
        "samples.Sample", on_delete=models.CASCADE, related_name="composition_measurements"
    )
    run = models.ForeignKey(
        DepositionRun,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="composition_measurements",
    )
    method = models.CharField(max_length=10, choices=CompositionMethod.choices)
    fractions = models.JSONField(help_text='Atomic fractions, e.g. {"Li": 0.2, "Nb": 0.2}')
    li_to_metal_ratio = models.DecimalField(
        max_digits=8, decimal_places=4, null=True, blank=True, validators=_POS
    )
    coating_wt_pct = _dec(
        8, 4, "Coating mass fraction of a coated powder, wt % (e.g. from ICP of Nb or Al)"
    )
    measured_at = models.DateTimeField()
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["-measured_at"]

    def __str__(self) -> str:
        return f"{self.sample} {self.method} composition"


class FilmProperty(models.Model):
    sample = models.ForeignKey(
        "samples.Sample", on_delete=models.CASCADE, related_name="film_properties"
    )
    run = models.ForeignKey(
        DepositionRun,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="film_properties",
    )
    density_g_cm3 = _dec(8, 4, "g/cm³")
    refractive_index = _dec(8, 4)
    wavelength_nm = _dec(8, 1, "Wavelength of the refractive index")
    roughness_nm = _dec(10, 3, "nm (RMS)")
    ionic_conductivity_s_cm = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0)], help_text="S/cm"
    )
    temperature_c = _temp("Temperature the property was measured at")
    method = models.CharField(max_length=100, blank=True)
    measured_at = models.DateTimeField()
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["-measured_at"]
        verbose_name_plural = "film properties"

    def __str__(self) -> str:
        return f"{self.sample} film properties"


# --- anneals -------------------------------------------------------------------------------


class PostTreatment(models.Model):
    """An anneal: segments in an atmosphere; inputs -> annealed outputs through one operation."""

    code = models.CharField(max_length=64, unique=True, validators=[CODE_VALIDATOR])
    project = models.ForeignKey(
        "lims.Project", on_delete=models.PROTECT, related_name="post_treatments"
    )
    furnace = models.ForeignKey(
        "lims.Instrument",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="post_treatments",
        limit_choices_to={"kind": "furnace"},
    )
    atmosphere = models.CharField(max_length=10, choices=AnnealAtmosphere.choices)
    gas_flow_sccm = _dec(10, 2, "sccm")
    pressure_torr = _dec(12, 6, "Torr")
    start_temperature_c = models.DecimalField(
        max_digits=7,
        decimal_places=2,
        default=Decimal("25"),
        help_text="Where the first ramp starts",
    )
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=20, choices=TreatmentStatus.choices, default=TreatmentStatus.PLANNED
    )
    operation = models.OneToOneField(
        "samples.Operation",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="post_treatment",
        editable=False,
    )
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.code

    def clean(self) -> None:
        if self.furnace_id and self.furnace is not None and self.furnace.kind != "furnace":
            raise ValidationError({"furnace": "the instrument must be of kind 'Furnace'"})
        furnace = self.furnace if self.furnace_id else None
        if furnace is not None and self.project_id and furnace.project_id != self.project_id:
            raise ValidationError({"furnace": "no such furnace in this anneal's project"})


class AnnealSegment(models.Model):
    """Ramp to T (at a rate or over a time), dwell at T for a time, or cool to T."""

    treatment = models.ForeignKey(PostTreatment, on_delete=models.CASCADE, related_name="segments")
    order = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=10, choices=SegmentKind.choices)
    target_c = models.DecimalField(
        max_digits=7, decimal_places=2, validators=[MaxValueValidator(Decimal("2000"))]
    )
    rate_k_per_min = _dec(8, 3, "K/min")
    duration_min = _dec(10, 3, "minutes")

    class Meta:
        ordering = ["treatment", "order"]
        constraints = [
            models.UniqueConstraint(fields=["treatment", "order"], name="segment_unique_order"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.target_c} degC"

    def clean(self) -> None:
        has_rate = self.rate_k_per_min is not None
        has_time = self.duration_min is not None
        if self.kind == SegmentKind.DWELL and not has_time:
            raise ValidationError({"duration_min": "a dwell needs a duration"})
        if self.kind == SegmentKind.DWELL and has_rate:
            raise ValidationError({"rate_k_per_min": "a dwell has no rate"})
        if self.kind == SegmentKind.RAMP and has_rate == has_time:
            raise ValidationError("a ramp needs either a rate (K/min) or a duration, not both")
        if self.kind == SegmentKind.COOL and has_rate and has_time:
            raise ValidationError("a cool gives a rate or a duration (or neither: natural cooling)")
        if has_rate and self.rate_k_per_min == 0:
            raise ValidationError({"rate_k_per_min": "a rate must be above zero"})


class FurnaceLog(models.Model):
    """A thermocouple log attached to an anneal and the checks it passed or failed then."""

    treatment = models.ForeignKey(
        PostTreatment, on_delete=models.CASCADE, related_name="furnace_logs"
    )
    raw_file = models.ForeignKey("lims.RawFile", on_delete=models.PROTECT, related_name="+")
    job = models.OneToOneField(
        "lims.IngestionJob",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="furnace_log",
        help_text="The ingestion job that checked it (a re-run checks it again, in place)",
    )
    parser_version = models.CharField(max_length=20)
    tolerance_k = models.DecimalField(max_digits=6, decimal_places=2)
    points = models.PositiveIntegerField()
    overall = models.CharField(max_length=10, choices=CheckStatus.choices)
    checks = models.JSONField(default=list, encoder=DjangoJSONEncoder)
    plan = models.JSONField(
        default=list, encoder=DjangoJSONEncoder, help_text="Segments the log was checked against"
    )
    attached_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"log of {self.treatment}: {self.overall}"


class RunLogFile(models.Model):
    """One ALD tool log (data log, event log, summary, QCM table...) and what was read from it."""

    run = models.ForeignKey(
        DepositionRun, null=True, blank=True, on_delete=models.PROTECT, related_name="log_files"
    )
    project = models.ForeignKey("lims.Project", on_delete=models.PROTECT, related_name="+")
    raw_file = models.OneToOneField(
        "lims.RawFile", on_delete=models.PROTECT, related_name="ald_log"
    )
    job = models.ForeignKey(
        "lims.IngestionJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    parser_name = models.CharField(max_length=100)
    parser_version = models.CharField(max_length=30)
    series_path = models.CharField(max_length=500, blank=True, help_text="Parquet (zstd)")
    row_count = models.PositiveIntegerField(default=0)
    sample_period_s = models.FloatField(null=True, blank=True)
    channels = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    metadata = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    warnings = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.parser_name} log of {self.run or 'no run'}"


class RunLogSegment(models.Model):
    """One run's part of a data log: the whole log, or one session of a controller log that
    is appended run after run. It has its own pulses, checks and verdict, and names its run
    (or none yet); ``started_at``/``ended_at`` (the instrument's clock) line it up with a run.
    Derived from the file by the ingest handler: replaced on every pass, except a hand link."""

    change_logged = False

    class Link(models.TextChoices):
        NONE = "", "Not linked"
        UPLOAD = "upload", "Run named in the upload"
        TIME = "time", "Run window overlaps the session"
        HAND = "hand", "Linked by a person"
        SUPERSEDED = "superseded", "A newer copy of the log holds this session"

    log = models.ForeignKey(RunLogFile, on_delete=models.CASCADE, related_name="segments")
    index = models.PositiveIntegerField(help_text="0-based, in file order")
    run = models.ForeignKey(
        DepositionRun,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="log_segments",
    )
    link = models.CharField(max_length=12, choices=Link.choices, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    rows = models.PositiveIntegerField(default=0)
    verdict = models.CharField(
        max_length=10, blank=True, help_text="pass, warn, fail or 'no data'; empty: not checked"
    )
    reasons = models.JSONField(default=list, blank=True)
    pulses_per_source = models.JSONField(default=dict, blank=True)
    checks = models.JSONField(
        default=list, blank=True, encoder=DjangoJSONEncoder, help_text="Check rows as reported"
    )
    metadata = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    warnings = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["log", "index"]
        constraints = [
            models.UniqueConstraint(fields=["log", "index"], name="run_log_segment_unique_index")
        ]
        indexes = [models.Index(fields=["run", "started_at"])]

    def __str__(self) -> str:
        return f"session {self.index} of {self.log_id}: {self.run or 'no run'}"


class PulseEvent(models.Model):
    """One detected dose, aligned to the expanded recipe where possible."""

    change_logged = False

    log = models.ForeignKey(RunLogFile, on_delete=models.CASCADE, related_name="pulses")
    segment = models.ForeignKey(
        RunLogSegment, null=True, blank=True, on_delete=models.CASCADE, related_name="pulses"
    )
    run = models.ForeignKey(
        DepositionRun, null=True, blank=True, on_delete=models.CASCADE, related_name="pulses"
    )
    source = models.CharField(max_length=60)
    channel = models.CharField(max_length=100, blank=True)
    index = models.PositiveIntegerField(help_text="0-based, per source")
    supercycle = models.PositiveIntegerField(null=True, blank=True)
    subcycle = models.CharField(max_length=60, blank=True)
    repetition = models.PositiveIntegerField(null=True, blank=True)
    start_s = models.FloatField()
    width_s = models.FloatField()
    width_uncertainty_s = models.FloatField(null=True, blank=True)
    baseline = models.FloatField(null=True, blank=True)
    peak = models.FloatField(null=True, blank=True)
    area = models.FloatField(null=True, blank=True)
    power_w = models.FloatField(
        null=True, blank=True, help_text="Plasma pulses: median forward power while on (W)"
    )
    qcm_delta = models.FloatField(null=True, blank=True)
    dead = models.BooleanField(default=False)

    class Meta:
        ordering = ["log", "start_s"]
        indexes = [models.Index(fields=["run", "source"])]

    def __str__(self) -> str:
        return f"{self.source} #{self.index} at {self.start_s:.1f} s"


class RunCheck(models.Model):
    """One check of a run against its recipe: the verdict and the numbers behind it."""

    change_logged = False

    run = models.ForeignKey(DepositionRun, on_delete=models.CASCADE, related_name="checks")
    log = models.ForeignKey(
        RunLogFile, null=True, blank=True, on_delete=models.CASCADE, related_name="checks"
    )
    segment = models.ForeignKey(
        RunLogSegment, null=True, blank=True, on_delete=models.CASCADE, related_name="run_checks"
    )
    name = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=CheckStatus.choices)
    value = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    details = models.TextField(blank=True)
    checker_version = models.CharField(max_length=20)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "name"]

    def __str__(self) -> str:
        return f"{self.run}: {self.name} {self.status}"
