"""Browser forms for recipes, runs and anneals: rows of fields, never JSON to type."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

from django import forms
from django.db.models import Q
from django.forms import formset_factory

from depositions.aldlogs.checks import THRESHOLD_HELP, Thresholds
from depositions.aldlogs.pulses import DETECTION_MODES
from depositions.choices import (
    AnnealAtmosphere,
    LoadRole,
    RecipeMode,
    SegmentKind,
    StepKind,
    ThicknessMethod,
)
from depositions.furnace import selectors as furnace_selectors
from depositions.models import Recipe, RunLogFile, Tool
from lims.access import EDITOR
from lims.models import IngestionJob, Instrument, Project
from lims.selectors import projects_for_user, scope_to_user


def _number(label: str) -> forms.DecimalField:
    """An optional decimal input (most process parameters are optional)."""
    return forms.DecimalField(max_digits=12, decimal_places=4, required=False, label=label)


class _ProjectScoped(forms.Form):
    project = forms.ModelChoiceField(queryset=Project.objects.none(), empty_label=None)

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["project"].queryset = projects_for_user(user=user, role=EDITOR)  # type: ignore[attr-defined]


class RecipeForm(_ProjectScoped):
    name = forms.CharField(max_length=120)
    mode = forms.ChoiceField(choices=RecipeMode.choices)
    target_material = forms.CharField(max_length=100, required=False)
    deposition_temperature_c = _number("Deposition temperature (°C)")
    chamber_pressure_torr = _number("Chamber pressure (Torr)")
    carrier_gas = forms.CharField(max_length=30, required=False)
    carrier_flow_sccm = _number("Carrier flow (sccm)")
    film_density_g_cm3 = _number("Film density (g/cm³), for the expected coating loading")
    supercycle_repeats = forms.IntegerField(min_value=1, initial=1, label="Supercycle repeats N")
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


class SubCycleRow(forms.Form):
    name = forms.CharField(max_length=60, required=False)
    gpc_angstrom = _number("GPC (Å/cycle)")
    target_material = forms.CharField(max_length=100, required=False)


class StepRow(forms.Form):
    subcycle = forms.CharField(max_length=60, required=False, label="Sub-cycle")
    kind = forms.ChoiceField(choices=[("", "-"), *StepKind.choices], required=False)
    source_label = forms.CharField(max_length=60, required=False, label="Source")
    duration_s = _number("Duration (s)")
    flow_sccm = _number("Flow (sccm)")
    plasma_power_w = _number("Plasma (W)")


class BlockRow(forms.Form):
    subcycle = forms.CharField(max_length=60, required=False, label="Sub-cycle")
    repeat = forms.IntegerField(min_value=1, required=False)


SubCycleFormSet = formset_factory(SubCycleRow, extra=4)
StepFormSet = formset_factory(StepRow, extra=12)
BlockFormSet = formset_factory(BlockRow, extra=4)


class RunForm(_ProjectScoped):
    code = forms.CharField(max_length=64)
    tool = forms.ModelChoiceField(queryset=Tool.objects.none())
    recipe = forms.ModelChoiceField(queryset=Recipe.objects.none())
    chamber = forms.IntegerField(min_value=1, initial=1)
    setpoint_temperature_c = _number("Setpoint temperature (°C)")
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, user=user, **kwargs)
        self.fields["tool"].queryset = scope_to_user(  # type: ignore[attr-defined]
            Tool.objects.select_related("instrument"), user=user, field="instrument__project"
        )
        self.fields["recipe"].queryset = scope_to_user(  # type: ignore[attr-defined]
            Recipe.objects.order_by("name", "-version"), user=user
        )


class LoadRow(forms.Form):
    sample = forms.CharField(max_length=64, required=False, label="Sample code")
    role = forms.ChoiceField(choices=LoadRole.choices, initial=LoadRole.PRODUCT)
    mass_g = _number("Mass (g)")
    bet_m2_g = _number("BET (m²/g)")
    area_cm2 = _number("Area (cm²)")


LoadFormSet = formset_factory(LoadRow, extra=4)


class CompleteRunForm(forms.Form):
    actual_cycles = forms.IntegerField(min_value=0, required=False)
    measured_temperature_c = _number("Measured temperature (°C)")


class AnnealForm(_ProjectScoped):
    code = forms.CharField(max_length=64)
    atmosphere = forms.ChoiceField(choices=AnnealAtmosphere.choices)
    furnace = forms.ModelChoiceField(queryset=Instrument.objects.none(), required=False)
    gas_flow_sccm = _number("Gas flow (sccm)")
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, user=user, **kwargs)
        self.fields["furnace"].queryset = scope_to_user(  # type: ignore[attr-defined]
            Instrument.objects.filter(kind=Instrument.Kind.FURNACE), user=user
        )


class SegmentRow(forms.Form):
    kind = forms.ChoiceField(choices=[("", "-"), *SegmentKind.choices], required=False)
    target_c = _number("Target (°C)")
    rate_k_per_min = _number("Rate (K/min)")
    duration_min = _number("Duration (min)")


SegmentFormSet = formset_factory(SegmentRow, extra=4)


class AnnealInputRow(forms.Form):
    sample = forms.CharField(max_length=64, required=False, label="Sample code")
    quantity = _number("Quantity (empty: all)")
    output_code = forms.CharField(max_length=64, required=False, label="Output code")


AnnealInputFormSet = formset_factory(AnnealInputRow, extra=3)


class ThicknessForm(forms.Form):
    sample = forms.CharField(max_length=64, label="Sample code (a run output)")
    method = forms.ChoiceField(choices=ThicknessMethod.choices)
    value_nm = forms.DecimalField(max_digits=10, decimal_places=3, label="Thickness (nm)")
    uncertainty_nm = _number("± (nm)")
    location = forms.CharField(max_length=100, required=False)
    optical_model = forms.CharField(max_length=200, required=False)
    reason = forms.CharField(
        max_length=300,
        required=False,
        label="Reason (if it corrects a value)",
        help_text="Needed when this sample already has a value by this method at this spot.",
    )


_DEFAULTS = Thresholds()


class _MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class _MultipleFileField(forms.FileField):
    """Several files in one input (a run's data log with its companions)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", _MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(d, initial) for d in data]
        return [single(data, initial)]


class RunLogUploadForm(forms.Form):
    logs = _MultipleFileField(
        allow_empty_file=True,
        label="Tool log files",
        help_text="Data log, event log, summary, execution table, QCM table: any order, any names",
    )


class AnnealLogUploadForm(forms.Form):
    logs = _MultipleFileField(
        allow_empty_file=True,
        label="Furnace log files",
        help_text="time and temperature columns (CSV, TSV, ; or spaces); units from the header",
    )
    tolerance_k = forms.DecimalField(
        max_digits=6,
        decimal_places=2,
        min_value=Decimal("0.01"),
        required=False,
        label="Tolerance (K)",
        help_text="band around each dwell's target; empty: 5 K",
    )


class AnnealLogLinkForm(forms.Form):
    job = forms.ModelChoiceField(
        queryset=IngestionJob.objects.none(), label="Unlinked furnace log", empty_label=None
    )

    def __init__(self, *args: Any, treatment: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["job"]
        field.queryset = furnace_selectors.unlinked_furnace_jobs(  # type: ignore[attr-defined]
            project=treatment.project_id
        )
        field.label_from_instance = (  # type: ignore[attr-defined]
            lambda j: f"{j.raw_file.original_name} (job {j.pk}, {j.created_at:%Y-%m-%d %H:%M})"
        )


class RunLogLinkForm(forms.Form):
    log_file = forms.ModelChoiceField(
        queryset=RunLogFile.objects.none(), label="Unlinked tool log", empty_label=None
    )
    segment = forms.IntegerField(
        required=False,
        min_value=0,
        label="Session",
        help_text="A log of several sessions: which one (0 = the first); empty = the one in "
        "the run's time window",
    )

    def __init__(self, *args: Any, run: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["log_file"]
        field.queryset = (  # type: ignore[attr-defined]
            # unlinked logs, and appended logs whose sessions belong to several runs
            RunLogFile.objects.filter(project=run.project)
            .filter(Q(run=None) | Q(segments__index=1))
            .distinct()
            .select_related("raw_file")
            .order_by("-created_at")
        )
        field.label_from_instance = (  # type: ignore[attr-defined]
            lambda f: f"{f.raw_file.original_name} ({f.parser_name}, {f.created_at:%Y-%m-%d %H:%M})"
        )


class ToolThresholdsForm(forms.Form):
    """One field per check threshold; empty = the default (shown as the placeholder).

    Built from the ``Thresholds`` dataclass, so a new threshold appears here without a form
    change; ``Tool.clean`` validates the result with ``Thresholds.from_dict``.
    """

    recheck = forms.BooleanField(
        required=False, label="Check this tool's logged runs again with the new thresholds"
    )

    def __init__(self, *args: Any, tool: Tool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        current = dict(tool.check_thresholds or {})
        for spec in dataclasses.fields(Thresholds):
            default = getattr(_DEFAULTS, spec.name)
            placeholder = {"placeholder": "one sample period" if default is None else default}
            value = current.get(spec.name)
            field: forms.Field
            if spec.name == "pulse_detection":
                field = forms.ChoiceField(
                    choices=[("", f"default ({default})"), *((m, m) for m in DETECTION_MODES)],
                    required=False,
                )
            elif spec.name == "pressure_channel":
                placeholder["placeholder"] = "auto (chamber/reactor/process)"
                field = forms.CharField(required=False, max_length=100)
            elif spec.name == "setpoint_channels":
                field = forms.CharField(
                    required=False,
                    widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Furnace Temp = TC 1"}),
                )
                value = "\n".join(f"{k} = {v}" for k, v in (value or {}).items()) or None
            elif isinstance(default, int) and not isinstance(default, bool):
                field = forms.IntegerField(required=False, min_value=0)
            else:
                field = forms.FloatField(required=False, min_value=0)
            if spec.name != "setpoint_channels":
                field.widget.attrs.update(placeholder)
            field.label = spec.name
            field.help_text = THRESHOLD_HELP.get(spec.name, "")
            field.initial = value
            self.fields[spec.name] = field
        self.order_fields([f.name for f in dataclasses.fields(Thresholds)] + ["recheck"])

    def overrides(self) -> dict[str, Any]:
        """The non-empty fields: what the tool stores (everything else stays a default)."""
        out: dict[str, Any] = {}
        for spec in dataclasses.fields(Thresholds):
            value = self.cleaned_data.get(spec.name)
            if value in (None, ""):
                continue
            if spec.name == "setpoint_channels":
                pairs = [line.split("=", 1) for line in str(value).splitlines() if line.strip()]
                value = {k.strip(): v.strip() for k, v in pairs}  # checked by clean_
            out[spec.name] = value
        return out

    def clean_setpoint_channels(self) -> str:
        text = self.cleaned_data.get("setpoint_channels") or ""
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip() and ("=" not in line or not all(p.strip() for p in line.split("=", 1))):
                raise forms.ValidationError(f"line {number}: write 'setpoint name = channel'")
        return str(text)
