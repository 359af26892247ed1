"""What a cell's ``.eln`` holds: the cell, each cycling test and impedance spectrum with its raw
file, stored series and cycle table, and how each derived file was made (``lims.eln``)."""

from __future__ import annotations

import json
from typing import Any

from cells import selectors
from cells.exports import BDF_ONTOLOGY, BDF_VERSION
from cells.models import Cell, CyclingTest, EisSpectrum
from lims.eln import Crate, CrateAction, CrateDataset, CrateFile, safe_name
from lims.ingestion import storage

_CELL_FIELDS: list[tuple[str, str]] = [
    ("format", ""),
    ("cell_type", ""),
    ("cathode_active_material", ""),
    ("ratio_active", ""),
    ("ratio_se", ""),
    ("ratio_carbon", ""),
    ("cathode_mass_mg", "mg"),
    ("active_mass_mg", "mg"),
    ("active_mass_source", ""),
    ("se_material", ""),
    ("se_mass_mg", "mg"),
    ("se_thickness_um", "µm"),
    ("anode_kind", ""),
    ("anode_description", ""),
    ("li_foil_thickness_um", "µm"),
    ("pellet_diameter_mm", "mm"),
    ("area_cm2", "cm²"),
    ("fabrication_pressure_mpa", "MPa"),
    ("stack_pressure_mpa", "MPa"),
    ("temperature_c", "°C"),
    ("nominal_capacity_mah", "mAh"),
    ("assembled_at", ""),
    ("notes", ""),
]
_RECORD_FIELDS: list[tuple[str, str]] = [
    ("cycles", ""),
    ("first_charge_mah", "mAh"),
    ("first_discharge_mah", "mAh"),
    ("first_discharge_mah_g", "mAh/g"),
    ("initial_ce", ""),
    ("capacity_c10_mah_g", "mAh/g"),
    ("capacity_c50_mah_g", "mAh/g"),
    ("capacity_c100_mah_g", "mAh/g"),
    ("retention_pct", "%"),
    ("reference_cycle", ""),
    ("cycles_to_80", ""),
    ("mean_ce", ""),
    ("active_mass_mg", "mg"),
    ("active_mass_source", ""),
]


def _number(value: Any) -> Any:
    """Decimals as floats (JSON-LD numbers), everything else as it is."""
    from decimal import Decimal

    return float(value) if isinstance(value, Decimal) else value


def raw_file(path: str, raw: Any, what: str) -> CrateFile:
    return CrateFile(
        path=f"{path}raw/{safe_name(raw.original_name)}",
        name=raw.original_name,
        encoding_format=raw.content_type or "application/octet-stream",
        description=f"{what} as the instrument wrote it (byte-identical; sha256 {raw.sha256})",
        source=storage.absolute(raw.storage_path),
    )


def _test_dataset(test: CyclingTest, path: str) -> tuple[CrateDataset, CrateAction]:
    raw = raw_file(path, test.raw_file, "cycler file")
    files = [raw]
    results = []
    if test.series_path:
        series = CrateFile(
            path=f"{path}series.parquet",
            name="series.parquet",
            encoding_format="application/vnd.apache.parquet",
            description="Full time series in canonical columns (time_s, cycle, step, "
            "current_a [+ = charge], voltage_v, instrument capacity and energy counters, "
            "temperature_c), as stored at ingestion. BDF CSV of the same rows: the test's "
            f"series download with as=bdf (BDF ontology {BDF_VERSION}, {BDF_ONTOLOGY}).",
            source=storage.absolute(test.series_path),
            based_on=[raw.path],
        )
        files.append(series)
        results.append(series.path)
    cycles = CrateFile(
        path=f"{path}cycles.csv",
        name="cycles.csv",
        encoding_format="text/csv",
        description="Cycle table: per-cycle capacities (mAh, mAh/g of active material), CE, "
        "energies, mean and end voltages; cycle_index counts from 1",
        content=selectors.cycle_table_csv(test=test),
        based_on=[raw.path],
    )
    files.append(cycles)
    results.append(cycles.path)
    record = getattr(test, "performance", None)
    properties: list[tuple[str, Any, str]] = [
        ("vendor", test.vendor, ""),
        ("channel", test.channel, ""),
        ("parser", test.parser_name, ""),
        ("parser_version", test.parser_version, ""),
        ("raw_sha256", test.raw_file.sha256, ""),
        ("rows", test.row_count, ""),
        ("started_at", test.started_at.isoformat() if test.started_at else None, ""),
        ("chain_role", test.chain_role, ""),
        ("chain_position", test.chain_position, ""),
        *((f"conventions.{k}", v, "") for k, v in sorted(test.conventions.items())),
    ]
    if record is not None:
        properties += [
            (f"performance.{k}", _number(getattr(record, k)), u) for k, u in _RECORD_FIELDS
        ]
        properties.append(("performance.reason", record.reason, ""))
    dataset = CrateDataset(
        path=path,
        name=f"Cycling test {test.pk}: {test.raw_file.original_name}",
        description=f"Galvanostatic cycling of cell {test.cell or '(unlinked)'}",
        identifier=f"cycling-test-{test.pk}",
        keywords="cycling test, battery, solid-state",
        date_created=test.created_at,
        properties=properties,
        files=files,
    )
    action = CrateAction(
        id=f"ingest-test-{test.pk}",
        name=f"Ingestion of {test.raw_file.original_name}",
        software=test.parser_name,
        version=test.parser_version,
        inputs=[raw.path],
        results=results,
        description="Conventions: " + json.dumps(test.conventions, default=str),
        end_time=test.created_at,
    )
    return dataset, action


def _spectrum_dataset(spectrum: EisSpectrum, path: str) -> tuple[CrateDataset, CrateAction]:
    raw = raw_file(path, spectrum.raw_file, "impedance file")
    files = [raw]
    if spectrum.series_path:
        files.append(
            CrateFile(
                path=f"{path}spectrum.parquet",
                name="spectrum.parquet",
                encoding_format="application/vnd.apache.parquet",
                description="Impedance points as stored (Z = Z' + jZ'', Z'' < 0 capacitive)",
                source=storage.absolute(spectrum.series_path),
                based_on=[raw.path],
            )
        )
    properties: list[tuple[str, Any, str]] = [
        ("technique", spectrum.technique, ""),
        ("parser", spectrum.parser_name, ""),
        ("parser_version", spectrum.parser_version, ""),
        ("raw_sha256", spectrum.raw_file.sha256, ""),
        ("temperature_c", spectrum.temperature_c, "°C"),
        ("points", spectrum.points, ""),
        ("f_min_hz", spectrum.f_min_hz, "Hz"),
        ("f_max_hz", spectrum.f_max_hz, "Hz"),
        ("hf_intercept_ohm", spectrum.hf_intercept_ohm, "Ω"),
        *((f"conventions.{k}", v, "") for k, v in sorted(spectrum.conventions.items())),
    ]
    dataset = CrateDataset(
        path=path,
        name=f"Impedance spectrum {spectrum.pk}: {spectrum.raw_file.original_name}",
        identifier=f"eis-spectrum-{spectrum.pk}",
        keywords="impedance, EIS",
        date_created=spectrum.created_at,
        properties=properties,
        files=files,
    )
    action = CrateAction(
        id=f"ingest-spectrum-{spectrum.pk}",
        name=f"Ingestion of {spectrum.raw_file.original_name}",
        software=spectrum.parser_name,
        version=spectrum.parser_version,
        inputs=[raw.path],
        results=[f.path for f in files[1:]],
        description="Conventions: " + json.dumps(spectrum.conventions, default=str),
        end_time=spectrum.created_at,
    )
    return dataset, action


def spectrum_datasets(
    spectra: list[EisSpectrum], prefix: str
) -> tuple[list[CrateDataset], list[CrateAction]]:
    """Datasets of impedance spectra (a cell's or a sample's), under ``prefix``."""
    datasets, actions = [], []
    for spectrum in spectra:
        dataset, action = _spectrum_dataset(spectrum, f"{prefix}spectrum-{spectrum.pk}/")
        datasets.append(dataset)
        actions.append(action)
    return datasets, actions


def cell_crate(*, base_url: str, cell: Cell) -> Crate:
    """The cell with every test and spectrum: raw files, series, cycle tables, provenance."""
    tests = list(cell.tests.select_related("raw_file", "performance").order_by("created_at", "pk"))
    spectra = list(cell.spectra.select_related("raw_file").order_by("created_at", "pk"))
    datasets: list[CrateDataset] = []
    actions: list[CrateAction] = []
    for test in tests:
        dataset, action = _test_dataset(test, f"test-{test.pk}/")
        datasets.append(dataset)
        actions.append(action)
    spectrum_sets, spectrum_actions = spectrum_datasets(spectra, "")
    datasets += spectrum_sets
    actions += spectrum_actions
    stitched = getattr(cell, "stitched", None)
    properties: list[tuple[str, Any, str]] = [
        ("code", cell.code, ""),
        ("project", cell.project.slug, ""),
        *((k, _number(getattr(cell, k)), u) for k, u in _CELL_FIELDS),
        ("cathode_sample", cell.cathode_sample.code if cell.cathode_sample else None, ""),
        ("se_sample", cell.se_sample.code if cell.se_sample else None, ""),
        ("anode_sample", cell.anode_sample.code if cell.anode_sample else None, ""),
    ]
    if stitched is not None:
        properties += [
            (f"stitched.{k}", _number(getattr(stitched, k)), u) for k, u in _RECORD_FIELDS
        ]
        properties.append(("stitched.tests", stitched.tests, ""))
    cell_set = CrateDataset(
        path="cell/",
        name=f"Cell {cell.code}",
        description=f"{cell.get_cell_type_display()} ({cell.get_format_display()})",
        identifier=cell.code,
        keywords="solid-state battery, cell",
        url=base_url.rstrip("/") + cell.get_absolute_url(),
        date_created=cell.created_at,
        author=cell.operator.get_username() if cell.operator else "",
        properties=properties,
        mentions=[d.path for d in datasets],
    )
    return Crate(
        folder=f"cell-{cell.code}",
        name=f"Cell {cell.code}",
        description=f"Cell {cell.code}: metadata, {len(tests)} cycling test(s) and "
        f"{len(spectra)} impedance spectrum/spectra with raw files, series and provenance",
        datasets=[cell_set, *datasets],
        actions=actions,
        publisher_url=base_url,
    )
