from __future__ import annotations

from typing import Any

from django import forms

from lims.ingestion.services import KINDS
from lims.models import Project
from lims.selectors import projects_for_user


class UploadForm(forms.Form):
    file = forms.FileField(allow_empty_file=True)
    project: forms.ModelChoiceField = forms.ModelChoiceField(
        queryset=Project.objects.none(), empty_label=None
    )
    kind = forms.ChoiceField(
        choices=[("", "detect from content")] + [(k, k) for k in KINDS], required=False
    )
    cell = forms.CharField(required=False, max_length=64, help_text="Cell code to link to")
    run = forms.CharField(required=False, max_length=64, help_text="Deposition run code")
    anneal = forms.CharField(required=False, max_length=64, help_text="Anneal code (furnace log)")

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = projects_for_user(user=user)  # type: ignore[attr-defined]
