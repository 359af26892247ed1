"""Cells, their cycling tests, per-cycle rows and performance records."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

from cells.choices import AnodeKind, CellFormat, CellType

_POS = [MinValueValidator(Decimal("0"))]


def _dec(max_digits: int = 10, places: int = 4, help_text: str = "") -> models.DecimalField:
    """An optional, non-negative decimal (most cell dimensions are)."""
    return models.DecimalField(
        max_digits=max_digits,
        decimal_places=places,
        null=True,
        blank=True,
        validators=_POS,
        help_text=help_text,
    )


class Cell(models.Model):
    code = models.CharField(
        max_length=64,
        unique=True,
        validators=[
            RegexValidator(
                r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                "letters, digits, '.', '_' and '-' only, so the code prints as a barcode "
                "and reads back the same",
            )
        ],
        help_text="Printed as a barcode (Code 128)",
    )
    project = models.ForeignKey("lims.Project", on_delete=models.PROTECT, related_name="cells")
    format = models.CharField(max_length=20, choices=CellFormat.choices)
    cell_type = models.CharField(max_length=20, choices=CellType.choices)

    # Samples the cell is built from (lineage); the composite's mix gives the active fraction.
    cathode_sample = models.ForeignKey(
        "samples.Sample", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    se_sample = models.ForeignKey(
        "samples.Sample", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    anode_sample = models.ForeignKey(
        "samples.Sample", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    lineage_active_fraction = models.DecimalField(
        max_digits=9,
        decimal_places=6,
        null=True,
        blank=True,
        editable=False,
        help_text="Active mass fraction of the cathode sample, from the mix that made it",
    )
    cathode_active_material = models.CharField(max_length=100, blank=True)
    ratio_active = _dec(6, 2, help_text="Active : SE : carbon mass ratio, active part")
    ratio_se = _dec(6, 2)
    ratio_carbon = _dec(6, 2)
    cathode_mass_mg = _dec(10, 4, help_text="Composite cathode mass in the cell, mg")
    active_mass_override_mg = _dec(
        10, 4, help_text="Set only when the active mass is known otherwise (overrides the ratio)"
    )

    se_material = models.CharField(max_length=100, blank=True)
    se_mass_mg = _dec(10, 3)
    se_thickness_um = _dec(10, 2)

    anode_kind = models.CharField(max_length=20, choices=AnodeKind.choices, blank=True)
    anode_description = models.CharField(max_length=200, blank=True)
    li_foil_thickness_um = _dec(8, 2)

    pellet_diameter_mm = _dec(8, 3)
    area_override_cm2 = _dec(8, 4)
    fabrication_pressure_mpa = _dec(8, 2)
    stack_pressure_mpa = _dec(8, 2)
    temperature_c = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    nominal_capacity_mah = _dec(
        12, 6, help_text="Nominal capacity, mAh: the reference of C-rates (1C empties it in 1 h)"
    )

    assembled_at = models.DateTimeField(null=True, blank=True)
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        # the list's order: a page of the newest cells is an index scan, not a sort of all
        indexes = [models.Index(fields=["project", "-created_at"], name="cell_project_newest")]

    def __str__(self) -> str:
        return self.code

    def get_absolute_url(self) -> str:
        return reverse("cells:cell-detail", args=[self.code])

    @property
    def active_fraction(self) -> Decimal | None:
        """From the cathode sample's lineage when known, else from the typed mass ratio."""
        if self.lineage_active_fraction is not None:
            return self.lineage_active_fraction
        parts = [self.ratio_active, self.ratio_se, self.ratio_carbon]
        if self.ratio_active is None:
            return None
        total = sum((p for p in parts if p is not None), Decimal(0))
        return self.ratio_active / total if total else None

    @property
    def active_mass_mg(self) -> Decimal | None:
        """Override when set, else composite mass x active fraction."""
        if self.active_mass_override_mg is not None:
            return self.active_mass_override_mg
        fraction = self.active_fraction
        if self.cathode_mass_mg is None or fraction is None:
            return None
        return (self.cathode_mass_mg * fraction).quantize(Decimal("0.0001"))

    @property
    def active_mass_source(self) -> str:
        if self.active_mass_override_mg is not None:
            return "override"
        if self.active_mass_mg is None:
            return "none"
        if self.lineage_active_fraction is not None:
            return f"composite mass x active fraction from lineage ({self.cathode_sample})"
        return "composite mass x active fraction"

    @property
    def area_cm2(self) -> Decimal | None:
        if self.area_override_cm2 is not None:
            return self.area_override_cm2
        if self.pellet_diameter_mm is None:
            return None
        radius_cm = self.pellet_diameter_mm / Decimal(20)
        return (Decimal("3.14159265358979") * radius_cm * radius_cm).quantize(Decimal("0.0001"))


class CyclingTest(models.Model):
    cell = models.ForeignKey(
        Cell, null=True, blank=True, on_delete=models.PROTECT, related_name="tests"
    )
    project = models.ForeignKey("lims.Project", on_delete=models.PROTECT, related_name="+")
    instrument = models.ForeignKey(
        "lims.Instrument", null=True, blank=True, on_delete=models.SET_NULL
    )
    channel = models.CharField(max_length=50, blank=True)
    raw_file = models.OneToOneField(
        "lims.RawFile", on_delete=models.PROTECT, related_name="cycling_test"
    )
    job = models.ForeignKey(
        "lims.IngestionJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    parser_name = models.CharField(max_length=100)
    parser_version = models.CharField(max_length=30)
    vendor = models.CharField(max_length=50, blank=True)
    protocol = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    series_path = models.CharField(max_length=500, blank=True, help_text="Parquet (zstd)")
    row_count = models.BigIntegerField(default=0)
    conventions = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    metadata = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    warnings = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    series_first_s = models.FloatField(null=True, blank=True, help_text="First time_s")
    series_last_s = models.FloatField(null=True, blank=True, help_text="Last time_s")

    # Stitching (cells.stitching): the tests of a cell form one logical test.
    class ChainRole(models.TextChoices):
        MEMBER = "member", "in the stitched test"
        DUPLICATE = "duplicate", "duplicate of another test (left out)"
        DETACHED = "detached", "detached by a person"
        NONE = "", "not linked to a cell"

    chain_detached = models.BooleanField(
        default=False, help_text="A person took this test out of the cell's stitched test"
    )
    chain_role = models.CharField(max_length=10, choices=ChainRole.choices, blank=True)
    chain_position = models.PositiveIntegerField(null=True, blank=True)
    chain_cycle_offset = models.IntegerField(
        null=True, blank=True, help_text="Stitched cycle = cycle_index + this"
    )
    chain_time_offset_s = models.FloatField(
        null=True, blank=True, help_text="Stitched time = time_s + this"
    )
    chain_notes = models.JSONField(default=list, blank=True)
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.cell or 'unlinked'}: {self.raw_file.original_name}"


class CycleRecord(models.Model):
    """One row per cycle; written with bulk upserts, never one by one."""

    change_logged = False

    test = models.ForeignKey(CyclingTest, on_delete=models.CASCADE, related_name="cycles")
    cycle_index = models.PositiveIntegerField(help_text="From 1")
    cycle_in_file = models.IntegerField()
    charge_mah = models.FloatField(null=True)
    discharge_mah = models.FloatField(null=True)
    charge_mah_g = models.FloatField(null=True)
    discharge_mah_g = models.FloatField(null=True)
    coulombic_efficiency = models.FloatField(null=True)
    charge_wh = models.FloatField(null=True)
    discharge_wh = models.FloatField(null=True)
    energy_efficiency = models.FloatField(null=True)
    mean_charge_v = models.FloatField(null=True)
    mean_discharge_v = models.FloatField(null=True)
    end_charge_v = models.FloatField(null=True)
    end_discharge_v = models.FloatField(null=True)
    duration_s = models.FloatField(null=True)
    start_time_s = models.FloatField(null=True, help_text="time_s of the cycle's first row")

    class Meta:
        ordering = ["test", "cycle_index"]
        constraints = [
            models.UniqueConstraint(fields=["test", "cycle_index"], name="cycle_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.test_id} cycle {self.cycle_index}"


class PerformanceValues(models.Model):
    """The headline numbers (cells.services.performance_metrics) of a cycle table."""

    cycles = models.PositiveIntegerField(default=0)
    first_charge_mah = models.FloatField(null=True)
    first_discharge_mah = models.FloatField(null=True)
    first_charge_mah_g = models.FloatField(null=True)
    first_discharge_mah_g = models.FloatField(null=True)
    initial_ce = models.FloatField(null=True)
    capacity_c10_mah_g = models.FloatField(null=True)
    capacity_c50_mah_g = models.FloatField(null=True)
    capacity_c100_mah_g = models.FloatField(null=True)
    capacity_c10_mah = models.FloatField(null=True)
    capacity_c50_mah = models.FloatField(null=True)
    capacity_c100_mah = models.FloatField(null=True)
    reference_cycle = models.PositiveIntegerField(default=1)
    retention_pct = models.FloatField(null=True, help_text="Last cycle vs reference cycle")
    cycles_to_80 = models.PositiveIntegerField(null=True)
    mean_ce = models.FloatField(null=True, help_text="Mean CE over cycles 2..N")
    active_mass_mg = models.FloatField(null=True)
    active_mass_source = models.CharField(max_length=100, blank=True)

    class Meta:
        abstract = True


class PerformanceRecord(PerformanceValues):
    """Headline numbers of one test, with everything needed to trust or redo them."""

    test = models.OneToOneField(CyclingTest, on_delete=models.CASCADE, related_name="performance")
    raw_sha256 = models.CharField(max_length=64)
    parser_name = models.CharField(max_length=100)
    parser_version = models.CharField(max_length=30)
    conventions = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    computed_at = models.DateTimeField(auto_now=True)
    reason = models.CharField(max_length=300, blank=True)

    def __str__(self) -> str:
        return f"performance of {self.test}"


def changes_for_display(changed: dict[str, list[Any]]) -> list[tuple[str, Any, Any]]:
    """(field, old, new) of a version's ``changed``, with list and dict values (sources, a
    resistance series) named by size: the page says what changed, the API gives the values."""

    def short(value: Any) -> Any:
        if isinstance(value, dict):
            return f"{{{len(value)} keys}}"
        if isinstance(value, list):
            return f"[{len(value)} items]"
        return value

    return [(name, short(old), short(new)) for name, (old, new) in changed.items()]


class RecordVersion(models.Model):
    """One computation of a derived record, kept: a recompute adds a version with its reason
    and what it changed, so a number once reported can always be found again."""

    # the change log already records each change of the record itself
    change_logged = False

    version = models.PositiveIntegerField()
    computed_at = models.DateTimeField(default=timezone.now)
    reason = models.CharField(max_length=300, blank=True)
    values = models.JSONField(
        encoder=DjangoJSONEncoder, help_text="The record's values and provenance as computed"
    )
    changed = models.JSONField(
        default=dict,
        blank=True,
        encoder=DjangoJSONEncoder,
        help_text='{"<field>": [old, new]} against the previous version',
    )

    class Meta:
        abstract = True

    @property
    def changes(self) -> list[tuple[str, Any, Any]]:
        return changes_for_display(self.changed)


class PerformanceRecordVersion(RecordVersion):
    """A version of a test's performance record."""

    test = models.ForeignKey(
        CyclingTest, on_delete=models.CASCADE, related_name="performance_versions"
    )

    class Meta:
        ordering = ["test", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["test", "version"], name="performance_record_version_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"performance of test {self.test_id} v{self.version}"


class StitchedRecord(PerformanceValues):
    """The cell's performance over its stitched test: the attached tests' cycle tables in
    chain order with continuous cycle numbers, duplicates left out (cells.stitching)."""

    cell = models.OneToOneField(Cell, on_delete=models.CASCADE, related_name="stitched")
    tests = models.PositiveIntegerField(default=0, help_text="Tests in the chain")
    sources = models.JSONField(
        default=list, encoder=DjangoJSONEncoder, help_text="Every raw file used or left out"
    )
    duplicates = models.JSONField(default=list, blank=True)
    overlaps = models.JSONField(default=list, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    conventions = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    interface_resistance = models.JSONField(
        default=dict,
        blank=True,
        encoder=DjangoJSONEncoder,
        help_text="R_interface vs stitched cycle from the cell's spectra (cells.eis.interface)",
    )
    computed_at = models.DateTimeField(auto_now=True)
    reason = models.CharField(max_length=300, blank=True)

    def __str__(self) -> str:
        return f"stitched performance of {self.cell}"


class StitchedRecordVersion(RecordVersion):
    """A version of a cell's stitched record: a re-stitch (a test attached, detached or re-read)
    or a new R_interface series (a spectrum fitted or linked)."""

    cell = models.ForeignKey(Cell, on_delete=models.CASCADE, related_name="stitched_versions")

    class Meta:
        ordering = ["cell", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["cell", "version"], name="stitched_record_version_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"stitched performance of cell {self.cell_id} v{self.version}"


class CyclerSidecar(models.Model):
    """A file that describes cycling tests without being one (Arbin ``_Metadata.csv``, BioLogic
    ``.mps`` settings, a Novonix header-only file): stored as it arrived and attached to the
    tests of its project whose file names it matches, whichever of them arrives first."""

    project = models.ForeignKey("lims.Project", on_delete=models.PROTECT, related_name="+")
    raw_file = models.OneToOneField(
        "lims.RawFile", on_delete=models.PROTECT, related_name="cycler_sidecar"
    )
    job = models.ForeignKey(
        "lims.IngestionJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=40)
    vendor = models.CharField(max_length=50, blank=True)
    key = models.CharField(
        max_length=255, db_index=True, help_text="Lower-case file stem of the tests it matches"
    )
    alt_key = models.CharField(max_length=255, blank=True, db_index=True)
    channel = models.CharField(max_length=50, blank=True)
    content = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    tests = models.ManyToManyField(CyclingTest, blank=True, related_name="sidecars")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.raw_file.original_name}"


class EisSpectrum(models.Model):
    """One impedance spectrum: the points live in Parquet, the numbers a list needs here.

    Sign convention of the stored points: Z = Z' + jZ'', Z'' negative for capacitive
    behaviour (``conventions`` also says what the file wrote). Linked to a cell or a sample
    (a pellet, a film), never both; a spectrum without either waits for linking.
    """

    class Technique(models.TextChoices):
        PEIS = "PEIS", "potentiostatic (PEIS)"
        GEIS = "GEIS", "galvanostatic (GEIS)"
        UNKNOWN = "", "not stated by the file"

    project = models.ForeignKey("lims.Project", on_delete=models.PROTECT, related_name="+")
    raw_file = models.OneToOneField(
        "lims.RawFile", on_delete=models.PROTECT, related_name="eis_spectrum"
    )
    job = models.ForeignKey(
        "lims.IngestionJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    instrument = models.ForeignKey(
        "lims.Instrument", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cell = models.ForeignKey(
        Cell, null=True, blank=True, on_delete=models.PROTECT, related_name="spectra"
    )
    sample = models.ForeignKey(
        "samples.Sample",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="eis_spectra",
    )
    parser_name = models.CharField(max_length=100)
    parser_version = models.CharField(max_length=30)
    vendor = models.CharField(max_length=50, blank=True)
    technique = models.CharField(max_length=4, choices=Technique.choices, blank=True)
    temperature_c = models.FloatField(null=True, blank=True)
    temperature_source = models.CharField(max_length=100, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    points = models.PositiveIntegerField(default=0)
    sweeps = models.PositiveIntegerField(default=1)
    f_min_hz = models.FloatField(null=True)
    f_max_hz = models.FloatField(null=True)
    series_path = models.CharField(max_length=500, blank=True, help_text="Parquet (zstd)")
    hf_intercept_ohm = models.FloatField(
        null=True, blank=True, help_text="Model-free real-axis crossing at high frequency"
    )
    hf_intercept = models.JSONField(
        default=dict, blank=True, help_text="How the intercept was read, or why there is none"
    )
    conventions = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    metadata = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    warnings = models.JSONField(default=list, blank=True)
    kk_passed = models.BooleanField(
        null=True, blank=True, help_text="Lin-KK validity of the first sweep; null: not tested"
    )
    kramers_kronig = models.JSONField(
        default=dict, blank=True, help_text="Lin-KK summary, residuals and method, or the error"
    )
    thickness_mm = models.FloatField(
        null=True, blank=True, help_text="Specimen thickness stated at upload (metadata)"
    )
    thickness_stderr_mm = models.FloatField(null=True, blank=True)
    area_cm2 = models.FloatField(
        null=True, blank=True, help_text="Electrode area stated at upload (metadata)"
    )
    area_stderr_cm2 = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(cell__isnull=True) | models.Q(sample__isnull=True),
                name="eis_spectrum_cell_or_sample",
            )
        ]

    def __str__(self) -> str:
        owner = self.cell or self.sample or "unlinked"
        return f"{owner}: {self.raw_file.original_name}"

    def get_absolute_url(self) -> str:
        return reverse("cells:spectrum-detail", args=[self.pk])


class EisFit(models.Model):
    """One equivalent-circuit fit of a spectrum, with what it takes to reproduce it.

    A spectrum keeps every fit (the one at ingestion, each refit, the refit after a link); a
    failed fit is a row too, with its error. A queued fit (``eis_spectrum_link``) is filled in
    once by its task; a fitted or failed row is never changed.

    The conductivity is derived from the fit's bulk resistance and the specimen
    geometry; ``conductivity`` says which numbers and sources were used, or why there is none.
    """

    class Reason(models.TextChoices):
        INGESTED = "ingested", "at ingestion"
        REFIT = "refit", "refit"
        LINKED = "linked", "after linking"

    class Status(models.TextChoices):
        OK = "ok", "fitted"
        FAILED = "failed", "failed"
        # a refit a worker has yet to make (after a link): its row is filled in once, then final
        QUEUED = "queued", "queued"

    spectrum = models.ForeignKey(EisSpectrum, on_delete=models.CASCADE, related_name="fits")
    circuit_name = models.CharField(
        max_length=40, help_text="Measurement-type circuit asked for (a key of fit.CIRCUITS)"
    )
    circuit = models.CharField(max_length=200, blank=True, help_text="impedance.py string fitted")
    status = models.CharField(max_length=10, choices=Status.choices)
    error = models.TextField(blank=True)
    parameters = models.JSONField(
        default=list, blank=True, help_text="[{name, value, stderr, unit}] in circuit order"
    )
    chi_square = models.FloatField(null=True, blank=True)
    rms_relative = models.FloatField(null=True, blank=True)
    f_min_hz = models.FloatField(null=True, blank=True)
    f_max_hz = models.FloatField(null=True, blank=True)
    f_range_requested = models.JSONField(
        default=list, blank=True, help_text="[f_min, f_max] asked for (Hz); empty: all points"
    )
    n_points = models.PositiveIntegerField(null=True, blank=True)
    weighting = models.CharField(max_length=20, blank=True)
    initial_guess = models.JSONField(default=list, blank=True)
    guess_source = models.CharField(max_length=20, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    versions = models.JSONField(default=dict, blank=True, help_text="impedance, scipy, numpy")
    raw_sha256 = models.CharField(max_length=64)
    parser_name = models.CharField(max_length=100)
    parser_version = models.CharField(max_length=30)
    sweep = models.PositiveIntegerField(default=0, help_text="Sweep fitted (0-based)")
    fit_seconds = models.FloatField(null=True, blank=True)
    sigma_s_cm = models.FloatField(null=True, blank=True, help_text="Bulk conductivity, S/cm")
    sigma_stderr_s_cm = models.FloatField(null=True, blank=True)
    conductivity = models.JSONField(
        default=dict, blank=True, help_text="Resistance, thickness, area used and their sources"
    )
    reason = models.CharField(max_length=10, choices=Reason.choices)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"fit {self.pk} of spectrum {self.spectrum_id}: {self.circuit_name} ({self.status})"


class ExplorerView(models.Model):
    """A named explorer query (axes, grouping, filters, overlaid cells) with a URL to share.

    Only the query is stored: whoever opens it sees the rows of their own projects.
    """

    name = models.CharField(max_length=120)
    query = models.TextField(help_text="The explorer's query string")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("cells:explorer-view", args=[self.pk])
