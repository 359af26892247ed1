"""The .eln exports (ELN Consortium format, RO-Crate inside) read back: structure, rocrate
parses them, every file's hash matches its bytes and the stored files' hashes."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from cells.models import CyclingTest, EisSpectrum
from depositions.models import RunLogFile
from lims.eln import ElnError, eln_read
from lims.ingestion import storage
from tests.conftest import ingest_file

MPR = "cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"
EIS = "eis/impedance_exampleDataGamry.DTA"
LABVIEW = (
    "ald/labview_qcm_run/20190524_Run1_TMA-H2O-50cycles_TMA-10Pulses_TMA-H2O-20cycles_425C_GaPO4"
)


def _ingest(fixture_path, project, rel: str, capture, **params):
    done = ingest_file(fixture_path, project, rel, capture, **params)
    assert done.status == "succeeded", done.error
    return done


def _download(client, url: str, tmp_path: Path) -> Path:
    response = client.get(url)
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "application/vnd.eln+zip"
    name = response["Content-Disposition"].split('filename="')[1].rstrip('"')
    path = tmp_path / name
    path.write_bytes(b"".join(response.streaming_content))
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _independent_hash_check(path: Path) -> dict[str, str]:
    """Hash every member with hashlib, apart from lims.eln, and compare with the metadata."""
    import json

    with zipfile.ZipFile(path) as archive:
        (folder,) = {n.split("/", 1)[0] for n in archive.namelist()}
        graph = json.loads(archive.read(f"{folder}/ro-crate-metadata.json"))["@graph"]
        hashes = {}
        for node in graph:
            if node["@type"] == "File":
                data = archive.read(f"{folder}/{node['@id']}")
                assert hashlib.sha256(data).hexdigest() == node["sha256"], node["@id"]
                assert node["contentSize"] == str(len(data))
                hashes[node["@id"]] = node["sha256"]
    return hashes


@pytest.mark.django_db
def test_cell_eln_holds_raw_series_cycles_and_provenance_with_matching_hashes(
    fixture_path, project, cell, user_client, tmp_path, django_capture_on_commit_callbacks
):
    job = _ingest(fixture_path, project, MPR, django_capture_on_commit_callbacks, cell="C-001")
    test = CyclingTest.objects.get(job=job)
    path = _download(user_client, "/api/v1/cells/C-001/eln/", tmp_path)
    assert path.name == "cell-C-001.eln"
    contents = eln_read(path)
    assert contents.folder == "cell-C-001" and contents.entities > 10
    hashes = _independent_hash_check(path)
    base = f"test-{test.pk}/"
    raw = f"{base}raw/{test.raw_file.original_name}"
    assert hashes[raw] == test.raw_file.sha256
    assert hashes[f"{base}series.parquet"] == _sha(storage.absolute(test.series_path))
    assert f"{base}cycles.csv" in hashes
    graph = {n["@id"]: n for n in contents.metadata["@graph"]}
    descriptor = graph["ro-crate-metadata.json"]
    assert descriptor["version"] and graph[descriptor["sdPublisher"]["@id"]]["url"]
    assert graph[f"{base}series.parquet"]["isBasedOn"] == [{"@id": raw}]
    action = graph[f"#ingest-test-{test.pk}"]
    assert action["@type"] == "CreateAction"
    assert action["object"] == [{"@id": raw}]
    software = graph[action["instrument"]["@id"]]
    assert (software["name"], software["version"]) == ("biologic_mpr", test.parser_version)
    cell_node = graph["cell/"]
    values = {graph[v["@id"]]["propertyID"]: graph[v["@id"]] for v in cell_node["variableMeasured"]}
    assert values["active_mass_mg"]["value"] == pytest.approx(7.0)
    assert values["active_mass_mg"]["unitText"] == "mg"
    test_values = {
        graph[v["@id"]]["propertyID"]: graph[v["@id"]]["value"]
        for v in graph[base]["variableMeasured"]
    }
    assert test_values["raw_sha256"] == test.raw_file.sha256
    assert test_values["performance.first_discharge_mah"] == pytest.approx(
        test.performance.first_discharge_mah
    )
    assert {p["@id"] for p in graph["./"]["hasPart"]} == {"cell/", base}


@pytest.mark.django_db
def test_sample_eln_holds_its_lineage_and_spectra(
    fixture_path, project, user_client, tmp_path, django_capture_on_commit_callbacks
):
    from decimal import Decimal

    from samples import services as samples

    pellet = samples.sample_create(
        project=project, code="PEL-1", kind="pellet", quantity=Decimal("1"), unit="count"
    )
    job = _ingest(fixture_path, project, EIS, django_capture_on_commit_callbacks, sample="PEL-1")
    spectrum = EisSpectrum.objects.get(job=job)
    assert spectrum.sample == pellet
    path = _download(user_client, "/api/v1/samples/PEL-1/eln/", tmp_path)
    contents = eln_read(path)
    hashes = _independent_hash_check(path)
    base = f"spectrum-{spectrum.pk}/"
    assert hashes[f"{base}raw/impedance_exampleDataGamry.DTA"] == spectrum.raw_file.sha256
    assert hashes[f"{base}spectrum.parquet"] == _sha(storage.absolute(spectrum.series_path))
    assert "sample/lineage.json" in contents.files


@pytest.mark.django_db
def test_run_eln_holds_the_recipe_as_run_and_its_tool_log(
    fixture_path,
    project,
    labview_run,
    user_client,
    tmp_path,
    django_capture_on_commit_callbacks,
):
    job = _ingest(
        fixture_path,
        project,
        f"{LABVIEW}_DataLog.txt",
        django_capture_on_commit_callbacks,
        run="LV-RUN1",
    )
    log = RunLogFile.objects.get(job=job)
    path = _download(user_client, "/api/v1/deposition-runs/LV-RUN1/eln/", tmp_path)
    contents = eln_read(path)
    hashes = _independent_hash_check(path)
    assert hashes[f"log-{log.pk}/series.parquet"] == _sha(storage.absolute(log.series_path))
    raw = next(k for k in hashes if k.startswith(f"log-{log.pk}/raw/"))
    assert hashes[raw] == log.raw_file.sha256
    assert "run/recipe.json" in contents.files


def _rezip(src: Path, dst: Path, change) -> None:
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w") as b:
        for info in a.infolist():
            name, data = change(info.filename, a.read(info.filename))
            if name:
                b.writestr(name, data)


@pytest.mark.django_db
def test_eln_reader_names_a_tampered_file_and_a_second_top_folder(
    fixture_path, project, cell, user_client, tmp_path, django_capture_on_commit_callbacks
):
    _ingest(fixture_path, project, MPR, django_capture_on_commit_callbacks, cell="C-001")
    path = _download(user_client, "/api/v1/cells/C-001/eln/", tmp_path)

    def flip(name: str, data: bytes):
        return name, (data[:-1] + bytes([data[-1] ^ 1]) if name.endswith("cycles.csv") else data)

    tampered = tmp_path / "tampered.eln"
    _rezip(path, tampered, flip)
    with pytest.raises(ElnError, match=r"cycles\.csv: sha256 does not match"):
        eln_read(tampered)

    def loose(name: str, data: bytes):
        return (name.split("/", 1)[1] if name.endswith("cycles.csv") else name), data

    spilled = tmp_path / "spilled.eln"
    _rezip(path, spilled, loose)
    with pytest.raises(ElnError, match="one top folder"):
        eln_read(spilled)
