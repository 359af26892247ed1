"""Compressed wrappers and bounded input, through ``ingest_submit`` + ``job_run`` on PostgreSQL.

A ``.gz`` or single-member ``.zip`` is detected and parsed by its inner file; the store keeps
the uploaded bytes. Bombs, multi-member zips and over-long lines fail with a clear error.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from lims.ingestion import services as ingest
from lims.ingestion import storage, text, wrappers
from lims.ingestion.parsing import ParseContext, ParseError

NDA_ZIP = "cycler/neware/fastnda_nda8.nda.zip"
ARBIN_CSV = "cycler/arbin/bdtk_arbin_example.csv"
NDAX = "cycler/neware/navani_test.ndax"


def _submit(project, payload: bytes, name: str, capture, **kw):
    with capture(execute=False):
        job, _ = ingest.ingest_submit(
            stream=io.BytesIO(payload), filename=name, project=project, **kw
        )
    return job


def _run(job, capture):
    with capture(execute=False):
        return ingest.job_run(job_id=job.pk)


def _cycles(job) -> list[tuple[int, float | None, float | None]]:
    from cells.models import CyclingTest

    test = CyclingTest.objects.get(job=job)
    return list(
        test.cycles.order_by("cycle_index").values_list(
            "cycle_in_file", "charge_mah", "discharge_mah"
        )
    )


def _tmp_files() -> set[Path]:
    return set((storage.root() / "tmp").glob("unwrapped-*"))


@pytest.mark.django_db
def test_a_zipped_nda_reads_like_the_plain_nda(
    project, fixture_path, django_capture_on_commit_callbacks
) -> None:
    capture = django_capture_on_commit_callbacks
    payload = (fixture_path / NDA_ZIP).read_bytes()
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        plain = archive.read("nda8.nda")
    before = _tmp_files()

    zipped_job = _submit(project, payload, "fastnda_nda8.nda.zip", capture)
    assert zipped_job.parser_name == "neware_nda"  # detected by the inner head and name
    assert zipped_job.params["unwrapped"] == {
        "wrapper": "zip",
        "inner_name": "nda8.nda",
        "member": "nda8.nda",
        "declared_size": len(plain),
    }
    zipped = _run(zipped_job, capture)
    plain_job = _run(_submit(project, plain, "nda8.nda", capture), capture)

    assert zipped.status == plain_job.status, zipped.error
    assert zipped.result["unwrapped"]["size"] == len(plain)  # counted, not declared
    assert zipped.result["rows"] == plain_job.result["rows"] == 46805
    assert _cycles(zipped) == _cycles(plain_job)
    _, charge, discharge = _cycles(zipped)[0]
    assert charge == pytest.approx(0.0, abs=1e-9)
    assert discharge == pytest.approx(0.0260217, rel=5e-3)
    # the store keeps what was uploaded; the inflated copy is gone
    raw = zipped.raw_file
    assert raw.sha256 == hashlib.sha256(payload).hexdigest()
    assert storage.absolute(raw.storage_path).read_bytes() == payload
    assert _tmp_files() == before


@pytest.mark.django_db
def test_a_gzipped_text_export_reads_like_the_plain_one(
    project, fixture_path, django_capture_on_commit_callbacks
) -> None:
    capture = django_capture_on_commit_callbacks
    original = (fixture_path / ARBIN_CSV).read_bytes()
    packed = gzip.compress(original)
    job = _submit(project, packed, "arbin_example.csv.gz", capture)
    assert job.params["unwrapped"]["wrapper"] == "gzip"
    assert job.params["unwrapped"]["inner_name"] == "arbin_example.csv"
    assert job.raw_file.encoding == "utf-8"  # the text inside, not the gzip bytes
    gz = _run(job, capture)
    plain = _run(_submit(project, original, "arbin_example.csv", capture), capture)
    assert gz.parser_name == plain.parser_name
    assert gz.status == plain.status, gz.error
    assert gz.result["unwrapped"]["size"] == len(original)
    assert _cycles(gz) == _cycles(plain)


@pytest.mark.django_db
def test_a_gzip_bomb_stops_at_the_limit(
    project, settings, fixture_path, django_capture_on_commit_callbacks
) -> None:
    """10 MB of one repeated row in a few kB: the inflate stops at the limit with an error
    naming the file, the inner file and the limit."""
    settings.LIMS_UNPACK_MAX_BYTES = 1024 * 1024
    capture = django_capture_on_commit_callbacks
    header, row = (fixture_path / ARBIN_CSV).read_bytes().split(b"\n")[:2]
    bomb = gzip.compress(header + b"\n" + (row + b"\n") * (10 * 1024 * 1024 // len(row)))
    assert len(bomb) < 100_000
    before = _tmp_files()
    job = _run(_submit(project, bomb, "zeros.csv.gz", capture), capture)
    assert job.parser_name == "arbin_csv"  # recognised by the inner head, then inflated
    assert job.status == "failed"
    assert job.error.startswith("zeros.csv.gz at inner file 'zeros.csv':")
    assert "inflates past the limit of 1048576 bytes" in job.error
    assert _tmp_files() == before


@pytest.mark.django_db
def test_a_zip_member_declaring_more_than_the_limit_is_refused_at_upload(
    project, settings, django_capture_on_commit_callbacks
) -> None:
    settings.LIMS_UNPACK_MAX_BYTES = 1024 * 1024
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.csv", b"t,v\n" + b"0" * (3 * 1024 * 1024))
    with pytest.raises(ValidationError, match=r"member 'zeros.csv' declares 3145732 bytes"):
        _submit(project, buffer.getvalue(), "zeros.zip", django_capture_on_commit_callbacks)


def test_a_zip_that_lies_about_its_size_fails_without_inflating_past_it(tmp_path) -> None:
    """The directory says 10 bytes, the member holds 2 MiB: the read stops at the declared
    size and fails on the checksum; nothing is inflated past it."""
    path = tmp_path / "liar.zip"
    body = b"t,v\n" + b"0" * (2 * 1024 * 1024)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.csv", body)
    data = bytearray(path.read_bytes())
    central = data.rindex(b"PK\x01\x02")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")  # uncompressed size
    path.write_bytes(bytes(data))
    limits = wrappers.Limits(max_bytes=1024 * 1024)
    # zipfile yields no more than the 10 declared bytes, then finds the CRC wrong
    with (
        pytest.raises(ParseError, match=r"cannot read member 'a.csv': Bad CRC-32"),
        wrappers.opened(path, "liar.zip", limits, tmp_path / "tmp"),
    ):
        pass
    assert not list(tmp_path.rglob("unwrapped-*"))


@pytest.mark.django_db
def test_a_multi_member_zip_is_refused_naming_its_members(
    project, fixture_path, django_capture_on_commit_callbacks
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("run1.csv", b"t,v\n1,2\n")
        archive.writestr("run2.csv", b"t,v\n1,2\n")
        archive.writestr("__MACOSX/._run1.csv", b"\0\5\x16\7")  # Finder's sidecar: not named
    with pytest.raises(ValidationError) as caught:
        _submit(project, buffer.getvalue(), "two.zip", django_capture_on_commit_callbacks)
    message = str(caught.value)
    assert "holds 2: run1.csv, run2.csv" in message
    assert "__MACOSX" not in message


@pytest.mark.django_db
def test_a_finder_zip_with_one_file_and_its_sidecars_is_unwrapped(
    project, fixture_path, django_capture_on_commit_callbacks
) -> None:
    capture = django_capture_on_commit_callbacks
    original = (fixture_path / ARBIN_CSV).read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("export/", b"")
        archive.writestr("export/arbin.csv", original)
        archive.writestr("__MACOSX/export/._arbin.csv", b"\0\5\x16\7")
        archive.writestr("export/.DS_Store", b"\0\0\0\1Bud1")
    job = _run(_submit(project, buffer.getvalue(), "export.zip", capture), capture)
    assert job.params["unwrapped"]["member"] == "export/arbin.csv"
    assert job.status in ("succeeded", "needs_linking"), job.error
    assert job.result["rows"] > 0


@pytest.mark.django_db
def test_an_ndax_is_read_as_it_is_not_unwrapped(
    project, fixture_path, django_capture_on_commit_callbacks
) -> None:
    capture = django_capture_on_commit_callbacks
    payload = (fixture_path / NDAX).read_bytes()
    job = _submit(project, payload, "navani_test.ndax", capture)
    assert "unwrapped" not in job.params
    assert job.parser_name == "neware_nda"
    job = _run(job, capture)
    assert job.status in ("succeeded", "needs_linking"), job.error
    assert "unwrapped" not in job.result
    assert job.result["rows"] == 1464
    # the same .ndax under a name without its suffix is still a format, not a wrapper
    assert storage.sniff_stored(storage.store_stream(io.BytesIO(payload)), "upload").wrapper is None


@pytest.mark.django_db
def test_a_container_declaring_huge_members_fails_before_its_reader_opens_it(
    project, settings, fixture_path, django_capture_on_commit_callbacks
) -> None:
    """The .ndax bomb of the issue (two 1.5 GiB members in 3 MB), scaled down."""
    settings.LIMS_UNPACK_MAX_BYTES = 1024 * 1024
    capture = django_capture_on_commit_callbacks
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("VersionInfo.xml", b"<x/>")
        archive.writestr("Step.xml", b"<x/>")
        archive.writestr("data.ndc", b"\0" * (2 * 1024 * 1024))
    job = _run(_submit(project, buffer.getvalue(), "bomb.ndax", capture), capture)
    assert job.parser_name == "neware_nda"
    assert job.status == "failed"
    assert "largest: 'data.ndc', 2097152 bytes), over the limit of 1048576 bytes" in job.error


def test_a_zip_declaring_too_many_members_is_refused_before_its_directory_is_read(
    tmp_path,
) -> None:
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(wrappers.MAX_MEMBERS + 1):
            archive.writestr(f"{index}.csv", b"")
    with pytest.raises(ParseError, match=r"declares 10001 members, more than the 10000"):
        wrappers.inspect(path, "many.zip", wrappers.Limits(max_bytes=1 << 30))


@pytest.mark.django_db
def test_a_line_longer_than_the_bound_fails_before_polars_reads_it(
    project, fixture_path, django_capture_on_commit_callbacks
) -> None:
    """A long line far past the head (where a head check cannot see it) is still found."""
    capture = django_capture_on_commit_callbacks
    original = (fixture_path / ARBIN_CSV).read_bytes()
    lines = original.split(b"\n")
    long_line = b"1," * (text.MAX_LINE_BYTES // 2 + 1)
    payload = b"\n".join([*lines, long_line, *lines[1:50]])
    job = _run(_submit(project, payload, "long.csv", capture), capture)
    assert job.status == "failed"
    assert f"line {len(lines) + 1} is longer than {text.MAX_LINE_BYTES} bytes" in job.error
    assert job.error.startswith(f"long.csv at byte offset {len(original) + 1}:")


def test_the_line_bound_holds_for_a_last_line_without_newline(tmp_path) -> None:
    path = tmp_path / "one.csv"
    path.write_bytes(b"a,b\n" + b"x" * (text.MAX_LINE_BYTES + 1))
    with pytest.raises(ParseError, match="line 2 is longer than"):
        text.check_line_lengths(path)
    path.write_bytes(b"a,b\n" + b"x" * text.MAX_LINE_BYTES)  # exactly at the bound: fine
    text.check_line_lengths(path)


def test_the_tool_log_reader_refuses_a_long_line(tmp_path) -> None:
    from depositions.aldlogs.parsers.tabular import open_text

    path = tmp_path / "log.txt"
    path.write_bytes(b"Time\tP\n" + b"1\t2\n" * 10 + b"9" * (2 * text.MAX_LINE_BYTES) + b"\n")
    with pytest.raises(ParseError, match="line 12 is longer than"):
        open_text(path, ParseContext(filename="log.txt"))


def test_a_header_with_absurdly_many_columns_is_refused(tmp_path) -> None:
    path = tmp_path / "wide.csv"
    path.write_bytes(b",".join(b"c%d" % i for i in range(text.MAX_COLUMNS + 1)) + b"\n1\n")
    with pytest.raises(ParseError, match=f"{text.MAX_COLUMNS + 1} columns"):
        text.read_layout(path, ParseContext(filename="wide.csv"), lambda lines: 0)


@pytest.mark.django_db
def test_the_api_answers_400_naming_the_members_of_a_multi_member_zip(
    instrument_client, django_capture_on_commit_callbacks
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.csv", b"t,v\n1,2\n")
        archive.writestr("b.mpr", b"BIO-LOGIC")
    upload = SimpleUploadedFile("batch.zip", buffer.getvalue())
    with django_capture_on_commit_callbacks(execute=False):
        response = instrument_client.post("/api/v1/ingest/", {"file": upload}, format="multipart")
    assert response.status_code == 400
    assert "holds 2: a.csv, b.mpr" in str(response.json())
