"""Data out of a cycling test: series as Parquet, CSV and BDF CSV, cycle table, raw file.

Round trips against what is stored: the Parquet series, the cycle table rows and the raw bytes.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cells import exports
from cells.models import CyclingTest
from cells.parsers.generic import BdfParser
from cells.parsers.summary import summarize_cycles
from cells.parsers.types import CANONICAL_SCHEMA
from lims.ingestion import services as ingest
from lims.ingestion import storage
from lims.ingestion.parsing import ParseContext

MPR = "cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"


@pytest.fixture
def test_run(db, fixture_path, project, cell, django_capture_on_commit_callbacks) -> CyclingTest:
    with (fixture_path / MPR).open("rb") as fh, django_capture_on_commit_callbacks(execute=False):
        job, _ = ingest.ingest_submit(
            stream=fh, filename="C09.mpr", project=project, params={"cell": cell.code}
        )
    with django_capture_on_commit_callbacks(execute=False):
        ingest.job_run(job_id=job.pk)
    return CyclingTest.objects.select_related("raw_file", "cell").get(job=job)


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def _stored(test: CyclingTest) -> pl.DataFrame:
    return pl.read_parquet(storage.absolute(test.series_path))


def _provenance(response) -> dict:
    return json.loads(response["X-LIMS-Provenance"])


def test_parquet_download_equals_the_stored_series_and_carries_its_provenance(
    user_client, test_run
):
    response = user_client.get(f"/api/v1/cycling-tests/{test_run.pk}/series/?as=parquet")
    assert response.status_code == 200
    body = _body(response)
    assert_frame_equal(pl.read_parquet(io.BytesIO(body)), _stored(test_run), check_exact=True)
    meta = json.loads(pl.read_parquet_metadata(io.BytesIO(body))["lims.provenance"])
    assert meta["raw_sha256"] == test_run.raw_file.sha256
    assert meta["parser"] == "biologic_mpr" and meta["parser_version"] == test_run.parser_version
    assert meta["conventions"] == test_run.conventions
    assert response["X-LIMS-Raw-SHA256"] == test_run.raw_file.sha256
    assert _provenance(response)["rows"] == test_run.row_count == 46102
    name = response["Content-Disposition"]
    assert f"C-001_test{test_run.pk}_{test_run.raw_file.sha256[:12]}.biologic_mpr-" in name
    assert name.endswith('.parquet"')


def test_csv_download_reads_back_equal_to_the_stored_series(user_client, test_run):
    response = user_client.get(f"/api/v1/cycling-tests/{test_run.pk}/series/?as=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    body = _body(response)
    assert not body.startswith(b"#")  # a plain CSV: provenance is in the headers
    back = pl.read_csv(io.BytesIO(body), schema=CANONICAL_SCHEMA)
    assert_frame_equal(back, _stored(test_run), check_exact=True)
    assert response["X-LIMS-Parser"].startswith("biologic_mpr ")


def test_bdf_download_round_trips_through_the_projects_own_bdf_reader(user_client, test_run):
    response = user_client.get(f"/api/v1/cycling-tests/{test_run.pk}/series/?as=bdf")
    assert response.status_code == 200
    body = _body(response)
    assert response["Content-Disposition"].endswith('.bdf.csv"')
    header = body.split(b"\n", 1)[0].decode()
    assert header.startswith("Test Time / s,Voltage / V,Current / A,Cycle Count / 1,Step ID,")
    bdf = pl.read_csv(io.BytesIO(body), infer_schema_length=None)
    stored = _stored(test_run)
    # the quantities BDF defines as we store them come back unchanged
    for column in ("time_s", "voltage_v", "current_a", "cycle", "step", "temperature_c"):
        label = exports.BDF_COLUMNS[column][0]
        assert_frame_equal(
            bdf.select(pl.col(label).cast(stored[column].dtype).alias(column)),
            stored.select(column),
            check_exact=True,
        )
    # Step Count: 1 first, +1 exactly where (cycle, step) changes
    changed = (stored["step"] != stored["step"].shift(1)) | (
        stored["cycle"] != stored["cycle"].shift(1)
    )
    expected = changed.fill_null(True).cast(pl.Int64).cum_sum()
    assert bdf["Step Count / 1"].to_list() == expected.to_list()
    assert bdf["Step Count / 1"][0] == 1
    # capacities are cumulative (never reset): per cycle they add up to the cycle table
    charge = bdf["Charging Capacity / Ah"]
    assert charge[0] == 0.0 and (charge.diff().drop_nulls() >= 0).all()
    per_cycle = (
        bdf.group_by("Cycle Count / 1")
        .agg(pl.col("Charging Capacity / Ah").last(), pl.col("Discharging Capacity / Ah").last())
        .sort("Cycle Count / 1")
    )
    ends_c = per_cycle["Charging Capacity / Ah"].to_list()
    ends_d = per_cycle["Discharging Capacity / Ah"].to_list()
    rows = list(test_run.cycles.order_by("cycle_index"))
    assert len(rows) == len(ends_c) == 7
    for i, row in enumerate(rows):
        assert row.charge_mah == pytest.approx((ends_c[i] - (ends_c[i - 1] if i else 0)) * 1e3)
        assert row.discharge_mah == pytest.approx((ends_d[i] - (ends_d[i - 1] if i else 0)) * 1e3)
    # and the project's BDF reader makes the same cycle table of it
    path = storage.root() / "tmp" / "roundtrip.bdf.csv"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(body)
    parsed = BdfParser().parse(path, ParseContext(filename=path.name))
    summary = summarize_cycles(parsed.series)
    assert summary["charge_mah"].to_list() == pytest.approx([r.charge_mah for r in rows])
    assert summary["discharge_mah"].to_list() == pytest.approx([r.discharge_mah for r in rows])
    assert summary["rows"].sum() == test_run.row_count
    bdf_doc = _provenance(response)["bdf_columns"]
    assert {d["label"] for d in bdf_doc} == set(bdf.columns)


def test_bdf_chunks_do_not_depend_on_where_the_series_is_cut(test_run):
    path = storage.absolute(test_run.series_path)
    whole = pl.concat(exports.bdf_chunks(iter([pl.read_parquet(path)])))
    for rows in (997, 10_000):
        cut = pl.concat(exports.bdf_chunks(exports.series_chunks(path, rows=rows)))
        assert_frame_equal(cut, whole, rel_tol=1e-12, abs_tol=1e-15)


def test_cycle_table_csv_equals_the_stored_rows(user_client, test_run):
    response = user_client.get(f"/api/v1/cycling-tests/{test_run.pk}/cycles/?as=csv")
    assert response.status_code == 200
    assert response["X-LIMS-Raw-SHA256"] == test_run.raw_file.sha256
    table = list(csv.DictReader(io.StringIO(_body(response).decode())))
    rows = list(test_run.cycles.order_by("cycle_index"))
    assert [int(r["cycle_index"]) for r in table] == [r.cycle_index for r in rows]
    for got, row in zip(table, rows, strict=True):
        assert float(got["discharge_mah"]) == row.discharge_mah
        assert float(got["discharge_mah_g"]) == row.discharge_mah_g
    assert (
        user_client.get(f"/api/v1/cycling-tests/{test_run.pk}/cycles/").json()[0]["cycle_index"]
        == 1
    )


def test_raw_download_is_byte_identical_with_its_sha256(user_client, test_run, fixture_path):
    test = user_client.get(f"/api/v1/cycling-tests/{test_run.pk}/").json()
    assert test["raw_file"] == test_run.raw_file_id
    response = user_client.get(test["raw_download"])
    assert response.status_code == 200
    body = _body(response)
    digest = hashlib.sha256(body).hexdigest()
    assert body == (fixture_path / MPR).read_bytes()
    assert digest == test_run.raw_file.sha256 == response["X-LIMS-Raw-SHA256"]
    assert response["ETag"] == f'"{digest}"'
    assert response["Repr-Digest"] == (
        f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode()}:"
    )
    assert 'filename="C09.mpr"' in response["Content-Disposition"]
    sidecar = user_client.get(f"/api/v1/raw-files/{test_run.raw_file_id}/").json()
    assert sidecar["sha256"] == digest and sidecar["size"] == len(body)


def test_downloads_are_scoped_to_the_users_projects(db, test_run, instrument_client):
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    outsider = get_user_model().objects.create_user("mallory", password="pw-mallory-123")
    client = APIClient()
    client.force_authenticate(outsider)
    urls = [
        f"/api/v1/cycling-tests/{test_run.pk}/series/?as=bdf",
        f"/api/v1/cycling-tests/{test_run.pk}/cycles/?as=csv",
        f"/api/v1/raw-files/{test_run.raw_file_id}/download/",
        "/api/v1/cells/C-001/eln/",
    ]
    for url in urls:
        assert client.get(url).status_code == 404, url
        assert instrument_client.get(url).status_code == 403, url  # tokens only ingest


def test_unknown_series_format_is_a_clear_400(user_client, test_run):
    response = user_client.get(f"/api/v1/cycling-tests/{test_run.pk}/series/?as=xlsx")
    assert response.status_code == 400
    assert "parquet, csv, bdf" in response.content.decode()


def test_cell_page_links_every_download(client, user, test_run):
    client.force_login(user)
    html = client.get("/cells/C-001/").content.decode()
    for link in (
        f"/api/v1/cycling-tests/{test_run.pk}/series/?as=parquet",
        f"/api/v1/cycling-tests/{test_run.pk}/series/?as=csv",
        f"/api/v1/cycling-tests/{test_run.pk}/series/?as=bdf",
        f"/api/v1/cycling-tests/{test_run.pk}/cycles/?as=csv",
        f"/api/v1/raw-files/{test_run.raw_file_id}/download/",
        "/api/v1/cells/C-001/eln/",
    ):
        assert link in html, link
