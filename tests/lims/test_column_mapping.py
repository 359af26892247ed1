"""Saved column mappings drive the generic parser; the job keeps the mapping it used."""

from __future__ import annotations

import io

import pytest

from lims import services as lims_services
from lims.ingestion import services
from lims.models import ColumnMapping

MAPPING = {
    "columns": {
        "Zeit/s": {"quantity": "time_s", "unit": "s"},
        "Zyklus": {"quantity": "cycle", "unit": ""},
        "Strom/mA": {"quantity": "current_a", "unit": "mA", "sign": 1},
        "Spannung/V": {"quantity": "voltage_v", "unit": "V"},
        "Ladung/mAh": {"quantity": "charge_capacity_ah", "unit": "mAh"},
        "Entladung/mAh": {"quantity": "discharge_capacity_ah", "unit": "mAh"},
    },
    "delimiter": ";",
    "decimal": ",",
}

CSV = (
    "Zeit/s;Zyklus;Strom/mA;Spannung/V;Ladung/mAh;Entladung/mAh\n"
    "0;1;0,5;3,60;0;0\n"
    "3600;1;0,5;4,20;0,5;0\n"
    "3601;1;-0,5;4,10;0;0\n"
    "7200;1;-0,5;3,00;0;0,45\n"
    "7201;2;0,5;3,60;0;0\n"
    "10800;2;0,5;4,20;0,48;0\n"
).encode("latin-1")


@pytest.mark.django_db
def test_saved_mapping_reads_a_csv_no_parser_knows(
    project, cell, user_client, django_capture_on_commit_callbacks
):
    response = user_client.post(
        "/api/v1/column-mappings/",
        {"project": "assb", "name": "lab-cycler-de", "mapping": MAPPING},
        format="json",
    )
    assert response.status_code == 201, response.content
    with django_capture_on_commit_callbacks(execute=False):
        job, created = services.ingest_submit(
            stream=io.BytesIO(CSV),
            filename="export.csv",
            project=project,
            params={"cell": "C-001", "metadata": {"column_mapping": "lab-cycler-de"}},
        )
    assert created and job.parser_name == "generic"
    assert job.params["metadata"]["column_mapping"] == MAPPING  # frozen copy on the job
    done = services.job_run(job_id=job.pk)
    assert done is not None and done.status == "succeeded", done.error
    assert done.result["cycles"] == 2
    perf = cell.tests.get().performance
    assert perf.first_charge_mah == pytest.approx(0.5)
    assert perf.first_discharge_mah == pytest.approx(0.45)
    assert perf.initial_ce == pytest.approx(0.9)


@pytest.mark.django_db
def test_unknown_mapping_name_is_refused_before_anything_is_stored(project):
    from django.core.exceptions import ValidationError

    from lims.models import RawFile

    with pytest.raises(ValidationError, match="no saved column mapping"):
        services.ingest_submit(
            stream=io.BytesIO(CSV),
            filename="x.csv",
            project=project,
            params={"metadata": {"column_mapping": "nope"}},
        )
    assert not RawFile.objects.exists()


@pytest.mark.django_db
def test_mapping_needs_columns_and_a_known_parser(project):
    from django.core.exceptions import ValidationError

    from lims.ingestion.parsing import ParseError

    with pytest.raises(ValidationError):
        lims_services.column_mapping_save(project=project, name="bad", mapping={"x": 1})
    with pytest.raises(ParseError):
        lims_services.column_mapping_save(
            project=project, name="bad", mapping=MAPPING, parser_name="nope"
        )
    saved = lims_services.column_mapping_save(project=project, name="ok", mapping=MAPPING)
    again = lims_services.column_mapping_save(
        project=project, name="ok", mapping={**MAPPING, "delimiter": ","}
    )
    assert saved.pk == again.pk and ColumnMapping.objects.count() == 1
