"""Security review findings (issue 12): each reproduced, each kept fixed.

5 import size bombs, 9 CSV formula injection, 10 job deletion in admin, 11 dotted codes in
the API, 12 NUL characters reaching PostgreSQL.
"""

from __future__ import annotations

import csv
import io
import zipfile
from decimal import Decimal

import pytest
from django.test import override_settings

from lims.models import IngestionJob, RawFile
from samples import services as sample_services
from samples.models import Sample


def _sample(project, code: str, **fields):
    return sample_services.sample_create(
        project=project, code=code, kind="powder", quantity=Decimal("1"), **fields
    )


# -- 9: CSV exports neutralise formulas -----------------------------------------------------


@pytest.mark.django_db
def test_csv_export_neutralises_formula_cells_but_keeps_numbers(client, user, project):
    for code, location in [
        ("F-1", '=HYPERLINK("http://x","y")'),
        ("F-2", "+1+1"),
        ("F-3", "-2+3"),
        ("F-4", "@SUM(A1)"),
        ("F-5", "shelf 3"),
    ]:
        _sample(project, code, location=location)
    client.force_login(user)
    response = client.get("/samples/?export=csv&o=code")
    body = b"".join(response.streaming_content).decode()
    rows = {r["code"]: r for r in csv.DictReader(io.StringIO(body))}
    assert rows["F-1"]["location"] == '\'=HYPERLINK("http://x","y")'
    assert rows["F-2"]["location"] == "'+1+1"
    assert rows["F-3"]["location"] == "'-2+3"
    assert rows["F-4"]["location"] == "'@SUM(A1)"
    assert rows["F-5"]["location"] == "shelf 3"
    assert rows["F-5"]["quantity"] == "1.000000"


def test_csv_cell_leaves_numbers_alone():
    from lims.export import csv_cell

    assert csv_cell(-1.5) == -1.5
    assert csv_cell(Decimal("-3")) == Decimal("-3")
    assert csv_cell(None) == ""
    assert csv_cell("\t=1") == "'\t=1"
    assert csv_cell("a=b") == "a=b"


# -- 10: ingestion jobs are not deleted in admin --------------------------------------------


@pytest.mark.django_db
def test_admin_cannot_delete_ingestion_jobs(client, project, django_capture_on_commit_callbacks):
    from django.contrib.auth import get_user_model

    from lims.ingestion import services

    with django_capture_on_commit_callbacks(execute=False):
        job, _ = services.ingest_submit(
            stream=io.BytesIO(b"not a known format\n"), filename="x.txt", project=project
        )
    boss = get_user_model().objects.create_superuser("boss", password="pw-boss-123")
    client.force_login(boss)
    page = client.get(f"/admin/lims/ingestionjob/{job.pk}/delete/")
    assert page.status_code == 403
    refused = client.post(f"/admin/lims/ingestionjob/{job.pk}/delete/", {"post": "yes"})
    assert refused.status_code == 403
    listing = client.get("/admin/lims/ingestionjob/").content.decode()
    assert "delete_selected" not in listing
    bulk = client.post(
        "/admin/lims/ingestionjob/",
        {"action": "delete_selected", "_selected_action": [job.pk], "post": "yes"},
    )
    assert bulk.status_code in (200, 302, 403)
    assert IngestionJob.objects.filter(pk=job.pk).exists()


# -- 11: dotted codes reachable through the API ---------------------------------------------


@pytest.mark.django_db
def test_sample_and_cell_codes_with_a_dot_have_a_detail_route(user_client, project, cell):
    _sample(project, "R-12.out")
    response = user_client.get("/api/v1/samples/R-12.out/")
    assert response.status_code == 200, response.content
    assert response.json()["code"] == "R-12.out"
    type(cell).objects.filter(pk=cell.pk).update(code="C-001.b")
    assert user_client.get("/api/v1/cells/C-001.b/").status_code == 200


# -- 12: NUL characters are a 400, never a 500 ----------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/cells/A%00/",
        "/api/v1/samples/S%00/",
        "/api/v1/jobs/1%00/",
        "/api/v1/samples/?code=a%00b",
        "/samples/?q=%00",
        "/catalogue/ald-tools/?q=x%00",
    ],
)
def test_nul_in_path_or_query_is_a_400(client, user, url):
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 400, (url, response.status_code)
    assert b"NUL" in response.content


@pytest.mark.django_db
def test_nul_in_json_metadata_is_a_400(user_client, project):
    from lims.models import Instrument

    instrument = Instrument.objects.create(name="ALD-1", kind="ald_tool", project=project)
    from depositions import services

    tool = services.tool_create(instrument=instrument, reactor_type="fluidized_bed", chambers=1)
    response = user_client.patch(
        f"/api/v1/ald-tools/{tool.pk}/",
        {"log_mapping": {"time\u0000": "t"}},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert "body.log_mapping.time" in response.json()["detail"]


def _ingest(client, content: bytes, name: str, **fields):
    upload = io.BytesIO(content)
    upload.name = name
    return client.post("/api/v1/ingest/", {"file": upload, **fields}, format="multipart")


@pytest.mark.django_db
def test_nul_in_an_ingest_file_name_or_metadata_is_refused_before_storing(
    instrument_client, django_capture_on_commit_callbacks
):
    from lims.ingestion import storage

    content = b"time,voltage\n0,3.1415926535\n"  # bytes no other test stores
    with django_capture_on_commit_callbacks(execute=False):
        named = _ingest(instrument_client, content, "data\x00.csv")
        meta = _ingest(instrument_client, content, "data.csv", metadata='{"note": "a\\u0000"}')
    assert named.status_code == 400, named.content
    assert "NUL" in str(named.json())
    assert meta.status_code == 400, meta.content
    assert "NUL" in str(meta.json())
    assert RawFile.objects.count() == 0 and IngestionJob.objects.count() == 0
    import hashlib

    stored = storage.absolute(storage.raw_relpath(hashlib.sha256(content).hexdigest()))
    assert not stored.exists()


# -- 5 and 12: the sample import is bounded -------------------------------------------------


def _import(client, content: bytes, name: str, project):
    upload = io.BytesIO(content)
    upload.name = name
    return client.post(
        "/api/v1/samples/import/",
        {"file": upload, "project": project.slug, "dry_run": "true"},
        format="multipart",
    )


@pytest.mark.django_db
def test_a_two_million_row_csv_import_is_a_clear_400(user_client, project):
    content = b"code,kind,quantity\n" + b"".join(b"S%d,powder,1\n" % i for i in range(2_000_000))
    response = _import(user_client, content, "big.csv", project)
    assert response.status_code == 400, response.content[:300]
    assert "big.csv" in str(response.json())
    assert len(response.content) < 2000


@pytest.mark.django_db
@override_settings(LIMS_IMPORT_MAX_ROWS=5)
def test_import_rows_are_bounded(user_client, project):
    content = b"code,kind,quantity\n" + b"".join(b"S%d,powder,1\n" % i for i in range(6))
    response = _import(user_client, content, "six.csv", project)
    assert response.status_code == 400
    assert "more than 5 data rows" in str(response.json())
    five = b"code,kind,quantity\n" + b"".join(b"S%d,powder,1\n" % i for i in range(5))
    assert _import(user_client, five, "five.csv", project).status_code == 200


@pytest.mark.django_db
def test_an_xlsx_that_inflates_too_far_is_refused_before_parsing(user_client, project):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"<c>1</c>" * (9 * 1024**2))
    assert len(buf.getvalue()) < 2 * 1024**2
    with override_settings(LIMS_IMPORT_MAX_INFLATED_BYTES=8 * 1024**2):
        response = _import(user_client, buf.getvalue(), "bomb.xlsx", project)
    assert response.status_code == 400
    assert "inflates to more than" in str(response.json())


@pytest.mark.django_db
def test_import_errors_are_counted_and_bounded(user_client, project):
    huge = "x" * 10_000
    content = "code,kind,quantity\n" + "".join(f"S{i},powder,{huge}\n" for i in range(300))
    response = _import(user_client, content.encode(), "bad.csv", project)
    assert response.status_code == 400
    body = response.json()
    assert body["error_count"] == 300
    assert len(body["errors"]) == 100
    assert len(response.content) < 100_000


@pytest.mark.django_db
def test_a_nul_in_an_import_cell_names_row_and_column(user_client, project):
    content = b"code,kind,quantity\nS1,powder,1\nS\x002,powder,1\n"
    response = _import(user_client, content, "nul.csv", project)
    assert response.status_code == 400
    assert "nul.csv: row 3, column code: contains a NUL" in str(response.json())
    assert not Sample.objects.exists()
