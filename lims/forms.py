from __future__ import annotations

from typing import Any

from django import forms

from lims.access import EDITOR
from lims.ingestion.services import KINDS
from lims.models import Project
from lims.selectors import projects_for_user


class UploadForm(forms.Form):
    """The browser's upload: the fields of ``POST /api/v1/ingest/`` (but ``metadata``).

    Only the types are checked here; the rules (a cell or a sample, the temperature range) are
    ``ingest_submit``'s, whose errors the view puts on these fields.
    """

    file = forms.FileField(allow_empty_file=True)
    project: forms.ModelChoiceField = forms.ModelChoiceField(
        queryset=Project.objects.none(), empty_label=None
    )
    kind = forms.ChoiceField(
        choices=[("", "detect from content")] + [(k, k) for k in KINDS], required=False
    )
    cell = forms.CharField(required=False, max_length=64, help_text="Cell code to link to")
    sample = forms.CharField(
        required=False,
        max_length=64,
        help_text="Sample code (an impedance spectrum of a pellet or film; not with a cell)",
    )
    temperature_c = forms.FloatField(
        required=False,
        label="Temperature (°C)",
        help_text="Measurement temperature of an impedance spectrum (else the file's own)",
    )
    run = forms.CharField(required=False, max_length=64, help_text="Deposition run code")
    anneal = forms.CharField(required=False, max_length=64, help_text="Anneal code (furnace log)")

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = projects_for_user(user=user, role=EDITOR)  # type: ignore[attr-defined]
