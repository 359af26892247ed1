"""Materials, lots, samples and the operations that link them (lineage with quantities)."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.urls import reverse

from samples.choices import (
    Atmosphere,
    MaterialClass,
    OperationKind,
    SampleKind,
    SampleState,
    Unit,
)

CODE_VALIDATOR = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
    "letters, digits, '.', '_' and '-' only, so the code prints as a barcode and reads back",
)
_POS = [MinValueValidator(Decimal("0"))]


class Material(models.Model):
    """A catalogue entry shared by all projects (NMC811, Li6PS5Cl, Si wafer, TMA...)."""

    name = models.CharField(max_length=120, unique=True)
    formula = models.CharField(max_length=120, blank=True)
    material_class = models.CharField(max_length=30, choices=MaterialClass.choices)
    default_supplier = models.CharField(max_length=120, blank=True)
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class MaterialLot(models.Model):
    material = models.ForeignKey(Material, on_delete=models.PROTECT, related_name="lots")
    project = models.ForeignKey("lims.Project", on_delete=models.PROTECT, related_name="+")
    supplier = models.CharField(max_length=120, blank=True)
    catalog_number = models.CharField(max_length=80, blank=True)
    lot_number = models.CharField(max_length=80)
    received_on = models.DateField(null=True, blank=True)
    quantity_received = models.DecimalField(max_digits=14, decimal_places=6, validators=_POS)
    unit = models.CharField(max_length=10, choices=Unit.choices, default=Unit.GRAM)
    storage_location = models.CharField(max_length=200, blank=True)
    certificate = models.FileField(upload_to="certificates/%Y/", blank=True)
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["material", "lot_number"]
        constraints = [
            models.UniqueConstraint(
                fields=["material", "supplier", "lot_number"], name="lot_unique_per_supplier"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.material} lot {self.lot_number}"


class Sample(models.Model):
    """Anything physical that is made, split, processed or consumed."""

    code = models.CharField(max_length=64, unique=True, validators=[CODE_VALIDATOR])
    project = models.ForeignKey("lims.Project", on_delete=models.PROTECT, related_name="samples")
    kind = models.CharField(max_length=30, choices=SampleKind.choices)
    material = models.ForeignKey(
        Material, null=True, blank=True, on_delete=models.PROTECT, related_name="samples"
    )
    lot = models.ForeignKey(
        MaterialLot, null=True, blank=True, on_delete=models.PROTECT, related_name="samples"
    )
    unit = models.CharField(max_length=10, choices=Unit.choices, default=Unit.GRAM)
    quantity = models.DecimalField(max_digits=14, decimal_places=6, validators=_POS)
    remaining = models.DecimalField(max_digits=14, decimal_places=6, validators=_POS)
    state = models.CharField(
        max_length=20, choices=SampleState.choices, default=SampleState.AS_RECEIVED
    )
    form_factor = models.CharField(max_length=100, blank=True)
    diameter_mm = models.DecimalField(
        max_digits=8, decimal_places=3, null=True, blank=True, validators=_POS
    )
    thickness_um = models.DecimalField(
        max_digits=10, decimal_places=3, null=True, blank=True, validators=_POS
    )
    area_cm2 = models.DecimalField(
        max_digits=10, decimal_places=4, null=True, blank=True, validators=_POS
    )
    bet_m2_g = models.DecimalField(
        "BET surface area (m²/g)",
        max_digits=10,
        decimal_places=4,
        null=True,
        blank=True,
        validators=_POS,
    )
    location = models.CharField(max_length=200, blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.code

    def get_absolute_url(self) -> str:
        return reverse("samples:sample-detail", args=[self.code])

    def clean(self) -> None:
        # another project's lot would show its number and supplier here and block its
        # deletion; the message names nothing of it
        lot = self.lot if self.lot_id else None
        if lot is not None and self.project_id and lot.project_id != self.project_id:
            raise ValidationError({"lot": "no such lot in this sample's project"})


class Operation(models.Model):
    """One step of lineage: inputs consumed (with quantities) -> outputs produced."""

    project = models.ForeignKey("lims.Project", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=20, choices=OperationKind.choices)
    label = models.CharField(max_length=200, blank=True, help_text="e.g. the run or anneal code")
    performed_at = models.DateTimeField(null=True, blank=True)
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    tolerance = models.DecimalField(
        max_digits=14,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Split: allowed |sum of aliquots - amount taken|, in the sample's unit",
    )
    notes = models.TextField(blank=True)
    parameters = models.JSONField(
        default=dict,
        blank=True,
        encoder=DjangoJSONEncoder,
        help_text="Process settings of the step, e.g. a press's pressure_mpa and die_diameter_mm",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.label or self.pk}"


class OperationInput(models.Model):
    operation = models.ForeignKey(Operation, on_delete=models.CASCADE, related_name="inputs")
    sample = models.ForeignKey(Sample, on_delete=models.PROTECT, related_name="consumed_by")
    quantity = models.DecimalField(max_digits=14, decimal_places=6, validators=_POS)
    mass_fraction = models.DecimalField(
        max_digits=9,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Mix: this input's share of the output mass",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["operation", "sample"], name="op_input_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.sample} -{self.quantity}"


class OperationOutput(models.Model):
    operation = models.ForeignKey(Operation, on_delete=models.CASCADE, related_name="outputs")
    sample = models.OneToOneField(Sample, on_delete=models.PROTECT, related_name="produced_by")
    quantity = models.DecimalField(max_digits=14, decimal_places=6, validators=_POS)

    def __str__(self) -> str:
        return f"{self.sample} +{self.quantity}"


class ExposureEvent(models.Model):
    """Where an air-sensitive sample was, when, and how dry."""

    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="exposures")
    atmosphere = models.CharField(max_length=20, choices=Atmosphere.choices)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    h2o_ppm = models.DecimalField(max_digits=10, decimal_places=3, null=True, blank=True)
    o2_ppm = models.DecimalField(max_digits=10, decimal_places=3, null=True, blank=True)
    notes = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["sample", "started_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ended_at__gte=models.F("started_at")),
                name="exposure_ends_after_start",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sample} in {self.atmosphere}"
