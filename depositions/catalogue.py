"""Catalogue pages (lims.catalogue) for tools, ports, chemicals, bottles, references, films."""

from __future__ import annotations

from typing import Any

from django import forms

from depositions import services
from depositions.models import (
    Chemical,
    PrecursorLot,
    ProcessReference,
    ThicknessMeasurement,
    Tool,
    ToolSource,
)
from lims.catalogue import Entry, register
from lims.forms import CorrectionReasonForm
from lims.models import Instrument
from lims.selectors import scope_to_user
from samples.models import MaterialLot


def _form(
    model_: type, fields_: list[str], result_fields: tuple[str, ...] = ()
) -> type[forms.ModelForm]:
    """A model form; a change of a ``result_fields`` value (results use it) needs a reason."""
    meta = type("Meta", (), {"model": model_, "fields": fields_})
    attrs = {"Meta": meta, "result_fields": result_fields}
    return type(f"{model_.__name__}Form", (CorrectionReasonForm, forms.ModelForm), attrs)


def _drop_user(func: Any) -> Any:
    return lambda user, **data: func(**data)


register(
    Entry(
        slug="ald-tools",
        title="ALD tools",
        queryset=lambda user: scope_to_user(
            Tool.objects.select_related("instrument"), user=user, field="instrument__project"
        ),
        columns=[
            ("tool", str),
            ("reactor", lambda t: t.get_reactor_type_display()),
            ("chambers", lambda t: t.chambers),
        ],
        search=["instrument__name", "notes"],
        form=_form(
            Tool,
            ["instrument", "reactor_type", "chambers", "check_thresholds", "log_mapping", "notes"],
        ),
        choices={
            "instrument": lambda user: scope_to_user(
                Instrument.objects.filter(kind=Instrument.Kind.ALD_TOOL), user=user
            )
        },
        create=lambda user, **data: services.tool_create(user=user, **data),
        update=lambda obj, user, **data: services.tool_update(tool=obj, **data),
        sort=["instrument__name", "reactor_type"],
    )
)
register(
    Entry(
        slug="tool-ports",
        title="Tool ports",
        queryset=lambda user: scope_to_user(
            ToolSource.objects.select_related("tool__instrument"),
            user=user,
            field="tool__instrument__project",
        ),
        columns=[
            ("port", lambda s: f"{s.tool} {s.label}"),
            ("reactant", lambda s: s.reactant),
            ("channel", lambda s: s.log_channel),
            ("delivery", lambda s: s.get_delivery_display()),
        ],
        search=["label", "reactant", "log_channel", "tool__instrument__name"],
        form=_form(
            ToolSource,
            [
                "tool",
                "label",
                "reactant",
                "log_channel",
                "delivery",
                "dose_umol_per_pulse",
                "notes",
            ],
        ),
        choices={
            "tool": lambda user: scope_to_user(
                Tool.objects.select_related("instrument"), user=user, field="instrument__project"
            )
        },
        create=lambda user, **data: services.tool_source_create(user=user, **data),
        update=lambda obj, user, **data: services.tool_source_update(source=obj, **data),
        sort=["label", "reactant"],
    )
)
register(
    Entry(
        slug="chemicals",
        title="Chemicals",
        queryset=lambda user: Chemical.objects.all(),
        columns=[
            ("name", lambda c: c.name),
            ("formula", lambda c: c.formula),
            ("synonyms", lambda c: ", ".join(c.synonyms or [])),
            ("CAS", lambda c: c.cas_number),
            ("state", lambda c: c.get_state_display()),
        ],
        search=["name", "formula", "cas_number", "synonyms"],
        form=_form(
            Chemical,
            [
                "name",
                "formula",
                "synonyms",
                "cas_number",
                "molar_mass_g_mol",
                "state",
                "hazards",
                "notes",
            ],
            result_fields=("molar_mass_g_mol",),  # dose checks divide by it
        ),
        create=_drop_user(services.chemical_create),
        update=lambda obj, user, **data: services.chemical_update(chemical=obj, **data),
        sort=["name"],
        staff_only_writes=True,  # a molar mass feeds every project's dose checks (finding 4)
    )
)
register(
    Entry(
        slug="precursor-bottles",
        title="Precursor bottles",
        queryset=lambda user: scope_to_user(
            PrecursorLot.objects.select_related("chemical", "material_lot"),
            user=user,
            field="material_lot__project",
        ),
        columns=[
            ("bottle", lambda b: b.bottle_label or str(b)),
            ("chemical", lambda b: b.chemical),
            ("lot", lambda b: b.material_lot.lot_number),
            ("status", lambda b: b.get_status_display()),
            ("opened", lambda b: b.opened_on),
        ],
        search=["bottle_label", "chemical__name", "material_lot__lot_number"],
        form=_form(
            PrecursorLot,
            [
                "material_lot",
                "chemical",
                "bottle_label",
                "fill_date",
                "opened_on",
                "status",
                "notes",
            ],
        ),
        choices={
            "material_lot": lambda user: scope_to_user(
                MaterialLot.objects.select_related("material"), user=user
            )
        },
        create=lambda user, **data: services.precursor_lot_create(user=user, **data),
        update=lambda obj, user, **data: services.precursor_lot_update(lot=obj, **data),
        sort=["bottle_label", "status"],
    )
)
register(
    Entry(
        slug="process-references",
        title="Process references",
        queryset=lambda user: ProcessReference.objects.all(),
        columns=[
            ("material", lambda r: r.material),
            ("precursors", lambda r: r.precursors),
            ("co-reactant", lambda r: r.co_reactant),
            ("T (degC)", lambda r: r.temperature_range),
            ("GPC (A/cycle)", lambda r: r.gpc_min_angstrom),
            ("sigma (S/cm)", lambda r: r.ionic_conductivity_s_cm),
        ],
        search=["material", "precursors", "co_reactant", "source"],
        form=_form(
            ProcessReference,
            [
                "key",
                "material",
                "precursors",
                "co_reactant",
                "temperature_range",
                "gpc_min_angstrom",
                "gpc_max_angstrom",
                "ionic_conductivity_s_cm",
                "ionic_conductivity_max_s_cm",
                "application",
                "post_treatment",
                "source",
                "notes",
            ],
        ),
        create=lambda user, **data: services.process_reference_save(**data),
        update=lambda obj, user, **data: services.process_reference_save(reference=obj, **data),
        sort=["material", "gpc_min_angstrom"],
        staff_only_writes=True,
    )
)
register(
    Entry(
        slug="thickness",
        title="Thickness measurements",
        queryset=lambda user: scope_to_user(
            ThicknessMeasurement.objects.select_related("sample", "run"),
            user=user,
            field="sample__project",
        ),
        columns=[
            ("sample", lambda m: m.sample.code),
            ("method", lambda m: m.get_method_display()),
            ("nm", lambda m: m.value_nm),
            ("±", lambda m: m.uncertainty_nm),
            ("run", lambda m: m.run.code if m.run else ""),
            ("measured", lambda m: m.measured_at),
        ],
        search=["sample__code", "run__code", "method"],
        sort=["measured_at", "value_nm"],
    )
)
