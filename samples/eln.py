"""What a sample's ``.eln`` holds: the sample, its lineage and exposures, its measurements
and the impedance spectra taken on it (raw files, series, provenance; ``lims.eln``)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from lims.eln import Crate, CrateAction, CrateDataset, CrateFile
from samples import selectors
from samples.models import Sample


def _number(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


def sample_crate(*, base_url: str, sample: Sample) -> Crate:
    from cells.eln import spectrum_datasets  # the pellet's impedance spectra

    graph = selectors.lineage(sample=sample)
    lineage = CrateFile(
        path="sample/lineage.json",
        name="lineage.json",
        encoding_format="application/json",
        description="Ancestors and descendants with the operations between them (split, mix, "
        "deposition, anneal...) and the quantities each took and made",
        content=json.dumps(graph.as_dict(), default=str, indent=1).encode(),
    )
    properties: list[tuple[str, Any, str]] = [
        ("code", sample.code, ""),
        ("project", sample.project.slug, ""),
        ("kind", sample.kind, ""),
        ("material", str(sample.material) if sample.material else None, ""),
        ("lot", str(sample.lot) if sample.lot else None, ""),
        ("quantity", _number(sample.quantity), sample.unit),
        ("remaining", _number(sample.remaining), sample.unit),
        ("state", sample.state, ""),
        ("form_factor", sample.form_factor, ""),
        ("diameter_mm", _number(sample.diameter_mm), "mm"),
        ("thickness_um", _number(sample.thickness_um), "µm"),
        ("area_cm2", _number(sample.area_cm2), "cm²"),
        ("bet_m2_g", _number(sample.bet_m2_g), "m²/g"),
        ("location", sample.location, ""),
        ("notes", sample.notes, ""),
    ]
    made = getattr(sample, "produced_by", None)
    if made is not None:
        op = made.operation
        properties += [
            ("produced_by.kind", op.kind, ""),
            ("produced_by.label", op.label, ""),
            (
                "produced_by.performed_at",
                op.performed_at.isoformat() if op.performed_at else None,
                "",
            ),
            *(
                (f"produced_by.inputs.{i}", f"{x.sample.code} {x.quantity}", x.sample.unit)
                for i, x in enumerate(op.inputs.select_related("sample").order_by("pk"))
            ),
        ]
    for i, e in enumerate(sample.exposures.order_by("started_at")):
        minutes = (e.ended_at - e.started_at).total_seconds() / 60
        properties += [
            (f"exposures.{i}.atmosphere", e.atmosphere, ""),
            (f"exposures.{i}.started_at", e.started_at.isoformat(), ""),
            (f"exposures.{i}.minutes", round(minutes, 3), "min"),
            (f"exposures.{i}.h2o_ppm", _number(e.h2o_ppm), "ppm"),
            (f"exposures.{i}.o2_ppm", _number(e.o2_ppm), "ppm"),
        ]
    for i, m in enumerate(sample.thickness_measurements.order_by("measured_at")):
        properties += [
            (f"thickness.{i}.method", m.method, ""),
            (f"thickness.{i}.value_nm", _number(m.value_nm), "nm"),
            (f"thickness.{i}.uncertainty_nm", _number(m.uncertainty_nm), "nm"),
            (f"thickness.{i}.run", m.run.code if m.run else None, ""),
        ]
    spectra = list(sample.eis_spectra.select_related("raw_file").order_by("created_at", "pk"))
    datasets, actions = spectrum_datasets(spectra, "")
    sample_set = CrateDataset(
        path="sample/",
        name=f"Sample {sample.code}",
        description=f"{sample.get_kind_display()}"
        + (f" of {sample.material}" if sample.material else ""),
        identifier=sample.code,
        keywords="sample, lineage",
        url=base_url.rstrip("/") + sample.get_absolute_url(),
        date_created=sample.created_at,
        properties=properties,
        files=[lineage],
        mentions=[d.path for d in datasets],
    )
    actions_out: list[CrateAction] = actions
    return Crate(
        folder=f"sample-{sample.code}",
        name=f"Sample {sample.code}",
        description=f"Sample {sample.code}: metadata, lineage, exposures, measurements and "
        f"{len(spectra)} impedance spectrum/spectra with raw files and provenance",
        datasets=[sample_set, *datasets],
        actions=actions_out,
        publisher_url=base_url,
    )
