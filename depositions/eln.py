"""What a deposition run's ``.eln`` holds: the run, the recipe as it was run, loads,
precursors and measurements, and each tool log with its raw file, series and provenance."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.urls import reverse

from depositions.models import DepositionRun, RunLogFile
from lims.eln import Crate, CrateAction, CrateDataset, CrateFile, safe_name
from lims.ingestion import storage


def _number(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


def _log_dataset(log: RunLogFile) -> tuple[CrateDataset, CrateAction]:
    path = f"log-{log.pk}/"
    raw = CrateFile(
        path=f"{path}raw/{safe_name(log.raw_file.original_name)}",
        name=log.raw_file.original_name,
        encoding_format=log.raw_file.content_type or "application/octet-stream",
        description=f"Tool log as the tool wrote it (byte-identical; sha256 {log.raw_file.sha256})",
        source=storage.absolute(log.raw_file.storage_path),
    )
    files = [raw]
    if log.series_path:
        files.append(
            CrateFile(
                path=f"{path}series.parquet",
                name="series.parquet",
                encoding_format="application/vnd.apache.parquet",
                description="Channels of the log as stored at ingestion (time, pressure, "
                "valves, temperatures... in the units named by the log's channel list)",
                source=storage.absolute(log.series_path),
                based_on=[raw.path],
            )
        )
    dataset = CrateDataset(
        path=path,
        name=f"Tool log {log.pk}: {log.raw_file.original_name}",
        identifier=f"run-log-{log.pk}",
        keywords="ALD tool log",
        date_created=log.created_at,
        properties=[
            ("parser", log.parser_name, ""),
            ("parser_version", log.parser_version, ""),
            ("raw_sha256", log.raw_file.sha256, ""),
            ("rows", log.row_count, ""),
            ("sample_period_s", log.sample_period_s, "s"),
            ("channels", json.dumps(log.channels, default=str), ""),
        ],
        files=files,
    )
    action = CrateAction(
        id=f"ingest-log-{log.pk}",
        name=f"Ingestion of {log.raw_file.original_name}",
        software=log.parser_name,
        version=log.parser_version,
        inputs=[raw.path],
        results=[f.path for f in files[1:]],
        end_time=log.created_at,
    )
    return dataset, action


def run_crate(*, base_url: str, run: DepositionRun) -> Crate:
    recipe = CrateFile(
        path="run/recipe.json",
        name="recipe.json",
        encoding_format="application/json",
        description=f"The recipe as run (snapshot of {run.recipe.name} v{run.recipe.version} "
        "taken when the run was created): sub-cycles, steps, supercycle blocks",
        content=json.dumps(run.recipe_snapshot, default=str, indent=1).encode(),
    )
    properties: list[tuple[str, Any, str]] = [
        ("code", run.code, ""),
        ("project", run.project.slug, ""),
        ("tool", str(run.tool), ""),
        ("chamber", run.chamber, ""),
        ("recipe", f"{run.recipe.name} v{run.recipe.version}", ""),
        ("status", run.status, ""),
        ("started_at", run.started_at.isoformat() if run.started_at else None, ""),
        ("ended_at", run.ended_at.isoformat() if run.ended_at else None, ""),
        ("setpoint_temperature_c", _number(run.setpoint_temperature_c), "°C"),
        ("measured_temperature_c", _number(run.measured_temperature_c), "°C"),
        ("base_pressure_torr", _number(run.base_pressure_torr), "Torr"),
        ("planned_cycles", run.planned_cycles, ""),
        ("actual_cycles", run.actual_cycles, ""),
        ("qc_failed_by_log", run.qc_failed_by_log, ""),
        ("notes", run.notes, ""),
    ]
    for i, load in enumerate(run.loads.select_related("sample", "output_sample").order_by("pk")):
        properties += [
            (f"loads.{i}.sample", load.sample.code, ""),
            (f"loads.{i}.role", load.role, ""),
            (f"loads.{i}.quantity", _number(load.quantity), load.sample.unit),
            (f"loads.{i}.mass_g", _number(load.mass_g), "g"),
            (
                f"loads.{i}.output_sample",
                load.output_sample.code if load.output_sample else None,
                "",
            ),
        ]
    for i, p in enumerate(
        run.precursors.select_related("tool_source", "precursor_lot").order_by("pk")
    ):
        properties += [
            (f"precursors.{i}.source", p.tool_source.label, ""),
            (f"precursors.{i}.lot", str(p.precursor_lot), ""),
        ]
    for i, m in enumerate(
        run.thickness_measurements.select_related("sample").order_by("measured_at")
    ):
        properties += [
            (f"thickness.{i}.sample", m.sample.code, ""),
            (f"thickness.{i}.method", m.method, ""),
            (f"thickness.{i}.value_nm", _number(m.value_nm), "nm"),
        ]
    logs = list(run.log_files.select_related("raw_file").order_by("created_at", "pk"))
    datasets, actions = [], []
    for log in logs:
        dataset, action = _log_dataset(log)
        datasets.append(dataset)
        actions.append(action)
    run_set = CrateDataset(
        path="run/",
        name=f"Deposition run {run.code}",
        description=f"ALD/MLD run of {run.recipe.name} v{run.recipe.version} on {run.tool}",
        identifier=run.code,
        keywords="ALD, MLD, deposition run",
        url=base_url.rstrip("/") + reverse("depositions:run-detail", args=[run.code]),
        date_created=run.created_at,
        author=run.operator.get_username() if run.operator else "",
        properties=properties,
        files=[recipe],
        mentions=[d.path for d in datasets],
    )
    return Crate(
        folder=f"run-{run.code}",
        name=f"Deposition run {run.code}",
        description=f"Run {run.code}: metadata, recipe as run, loads, precursors, measurements "
        f"and {len(logs)} tool log(s) with raw files, series and provenance",
        datasets=[run_set, *datasets],
        actions=actions,
        publisher_url=base_url,
    )
