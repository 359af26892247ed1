"""Serializers: shapes only. Writes are done by the services the views call."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from depositions import selectors
from depositions.choices import QC_VERDICTS, SegmentKind
from depositions.furnace import selectors as furnace_selectors
from depositions.inputs import (
    AnnealInput,
    BlockInput,
    LoadOutput,
    SegmentInput,
    StepInput,
    SubCycleInput,
)
from depositions.models import (
    AnnealSegment,
    Chemical,
    CompositionMeasurement,
    DepositionRun,
    FilmProperty,
    FurnaceLog,
    PostTreatment,
    PrecursorLot,
    ProcessReference,
    PulseEvent,
    Recipe,
    RunCheck,
    RunLoad,
    RunLogFile,
    RunLogSegment,
    RunPrecursor,
    SourceInstallation,
    Step,
    SubCycle,
    SupercycleBlock,
    ThicknessMeasurement,
    Tool,
    ToolSource,
)
from lims.api.fields import ModelSerializer as ScopedModelSerializer
from lims.models import Instrument, Project
from samples.models import Sample


def _project_field() -> serializers.SlugRelatedField:
    return serializers.SlugRelatedField(slug_field="slug", queryset=Project.objects.all())


def _sample_field() -> serializers.SlugRelatedField:
    return serializers.SlugRelatedField(slug_field="code", queryset=Sample.objects.all())


def _run_field() -> serializers.SlugRelatedField:
    return serializers.SlugRelatedField(
        slug_field="code", queryset=DepositionRun.objects.all(), required=False, allow_null=True
    )


# --- tools ----------------------------------------------------------------------------------


class ToolSerializer(ScopedModelSerializer):
    instrument = serializers.PrimaryKeyRelatedField(
        queryset=Instrument.objects.filter(kind=Instrument.Kind.ALD_TOOL)
    )
    name = serializers.CharField(source="instrument.name", read_only=True)
    project = serializers.CharField(source="instrument.project.slug", read_only=True)
    source_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Tool
        fields = [
            "id",
            "instrument",
            "name",
            "project",
            "reactor_type",
            "chambers",
            "notes",
            "source_count",
        ]


class InstalledLotSerializer(ScopedModelSerializer):
    precursor_lot = serializers.IntegerField(source="precursor_lot_id")
    bottle_label = serializers.CharField(source="precursor_lot.bottle_label")
    chemical = serializers.CharField(source="precursor_lot.chemical.name")

    class Meta:
        model = SourceInstallation
        fields = ["id", "precursor_lot", "bottle_label", "chemical", "installed_at"]


class ToolSourceSerializer(ScopedModelSerializer):
    installed = serializers.SerializerMethodField()

    class Meta:
        model = ToolSource
        fields = [
            "id",
            "tool",
            "label",
            "reactant",
            "log_channel",
            "delivery",
            "source_temperature_c",
            "line_temperature_c",
            "dose_umol_per_pulse",
            "notes",
            "installed",
        ]

    @extend_schema_field(InstalledLotSerializer(allow_null=True))
    def get_installed(self, source: ToolSource) -> dict[str, Any] | None:
        current = getattr(source, "open_installations", None)
        if current is None:
            current = list(source.installations.filter(removed_at__isnull=True))
        return InstalledLotSerializer(current[0]).data if current else None


class SourceInstallationSerializer(ScopedModelSerializer):
    installed_at = serializers.DateTimeField(required=False)
    installed_by = serializers.CharField(
        source="installed_by.username", read_only=True, allow_null=True, default=None
    )
    bottle_label = serializers.CharField(source="precursor_lot.bottle_label", read_only=True)
    port = serializers.CharField(source="tool_source.label", read_only=True)

    class Meta:
        model = SourceInstallation
        fields = [
            "id",
            "tool_source",
            "port",
            "precursor_lot",
            "bottle_label",
            "installed_at",
            "removed_at",
            "installed_by",
            "notes",
        ]
        read_only_fields = ["removed_at"]


class LotAtSerializer(serializers.Serializer):
    at = serializers.DateTimeField()


# --- chemicals and bottles --------------------------------------------------------------


class ChemicalSerializer(ScopedModelSerializer):
    synonyms = serializers.ListField(child=serializers.CharField(), required=False)

    class Meta:
        model = Chemical
        fields = [
            "id",
            "name",
            "formula",
            "synonyms",
            "cas_number",
            "molar_mass_g_mol",
            "state",
            "hazards",
            "notes",
        ]


class PrecursorLotSerializer(ScopedModelSerializer):
    chemical_name = serializers.CharField(source="chemical.name", read_only=True)
    project = serializers.CharField(source="material_lot.project.slug", read_only=True)
    lot_number = serializers.CharField(source="material_lot.lot_number", read_only=True)
    installed_on = serializers.SerializerMethodField()

    class Meta:
        model = PrecursorLot
        fields = [
            "id",
            "material_lot",
            "lot_number",
            "project",
            "chemical",
            "chemical_name",
            "bottle_label",
            "fill_date",
            "opened_on",
            "status",
            "notes",
            "installed_on",
        ]

    def get_installed_on(self, lot: PrecursorLot) -> str | None:
        current = getattr(lot, "open_installations", None)
        if current is None:
            current = list(lot.installations.filter(removed_at__isnull=True))
        return str(current[0].tool_source) if current else None


# --- recipes -------------------------------------------------------------------------------


class StepSerializer(ScopedModelSerializer):
    order = serializers.IntegerField(read_only=True)
    tool_source = serializers.PrimaryKeyRelatedField(
        source="source",
        queryset=ToolSource.objects.all(),
        required=False,
        allow_null=True,
        help_text="Optional: pin the step to a tool port (source_label stays the identity)",
    )

    class Meta:
        model = Step
        fields = [
            "order",
            "kind",
            "source_label",
            "tool_source",
            "duration_s",
            "flow_sccm",
            "plasma_power_w",
        ]


class SubCycleSerializer(ScopedModelSerializer):
    order = serializers.IntegerField(read_only=True)
    steps = StepSerializer(many=True)

    class Meta:
        model = SubCycle
        fields = ["order", "name", "gpc_angstrom", "target_material", "steps"]


class BlockSerializer(ScopedModelSerializer):
    order = serializers.IntegerField(read_only=True)
    subcycle = serializers.CharField(help_text="Sub-cycle name")

    class Meta:
        model = SupercycleBlock
        fields = ["order", "subcycle", "repeat"]

    def to_representation(self, instance: SupercycleBlock) -> dict[str, Any]:
        return {
            "order": instance.order,
            "subcycle": instance.subcycle.name,
            "repeat": instance.repeat,
        }


class RecipeSerializer(ScopedModelSerializer):
    """Nested on write the way people write recipes: sub-cycles with their steps, then the
    supercycle as [{"subcycle": name, "repeat": n}, ...] (omit it for a one-sub-cycle
    recipe), pre/post steps optional. GET adds the expansion summary."""

    project = _project_field()
    subcycles = SubCycleSerializer(many=True)
    blocks = BlockSerializer(many=True, required=False)
    pre_steps = StepSerializer(many=True, required=False, write_only=True)
    post_steps = StepSerializer(many=True, required=False, write_only=True)
    run_count = serializers.IntegerField(read_only=True)
    expansion = serializers.SerializerMethodField()

    class Meta:
        model = Recipe
        fields = [
            "id",
            "project",
            "name",
            "version",
            "mode",
            "target_material",
            "deposition_temperature_c",
            "chamber_pressure_torr",
            "carrier_gas",
            "carrier_flow_sccm",
            "film_density_g_cm3",
            "supercycle_repeats",
            "process_reference",
            "previous_version",
            "frozen",
            "frozen_at",
            "notes",
            "subcycles",
            "blocks",
            "pre_steps",
            "post_steps",
            "run_count",
            "expansion",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["version", "previous_version", "frozen", "frozen_at"]

    def get_expansion(self, recipe: Recipe) -> dict[str, Any]:
        return selectors.recipe_summary(recipe=recipe)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        subcycles = attrs.get("subcycles")
        if subcycles is not None and not attrs.get("blocks") and len(subcycles) == 1:
            attrs["blocks"] = [{"subcycle": subcycles[0]["name"], "repeat": 1}]
        return attrs

    def to_representation(self, instance: Recipe) -> dict[str, Any]:
        data = super().to_representation(instance)
        extra = sorted(instance.extra_steps.all(), key=lambda s: s.order)
        for phase in ("pre", "post"):
            rows = [s for s in extra if s.phase == phase]
            data[f"{phase}_steps"] = StepSerializer(rows, many=True).data
        return data

    @staticmethod
    def structure(data: dict[str, Any]) -> dict[str, Any]:
        """Validated nested data -> service inputs (only the parts that were given)."""

        def steps(rows: list[dict[str, Any]]) -> list[StepInput]:
            return [StepInput(**row) for row in rows]

        out: dict[str, Any] = {}
        if "subcycles" in data:
            out["subcycles"] = [
                SubCycleInput(
                    name=sc["name"],
                    steps=steps(sc.get("steps", [])),
                    gpc_angstrom=sc.get("gpc_angstrom"),
                    target_material=sc.get("target_material", ""),
                )
                for sc in data.pop("subcycles")
            ]
        if "blocks" in data:
            out["blocks"] = [BlockInput(**b) for b in data.pop("blocks")]
        for key in ("pre_steps", "post_steps"):
            if key in data:
                out[key] = steps(data.pop(key))
        return out


class RecipeVersionSerializer(serializers.Serializer):
    notes = serializers.CharField(required=False, allow_blank=True)


class PlannedStepSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    phase = serializers.CharField()
    supercycle = serializers.IntegerField(allow_null=True)
    block = serializers.IntegerField(allow_null=True)
    subcycle = serializers.CharField(allow_null=True)
    repetition = serializers.IntegerField(allow_null=True)
    order = serializers.IntegerField()
    kind = serializers.CharField()
    source_label = serializers.CharField()
    start_s = serializers.FloatField()
    duration_s = serializers.FloatField()


class MeasuredGPCSerializer(serializers.Serializer):
    """One row of ``selectors.run_gpc`` (``MeasuredGPC``): a GPC and where its numbers came from."""

    measurement = serializers.IntegerField()
    sample = serializers.CharField()
    method = serializers.CharField()
    location = serializers.CharField()
    thickness_nm = serializers.FloatField()
    uncertainty_nm = serializers.FloatField(allow_null=True)
    run = serializers.CharField()
    cycles = serializers.IntegerField()
    cycles_source = serializers.CharField(help_text="actual (recorded) or planned (recipe)")
    basis = serializers.CharField(help_text="sub-cycle or supercycle")
    units_per_cycle = serializers.IntegerField()
    gpc_angstrom = serializers.FloatField()
    gpc_uncertainty_angstrom = serializers.FloatField(allow_null=True)
    expected_gpc_angstrom = serializers.FloatField(allow_null=True)
    expected_from = serializers.CharField()
    ratio_to_expected = serializers.FloatField(allow_null=True)
    reference = serializers.CharField(allow_null=True)
    reference_gpc_min_angstrom = serializers.FloatField(allow_null=True)
    reference_gpc_max_angstrom = serializers.FloatField(allow_null=True)
    reference_verdict = serializers.CharField()
    reference_source = serializers.CharField()


class ProcessReferenceSerializer(ScopedModelSerializer):
    class Meta:
        model = ProcessReference
        fields = "__all__"


# --- runs ------------------------------------------------------------------------------------


class RunLoadSerializer(ScopedModelSerializer):
    sample = _sample_field()
    output_sample: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="code", read_only=True, allow_null=True, help_text="null until the run completes"
    )
    quantity = serializers.DecimalField(max_digits=14, decimal_places=6, required=False)
    surface_area_m2 = serializers.DecimalField(
        max_digits=20, decimal_places=6, read_only=True, allow_null=True
    )

    class Meta:
        model = RunLoad
        fields = [
            "id",
            "sample",
            "role",
            "position",
            "mass_g",
            "bet_m2_g",
            "area_cm2",
            "quantity",
            "surface_area_m2",
            "output_sample",
            "notes",
        ]


class RunPrecursorSerializer(ScopedModelSerializer):
    port = serializers.CharField(source="tool_source.label", read_only=True)
    bottle_label = serializers.CharField(source="precursor_lot.bottle_label", read_only=True)
    chemical = serializers.CharField(source="precursor_lot.chemical.name", read_only=True)

    class Meta:
        model = RunPrecursor
        fields = [
            "tool_source",
            "port",
            "precursor_lot",
            "bottle_label",
            "chemical",
            "from_installation",
        ]
        read_only_fields = ["from_installation"]


class DepositionRunSerializer(ScopedModelSerializer):
    project = _project_field()
    recipe_label = serializers.CharField(source="recipe.__str__", read_only=True)
    tool_name = serializers.CharField(source="tool.instrument.name", read_only=True)
    operator = serializers.CharField(
        source="operator.username", read_only=True, allow_null=True, default=None
    )
    loads = RunLoadSerializer(many=True, read_only=True)
    precursors = RunPrecursorSerializer(many=True, read_only=True)
    qc_verdict = serializers.ChoiceField(
        choices=[(v, v) for v in QC_VERDICTS],
        read_only=True,
        help_text="Tool-log QC: worst check status, 'checking' while a log is queued, or 'no log'",
    )

    class Meta:
        model = DepositionRun
        fields = [
            "id",
            "code",
            "project",
            "tool",
            "tool_name",
            "chamber",
            "recipe",
            "recipe_label",
            "recipe_snapshot",
            "operator",
            "started_at",
            "ended_at",
            "status",
            "qc_verdict",
            "setpoint_temperature_c",
            "measured_temperature_c",
            "base_pressure_torr",
            "planned_cycles",
            "actual_cycles",
            "notes",
            "operation",
            "loads",
            "precursors",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["status", "planned_cycles", "operation", "recipe_snapshot"]


class LoadOutputSerializer(serializers.Serializer):
    load = serializers.IntegerField()
    code = serializers.CharField(required=False, max_length=64)
    quantity = serializers.DecimalField(max_digits=14, decimal_places=6, required=False)


class RunCompleteSerializer(serializers.Serializer):
    ended_at = serializers.DateTimeField(required=False)
    actual_cycles = serializers.IntegerField(required=False, min_value=0)
    measured_temperature_c = serializers.DecimalField(
        max_digits=7, decimal_places=2, required=False
    )
    notes = serializers.CharField(required=False, allow_blank=True)
    outputs = LoadOutputSerializer(many=True, required=False)

    def service_kwargs(self) -> dict[str, Any]:
        data = dict(self.validated_data)
        outputs = data.pop("outputs", [])
        data["outputs"] = {
            o["load"]: LoadOutput(code=o.get("code"), quantity=o.get("quantity")) for o in outputs
        }
        return data


class RunStartSerializer(serializers.Serializer):
    started_at = serializers.DateTimeField(required=False)


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField()


class DoseCheckQuerySerializer(serializers.Serializer):
    site_density_per_m2 = serializers.FloatField(required=False, min_value=1e15, max_value=1e20)
    safety_factor = serializers.FloatField(required=False, min_value=0.1, max_value=100)


# --- measurements ------------------------------------------------------------------------------


class ThicknessMeasurementSerializer(ScopedModelSerializer):
    sample = _sample_field()
    run = _run_field()
    measured_at = serializers.DateTimeField(required=False)
    gpc = serializers.SerializerMethodField()

    class Meta:
        model = ThicknessMeasurement
        fields = [
            "id",
            "sample",
            "run",
            "method",
            "value_nm",
            "uncertainty_nm",
            "location",
            "optical_model",
            "measured_at",
            "notes",
            "gpc",
        ]

    def get_gpc(self, measurement: ThicknessMeasurement) -> dict[str, Any] | None:
        """Computed on read from the measurement and the run's snapshot: never stale."""
        result = selectors.measured_gpc(measurement=measurement)
        return result.as_dict() if result else None


class CompositionMeasurementSerializer(ScopedModelSerializer):
    sample = _sample_field()
    run = _run_field()
    measured_at = serializers.DateTimeField(required=False)
    fractions = serializers.DictField(child=serializers.FloatField(min_value=0))

    class Meta:
        model = CompositionMeasurement
        fields = [
            "id",
            "sample",
            "run",
            "method",
            "fractions",
            "li_to_metal_ratio",
            "coating_wt_pct",
            "measured_at",
            "notes",
        ]


class FilmPropertySerializer(ScopedModelSerializer):
    sample = _sample_field()
    run = _run_field()
    measured_at = serializers.DateTimeField(required=False)

    class Meta:
        model = FilmProperty
        fields = [
            "id",
            "sample",
            "run",
            "density_g_cm3",
            "refractive_index",
            "wavelength_nm",
            "roughness_nm",
            "ionic_conductivity_s_cm",
            "temperature_c",
            "method",
            "measured_at",
            "notes",
        ]


# --- anneals -----------------------------------------------------------------------------------


class SegmentSerializer(ScopedModelSerializer):
    order = serializers.IntegerField(read_only=True)
    kind = serializers.ChoiceField(choices=SegmentKind.choices)

    class Meta:
        model = AnnealSegment
        fields = ["order", "kind", "target_c", "rate_k_per_min", "duration_min"]


class FurnaceLogSerializer(ScopedModelSerializer):
    raw_sha256 = serializers.CharField(source="raw_file.sha256", read_only=True)
    filename = serializers.CharField(source="raw_file.original_name", read_only=True)

    class Meta:
        model = FurnaceLog
        fields = [
            "id",
            "job",
            "raw_sha256",
            "filename",
            "parser_version",
            "tolerance_k",
            "points",
            "overall",
            "checks",
            "plan",
            "created_at",
        ]


class PostTreatmentSerializer(ScopedModelSerializer):
    project = _project_field()
    furnace = serializers.PrimaryKeyRelatedField(
        queryset=Instrument.objects.filter(kind=Instrument.Kind.FURNACE),
        required=False,
        allow_null=True,
    )
    segments = SegmentSerializer(many=True)
    furnace_logs = FurnaceLogSerializer(many=True, read_only=True)
    profile = serializers.SerializerMethodField()

    class Meta:
        model = PostTreatment
        fields = [
            "id",
            "code",
            "project",
            "furnace",
            "atmosphere",
            "gas_flow_sccm",
            "pressure_torr",
            "start_temperature_c",
            "started_at",
            "ended_at",
            "status",
            "notes",
            "operation",
            "segments",
            "profile",
            "furnace_logs",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["status", "operation"]

    def get_profile(self, treatment: PostTreatment) -> dict[str, Any]:
        try:
            return furnace_selectors.treatment_profile(treatment=treatment).as_dict()
        except ValueError as exc:
            return {"error": str(exc)}

    @staticmethod
    def segment_inputs(data: dict[str, Any]) -> list[SegmentInput] | None:
        if "segments" not in data:
            return None
        return [SegmentInput(**s) for s in data.pop("segments")]


class AnnealInputSerializer(serializers.Serializer):
    sample = _sample_field()
    quantity = serializers.DecimalField(max_digits=14, decimal_places=6, required=False)
    output_code = serializers.CharField(required=False, max_length=64)


class PostTreatmentCompleteSerializer(serializers.Serializer):
    inputs = AnnealInputSerializer(many=True)
    started_at = serializers.DateTimeField(required=False)
    ended_at = serializers.DateTimeField(required=False)

    def service_kwargs(self) -> dict[str, Any]:
        data = dict(self.validated_data)
        data["inputs"] = [AnnealInput(**item) for item in data["inputs"]]
        return data


# --- tool logs ----------------------------------------------------------------------------------


class RunLogSegmentSerializer(ScopedModelSerializer):
    """One run's part of a tool log (the whole log, or one session of an appended log)."""

    run: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="code", read_only=True
    )

    class Meta:
        model = RunLogSegment
        fields = [
            "index",
            "run",
            "link",
            "started_at",
            "ended_at",
            "rows",
            "verdict",
            "reasons",
            "pulses_per_source",
            "checks",
            "metadata",
            "warnings",
        ]
        read_only_fields = fields


class RunLogFileSerializer(ScopedModelSerializer):
    """A tool log and what was read from it; the raw file's hash says which bytes."""

    run: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="code", read_only=True
    )
    project: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    file = serializers.CharField(source="raw_file.original_name", read_only=True)
    sha256 = serializers.CharField(source="raw_file.sha256", read_only=True)
    job_status = serializers.CharField(
        source="job.status", read_only=True, allow_null=True, default=None
    )
    segments = RunLogSegmentSerializer(many=True, read_only=True)

    class Meta:
        model = RunLogFile
        fields = [
            "id",
            "run",
            "project",
            "file",
            "sha256",
            "job",
            "job_status",
            "parser_name",
            "parser_version",
            "row_count",
            "sample_period_s",
            "channels",
            "metadata",
            "warnings",
            "segments",
            "created_at",
        ]
        read_only_fields = fields


class RunCheckSerializer(ScopedModelSerializer):
    log_file: serializers.PrimaryKeyRelatedField = serializers.PrimaryKeyRelatedField(
        source="log", read_only=True
    )
    segment = serializers.IntegerField(
        source="segment.index",
        read_only=True,
        allow_null=True,
        default=None,
        help_text="Session of the log",
    )

    class Meta:
        model = RunCheck
        fields = [
            "name",
            "status",
            "value",
            "threshold",
            "details",
            "checker_version",
            "log_file",
            "segment",
            "created_at",
        ]
        read_only_fields = fields


class PulseEventSerializer(ScopedModelSerializer):
    log_file: serializers.PrimaryKeyRelatedField = serializers.PrimaryKeyRelatedField(
        source="log", read_only=True
    )
    segment = serializers.IntegerField(
        source="segment.index",
        read_only=True,
        allow_null=True,
        default=None,
        help_text="Session of the log",
    )

    class Meta:
        model = PulseEvent
        fields = [
            "log_file",
            "segment",
            "source",
            "channel",
            "index",
            "supercycle",
            "subcycle",
            "repetition",
            "start_s",
            "width_s",
            "width_uncertainty_s",
            "baseline",
            "peak",
            "area",
            "qcm_delta",
            "power_w",
            "dead",
        ]
        read_only_fields = fields


class RunLinkSerializer(serializers.Serializer):
    run = serializers.CharField(max_length=64, help_text="Code of the deposition run")
    segment = serializers.IntegerField(
        required=False,
        min_value=0,
        help_text="A log of several sessions: which one belongs to the run (0-based); "
        "default: the one in the run's time window",
    )


class QueuedJobsSerializer(serializers.Serializer):
    queued_jobs = serializers.ListField(child=serializers.IntegerField())
