from __future__ import annotations

from typing import Any

from django import forms

from cells.api.serializers import CELL_FIELDS
from cells.models import Cell
from lims.access import EDITOR
from lims.forms import CorrectionReasonForm
from lims.selectors import projects_for_user, scope_to_user
from samples.models import Sample


class CellForm(CorrectionReasonForm, forms.ModelForm):
    """Validation only: saving goes through cells.services. Corrections of what the active mass,
    the area or the sign conventions come from ask for a reason."""

    result_fields = (
        "cell_type",
        "cathode_sample",
        "ratio_active",
        "ratio_se",
        "ratio_carbon",
        "cathode_mass_mg",
        "active_mass_override_mg",
        "pellet_diameter_mm",
        "area_override_cm2",
        "se_thickness_um",
    )

    class Meta:
        model = Cell
        fields = ["code", "project", *CELL_FIELDS]
        widgets = {
            "assembled_at": forms.DateTimeInput(attrs={"type": "datetime-local"}),
            "notes": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = projects_for_user(user=user, role=EDITOR)  # type: ignore[attr-defined]
        samples = scope_to_user(Sample.objects.order_by("code"), user=user)
        for name in ("cathode_sample", "se_sample", "anode_sample"):
            self.fields[name].queryset = samples  # type: ignore[attr-defined]
        if self.instance.pk:
            self.fields["code"].disabled = True
            self.fields["project"].disabled = True
