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
