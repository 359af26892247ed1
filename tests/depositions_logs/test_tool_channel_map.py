"""A tool that writes plain CSV logs: its saved channel map reads them, whether the tool's own
token pushes the file or a person names the run; plasma pulses reach the database."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from depositions import services as dep
from depositions.inputs import BlockInput, StepInput, SubCycleInput
from depositions.models import PulseEvent, RunCheck
from lims import services as lims_services
from lims.ingestion import services as ingest
from tests.aldlogs.test_plasma import CHANNEL_MAP, CYCLES, POWER_W, write_log


@pytest.fixture
def peald(project):
    token = lims_services.instrument_token_create(
        instrument_name="PEALD-1", project=project, kind="ald_tool"
    )
    tool = dep.tool_create(instrument=token.instrument, reactor_type="cross_flow")
    dep.tool_source_create(
        tool=tool, label="P1", reactant="TMA", delivery="vapour_draw", log_channel="DO1"
    )
    mapping = lims_services.column_mapping_save(
        project=project,
        name="peald-csv",
        mapping=CHANNEL_MAP,
        kind="ald_log",
        parser_name="generic_ald_log",
    )
    dep.tool_update(tool=tool, log_mapping=mapping)
    recipe = dep.recipe_create(
        project=project,
        name="PE-Al2O3",
        subcycles=[
            SubCycleInput(
                "Al2O3 PE",
                [
                    StepInput("pulse", Decimal("0.1"), "TMA"),
                    StepInput("purge", Decimal("5")),
                    StepInput("plasma", Decimal("10"), "O2 plasma", plasma_power_w=Decimal("300")),
                    StepInput("purge", Decimal("5")),
                ],
            )
        ],
        blocks=[BlockInput("Al2O3 PE", CYCLES)],
    )
    run = dep.run_create(project=project, code="PE-1", tool=tool, recipe=recipe)
    return token, run


def _drain(capture) -> None:
    from lims.models import IngestionJob

    while job := IngestionJob.objects.filter(status="pending").first():
        with capture(execute=False):
            ingest.job_run(job_id=job.pk)


@pytest.mark.django_db
def test_the_tools_token_pushes_a_csv_and_its_channel_map_reads_it(
    tmp_path, peald, user, client, django_capture_on_commit_callbacks
):
    token, run = peald
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    path = write_log(tmp_path / "peald_run.csv")
    with path.open("rb") as fh, django_capture_on_commit_callbacks(execute=False):
        reply = api.post("/api/v1/ingest/", {"file": fh, "kind": "ald_log", "run": run.code})
    assert reply.status_code == 202, reply.content
    _drain(django_capture_on_commit_callbacks)
    from lims.models import IngestionJob

    job = IngestionJob.objects.get()
    assert job.status == "succeeded", job.error
    assert job.parser_name == "generic_ald_log"
    # the job keeps its own copy of the map it was read with
    assert job.params["metadata"]["column_mapping_name"] == "peald-csv"
    assert job.params["metadata"]["column_mapping"] == CHANNEL_MAP
    statuses = dict(RunCheck.objects.filter(run=run).values_list("name", "status"))
    assert statuses["plasma_power:O2 plasma"] == "pass"
    assert statuses["pulse_count:O2 plasma"] == statuses["pulse_count:TMA"] == "pass"
    plasma = PulseEvent.objects.filter(run=run, source="O2 plasma")
    assert plasma.count() == CYCLES
    assert all(abs(p - POWER_W) < 5 for p in plasma.values_list("power_w", flat=True))
    client.force_login(user)
    page = client.get(f"/depositions/runs/{run.code}/").content.decode()
    assert 'id="power"' in page and '"power_name": "RF forward power"' in page
    assert "plasma_power:O2 plasma" in page


@pytest.mark.django_db
def test_a_person_naming_the_run_gets_the_runs_tool_map(
    tmp_path, project, peald, django_capture_on_commit_callbacks
):
    _, run = peald
    path = write_log(tmp_path / "sagging.csv", sagging_cycles=5)
    with path.open("rb") as fh, django_capture_on_commit_callbacks(execute=False):
        job, _ = ingest.ingest_submit(
            stream=fh, filename=path.name, project=project, kind="ald_log", params={"run": run.code}
        )
    assert job.parser_name == "generic_ald_log"
    _drain(django_capture_on_commit_callbacks)
    job.refresh_from_db()
    assert job.result["verdict"] == "fail"
    assert any(r.startswith("plasma_power:O2 plasma") for r in job.result["reasons"])


@pytest.mark.django_db
def test_without_a_map_a_plain_csv_is_unrecognised_not_guessed(
    tmp_path, project, django_capture_on_commit_callbacks
):
    path = write_log(tmp_path / "nomap.csv")
    with path.open("rb") as fh, django_capture_on_commit_callbacks(execute=False):
        job, _ = ingest.ingest_submit(
            stream=fh, filename=path.name, project=project, kind="ald_log"
        )
    with django_capture_on_commit_callbacks(execute=False):
        job = ingest.job_run(job_id=job.pk)
    assert job.status == "failed"
    assert "nomap.csv" in job.error and "no parser recognises" in job.error


@pytest.mark.django_db
def test_a_bad_channel_map_is_refused_when_saved(project):
    bad = {"time": {"column": "t", "unit": "fortnights"}, "channels": []}
    with pytest.raises(ValidationError, match="unknown time unit"):
        lims_services.column_mapping_save(
            project=project, name="bad", mapping=bad, kind="ald_log", parser_name="generic_ald_log"
        )
    role = {"time": "t", "channels": [{"column": "X", "role": "flux capacitor"}]}
    with pytest.raises(ValidationError, match="unknown role"):
        lims_services.column_mapping_save(
            project=project, name="bad", mapping=role, kind="ald_log", parser_name="generic_ald_log"
        )
