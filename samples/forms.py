from __future__ import annotations

from typing import Any

from django import forms

from lims.access import EDITOR
from lims.models import Project
from lims.selectors import projects_for_user, scope_to_user
from samples.choices import SampleKind
from samples.models import ExposureEvent, Material, MaterialLot, Sample


class SampleForm(forms.ModelForm):
    """Validation only; saving goes through samples.services."""

    class Meta:
        model = Sample
        fields = [
            "code",
            "project",
            "kind",
            "material",
            "lot",
            "quantity",
            "unit",
            "state",
            "form_factor",
            "diameter_mm",
            "thickness_um",
            "area_cm2",
            "bet_m2_g",
            "location",
            "notes",
        ]
        widgets = {"notes": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = projects_for_user(user=user, role=EDITOR)  # type: ignore[attr-defined]
        # only the user's projects' lots (the model checks it is the sample's project)
        self.fields["lot"].queryset = scope_to_user(  # type: ignore[attr-defined]
            MaterialLot.objects.select_related("material"), user=user
        )


class SplitForm(forms.Form):
    """Aliquots as lines "CODE QUANTITY", so a split of n takes one text box, not n forms."""

    aliquots = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "NMC-A1 10\nNMC-A2 10"}),
        help_text="One aliquot per line: code and quantity in the sample's unit",
    )
    kind = forms.ChoiceField(choices=SampleKind.choices, initial=SampleKind.POWDER)
    taken = forms.DecimalField(required=False, help_text="Amount taken; default: the sum")

    def clean_aliquots(self) -> list[tuple[str, str]]:
        parsed = []
        for number, line in enumerate(self.cleaned_data["aliquots"].splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise forms.ValidationError(f"line {number}: write 'CODE QUANTITY'")
            parsed.append((parts[0], parts[1].replace(",", ".")))
        if not parsed:
            raise forms.ValidationError("give at least one aliquot")
        return parsed


class ImportForm(forms.Form):
    file = forms.FileField(
        help_text="CSV or XLSX with columns code, kind, quantity (+ unit, "
        "material, lot, state, location, notes, bet_m2_g, ...)"
    )
    project = forms.ModelChoiceField(queryset=Project.objects.none(), empty_label=None)
    dry_run = forms.BooleanField(required=False, initial=True, label="Dry run (write nothing)")

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = projects_for_user(user=user, role=EDITOR)  # type: ignore[attr-defined]


class MixForm(forms.Form):
    """A composite from several samples: one line per input, "CODE QUANTITY"."""

    project = forms.ModelChoiceField(queryset=Project.objects.none(), empty_label=None)
    inputs = forms.CharField(
        widget=forms.Textarea(
            attrs={"rows": 4, "placeholder": "NMC811-A2-LNO-A400 0.7\nLPSC-01 0.3"}
        ),
        help_text="One input per line: sample code and mass taken (g)",
    )
    code = forms.CharField(max_length=64, label="Composite code")
    kind = forms.ChoiceField(choices=SampleKind.choices, initial=SampleKind.COMPOSITE)
    quantity = forms.DecimalField(required=False, help_text="Mass made (g); default: the sum")

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = projects_for_user(user=user, role=EDITOR)  # type: ignore[attr-defined]

    def clean_inputs(self) -> list[tuple[str, str]]:
        rows = []
        for number, line in enumerate(self.cleaned_data["inputs"].splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise forms.ValidationError(f"line {number}: write 'CODE QUANTITY'")
            rows.append((parts[0], parts[1].replace(",", ".")))
        if len(rows) < 2:
            raise forms.ValidationError("a mix needs at least two inputs")
        return rows


class LotForm(forms.ModelForm):
    """Receiving a lot; with a sample code, also the sample its lineage starts from."""

    sample_code = forms.CharField(
        max_length=64, required=False, help_text="Create the as-received sample with this code"
    )

    class Meta:
        model = MaterialLot
        fields = [
            "material",
            "project",
            "supplier",
            "catalog_number",
            "lot_number",
            "received_on",
            "quantity_received",
            "unit",
            "storage_location",
            "notes",
        ]
        widgets = {"received_on": forms.DateInput(attrs={"type": "date"})}

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = projects_for_user(user=user, role=EDITOR)  # type: ignore[attr-defined]


class MaterialForm(forms.ModelForm):
    class Meta:
        model = Material
        fields = ["name", "formula", "material_class", "default_supplier", "notes"]


class ExposureForm(forms.ModelForm):
    class Meta:
        model = ExposureEvent
        fields = ["atmosphere", "started_at", "ended_at", "h2o_ppm", "o2_ppm", "notes"]
        widgets = {
            "started_at": forms.DateTimeInput(attrs={"type": "datetime-local"}),
            "ended_at": forms.DateTimeInput(attrs={"type": "datetime-local"}),
        }
