"""Samples over REST: create, split, mix, lineage, exposures, import with a dry run."""

from __future__ import annotations

import io
from datetime import UTC

import pytest

from samples.models import Sample


@pytest.mark.django_db
def test_lot_with_sample_split_and_lineage_over_the_api(user_client, nmc):
    lot = user_client.post(
        "/api/v1/material-lots/",
        {
            "material": nmc.pk,
            "project": "assb",
            "lot_number": "X-1",
            "quantity_received": "25",
            "unit": "g",
            "sample_code": "NMC-X1",
        },
        format="json",
    )
    assert lot.status_code == 201, lot.content
    split = user_client.post(
        "/api/v1/samples/NMC-X1/split/",
        {
            "aliquots": [
                {"code": "NMC-X1-a", "kind": "powder", "quantity": "5"},
                {"code": "NMC-X1-b", "kind": "powder", "quantity": "5"},
            ]
        },
        format="json",
    )
    assert split.status_code == 201, split.content
    assert Sample.objects.get(code="NMC-X1").remaining == 15
    graph = user_client.get("/api/v1/samples/NMC-X1-a/lineage/").json()
    assert graph["sample"] == "NMC-X1-a"
    (op,) = graph["operations"]
    assert op["kind"] == "split" and op["inputs"][0]["sample"] == "NMC-X1"
    too_much = user_client.post(
        "/api/v1/samples/NMC-X1/split/",
        {"aliquots": [{"code": "NMC-X1-c", "kind": "powder", "quantity": "50"}]},
        format="json",
    )
    assert too_much.status_code == 400
    assert "only 15 g remain" in str(too_much.json())


@pytest.mark.django_db
def test_mix_over_the_api(user_client, powder, lpsc, project):
    from samples import services

    services.sample_create(
        project=project, code="SE-9", kind="powder", quantity="10", material=lpsc
    )
    response = user_client.post(
        "/api/v1/samples/mix/",
        {
            "project": "assb",
            "inputs": [
                {"sample": "NMC-LOT1", "quantity": "0.65"},
                {"sample": "SE-9", "quantity": "0.35"},
            ],
            "output": {"code": "MIX-9", "kind": "composite", "quantity": "1.0"},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["state"] == "mixed"


@pytest.mark.django_db
def test_samples_of_other_projects_are_invisible(user_client, nmc):
    from lims.models import Project
    from samples import services

    other = Project.objects.create(name="Other", slug="other")
    services.sample_create(project=other, code="SECRET-1", kind="powder", quantity="1")
    assert user_client.get("/api/v1/samples/SECRET-1/").status_code == 404
    assert "SECRET-1" not in str(user_client.get("/api/v1/samples/").json())


CSV_OK = "code,kind,quantity,material,notes\nIMP-1,powder,2.5,NMC811,first\nIMP-2,wafer,1,,\n"
CSV_BAD = (
    "code,kind,quantity,material\n"
    "IMP-3,powder,abc,NMC811\n"
    "IMP-4,spaceship,1,\n"
    "IMP-4,powder,1,Unobtainium\n"
    "bad code,powder,1,\n"
)


def _upload(client, text: str, dry_run: bool):
    f = io.BytesIO(text.encode())
    f.name = "samples.csv"
    return client.post(
        "/api/v1/samples/import/",
        {"file": f, "project": "assb", "dry_run": "true" if dry_run else "false"},
        format="multipart",
    )


@pytest.mark.django_db
def test_import_dry_run_reports_every_bad_row_and_writes_nothing(user_client, nmc):
    response = _upload(user_client, CSV_BAD, dry_run=False)
    assert response.status_code == 400
    body = response.json()
    assert body["ok"] is False and body["created"] == 0
    by_row = {e["row"]: " ".join(e["errors"]) for e in body["errors"]}
    assert set(by_row) == {2, 3, 4, 5}
    assert "not a number" in by_row[2]
    assert "spaceship" in by_row[3]
    assert "twice" in by_row[4] and "Unobtainium" in by_row[4]
    assert "barcode" in by_row[5]
    assert not Sample.objects.filter(code__startswith="IMP").exists()


@pytest.mark.django_db
def test_import_after_a_clean_dry_run(user_client, nmc):
    dry = _upload(user_client, CSV_OK, dry_run=True)
    assert dry.status_code == 200 and dry.json()["created"] == 0
    assert not Sample.objects.filter(code__startswith="IMP").exists()
    real = _upload(user_client, CSV_OK, dry_run=False)
    assert real.status_code == 200 and real.json()["created"] == 2
    assert Sample.objects.get(code="IMP-1").material == nmc
    assert Sample.objects.get(code="IMP-1").remaining == Sample.objects.get(code="IMP-1").quantity


@pytest.mark.django_db
def test_sample_list_endpoint_runs_constant_queries(user_client, project):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from samples import services

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert user_client.get("/api/v1/samples/").status_code == 200
        return len(ctx.captured_queries)

    for i in range(3):
        services.sample_create(project=project, code=f"QS-{i}", kind="powder", quantity="1")
    few = count()
    for i in range(3, 30):
        services.sample_create(project=project, code=f"QS-{i}", kind="powder", quantity="1")
    assert count() == few


@pytest.mark.django_db
def test_history_lists_creation_operations_and_exposures(user_client, powder):
    from datetime import datetime, timedelta
    from decimal import Decimal

    from samples import services

    services.sample_split(
        sample=powder, aliquots=[services.OutputSpec("H-1", "powder", Decimal("5"))]
    )
    t0 = datetime(2026, 11, 2, 8, tzinfo=UTC)
    services.exposure_add(
        sample=powder, atmosphere="air", started_at=t0, ended_at=t0 + timedelta(minutes=5)
    )
    history = user_client.get("/api/v1/samples/NMC-LOT1/history/").json()
    whats = [h["what"] for h in history]
    assert any(w.startswith("Created") for w in whats)
    assert any(w.startswith("used in split") for w in whats)
    assert any(w.startswith("in Ambient air") for w in whats)
    assert any("remaining: 50.000000 -> 45.000000" in h["detail"] for h in history)
