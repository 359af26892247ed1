"""Sample pages: list + CSV, detail with lineage picture data, split and import forms."""

from __future__ import annotations

import base64
import io
import json
import re
import zlib

import pytest

from samples.models import Sample


@pytest.mark.django_db
def test_list_filters_and_exports_csv(client, user, powder):
    client.force_login(user)
    page = client.get("/samples/?q=NMC").content.decode()
    assert "NMC-LOT1" in page
    response = client.get("/samples/?q=NMC&export=csv")
    body = b"".join(response.streaming_content).decode()
    lines = body.strip().splitlines()
    assert lines[0].startswith("code,kind,material,lot,quantity,remaining")
    assert lines[1].startswith("NMC-LOT1,powder,NMC811,L-2026-01,50")


@pytest.mark.django_db
def test_split_through_the_form_and_see_the_lineage(client, user, powder):
    client.force_login(user)
    response = client.post(
        "/samples/NMC-LOT1/split/",
        {"aliquots": "NMC-A 10\nNMC-B 10,5", "kind": "powder", "taken": ""},
    )
    assert response.status_code == 302
    assert Sample.objects.get(code="NMC-B").quantity == 10.5
    page = client.get("/samples/NMC-A/").content.decode()
    start = page.index('<script id="lineage-data" type="application/json">') + len(
        '<script id="lineage-data" type="application/json">'
    )
    figure = json.loads(page[start : page.index("</script>", start)])
    assert {n["code"] for n in figure["nodes"]} == {"NMC-LOT1", "NMC-A", "NMC-B"}
    assert sorted(e["label"] for e in figure["edges"]) == ["+10", "+10.5", "-20.5"]

    refused = client.post(
        "/samples/NMC-LOT1/split/", {"aliquots": "NMC-C 99", "kind": "powder"}, follow=True
    )
    assert "only 29.5 g remain" in refused.content.decode()


@pytest.mark.django_db
def test_import_page_dry_run_then_import(client, user, nmc, project):
    client.force_login(user)
    csv = b"code,kind,quantity,material\nW-1,wafer,1,\nW-2,wafer,1,\n"

    def post(dry: bool):
        f = io.BytesIO(csv)
        f.name = "wafers.csv"
        data = {"file": f, "project": project.pk}
        if dry:
            data["dry_run"] = "on"
        return client.post("/samples/import/", data).content.decode()

    assert "All 2 rows are valid" in post(True)
    assert not Sample.objects.filter(code__startswith="W-").exists()
    assert "Imported 2 samples" in post(False)
    assert Sample.objects.filter(code__startswith="W-").count() == 2


@pytest.mark.django_db
def test_label_sheet_pdf_has_every_code_and_a_page_per_forty(client, user, project):
    from samples import services

    for i in range(41):
        services.sample_create(
            project=project, code=f"LBL-{i:02d}", kind="wafer", quantity="1", unit="count"
        )
    client.force_login(user)
    response = client.get("/samples/?q=LBL&export=labels")
    assert response["Content-Type"] == "application/pdf"
    pdf = response.content
    assert pdf.startswith(b"%PDF")
    assert pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") == 2
    # reportlab writes page content as ASCII85 + Flate streams: decode them to read the text
    text = b"".join(
        zlib.decompress(base64.a85decode(m.group(1).strip(), adobe=True))
        for m in re.finditer(rb"stream\n(.*?~>)\s*endstream", pdf, re.S)
    )
    for i in (0, 17, 40):
        assert f"(LBL-{i:02d})".encode() in text


@pytest.mark.django_db
def test_mix_lot_material_and_exposure_pages(client, user, admin_user, project, powder, lpsc):
    from samples import services

    services.sample_create(project=project, code="SE-1", kind="powder", quantity="5", material=lpsc)
    client.force_login(user)
    response = client.post(
        "/samples/mix/",
        {
            "project": project.pk,
            "inputs": "NMC-LOT1 0,7\nSE-1 0.3",
            "code": "MIX-W1",
            "kind": "composite",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    mix = Sample.objects.get(code="MIX-W1")
    assert mix.quantity == 1 and mix.state == "mixed"
    refused = client.post(
        "/samples/mix/",
        {
            "project": project.pk,
            "inputs": "NMC-LOT1 999\nSE-1 1",
            "code": "MIX-W2",
            "kind": "composite",
        },
    )
    assert "only 49.3 g remain" in refused.content.decode()

    lots = client.get("/samples/lots/").content.decode()
    assert "L-2026-01" in lots and "cells from this lot" in lots
    received = client.post(
        "/samples/lots/",
        {
            "material": powder.material.pk,
            "project": project.pk,
            "lot_number": "L-NEW",
            "quantity_received": "5",
            "unit": "g",
            "sample_code": "NMC-NEW",
        },
    )
    assert received.status_code == 302
    assert Sample.objects.get(code="NMC-NEW").lot.lot_number == "L-NEW"
    material = {"name": "LiNbO3 target", "material_class": "other"}
    assert client.post("/samples/materials/", material).status_code == 403  # staff write it
    client.force_login(admin_user)
    assert client.post("/samples/materials/", material).status_code == 302
    client.force_login(user)
    assert "LiNbO3 target" in client.get("/samples/materials/?q=LiNb").content.decode()

    client.post(
        "/samples/NMC-LOT1/exposures/",
        {"atmosphere": "air", "started_at": "2026-11-20T10:00", "ended_at": "2026-11-20T10:04"},
    )
    assert "air: 0:04:00" in client.get("/samples/NMC-LOT1/").content.decode()
