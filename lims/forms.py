from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.http import HttpRequest

from lims import changelog
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


REASON_HELP = "Why the value changes: kept in the change log beside the old and new value."


class CorrectionReasonForm(forms.Form):
    """Asks why when an edit changes a value that results are derived from (active mass, areas,
    a molar mass that dose checks use...): ALCOA+ wants the "why" of a correction beside the
    old and new value. Mix it into a model form and name the fields in ``result_fields``; the
    view calls ``note_reason`` before saving, so the change log and the re-derived records'
    event carry it. A new object needs no reason."""

    result_fields: ClassVar[tuple[str, ...]] = ()

    reason = forms.CharField(
        required=False, max_length=300, label="Reason for the correction", help_text=REASON_HELP
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        instance = getattr(self, "instance", None)
        if instance is None or instance.pk is None:  # a new object is not a correction
            del self.fields["reason"]

    def corrected(self) -> list[str]:
        """Labels of the result-bearing fields this submission changes on an existing object."""
        instance = getattr(self, "instance", None)
        if instance is None or instance.pk is None:
            return []
        return [str(self.fields[n].label) for n in self.result_fields if n in self.changed_data]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        corrected = self.corrected()
        if corrected and not str(data.get("reason") or "").strip():
            self.add_error(
                "reason",
                f"Say why {', '.join(corrected)} changed: results are derived from it.",
            )
        return data

    def note_reason(self, request: HttpRequest) -> str:
        """Make the reason the change log's for this request; returns it (stripped)."""
        reason = str(self.cleaned_data.pop("reason", "") or "").strip()
        changelog.note_reason(request, {"reason": reason})
        return reason
