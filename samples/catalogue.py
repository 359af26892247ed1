"""Catalogue pages (lims.catalogue) for materials and lots: detail and edit beside the lists."""

from __future__ import annotations

from django import forms

from lims.catalogue import Entry, register
from lims.selectors import scope_to_user
from samples import services
from samples.forms import MaterialForm
from samples.models import Material, MaterialLot


class LotEditForm(forms.ModelForm):
    class Meta:
        model = MaterialLot
        fields = ["supplier", "catalog_number", "received_on", "storage_location", "notes"]


register(
    Entry(
        slug="materials",
        title="Materials",
        queryset=lambda user: Material.objects.all(),
        columns=[
            ("name", lambda m: m.name),
            ("formula", lambda m: m.formula),
            ("class", lambda m: m.get_material_class_display()),
        ],
        search=["name", "formula"],
        form=MaterialForm,
        create=lambda user, **data: services.material_create(**data),
        update=lambda obj, user, **data: services.material_update(material=obj, **data),
        sort=["name", "material_class"],
        staff_only_writes=True,  # shared by every project (security review finding 4)
    )
)
register(
    Entry(
        slug="material-lots",
        title="Material lots",
        queryset=lambda user: scope_to_user(
            MaterialLot.objects.select_related("material"), user=user
        ),
        columns=[
            ("lot", lambda lot: f"{lot.material} {lot.lot_number}"),
            ("supplier", lambda lot: lot.supplier),
            ("received", lambda lot: lot.received_on),
            ("quantity", lambda lot: f"{lot.quantity_received} {lot.unit}"),
        ],
        search=["lot_number", "material__name", "supplier", "catalog_number"],
        form=LotEditForm,
        update=lambda obj, user, **data: services.lot_update(lot=obj, **data),
        sort=["lot_number", "received_on"],
    )
)
