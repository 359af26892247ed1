"""The restore drill: back up, restore into an empty database and store, find every raw file
and record again with equal hashes; a tampered copy is caught."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command

from tests.conftest import FIXTURES, ROOT

pytestmark = pytest.mark.django_db(transaction=True)

MPR = FIXTURES / "cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"


def _admin():
    db = settings.DATABASES["default"]
    return psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname="postgres", autocommit=True
    )


def _restore(backup_dir: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    name = f"lims_drill_{uuid.uuid4().hex[:8]}"
    db = settings.DATABASES["default"]
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "lims.settings.test",
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{name}",
            "LIMS_DATA_DIR": str(data_dir),
        }
        return subprocess.run(
            [sys.executable, "manage.py", "lims_restore", str(backup_dir)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
    finally:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_backup_restore_drill(project, cell, tmp_path, monkeypatch):
    from cells.models import CyclingTest
    from lims.ingestion import services as ingest
    from lims.ingestion import storage
    from lims.models import RawFile

    monkeypatch.setattr(ingest, "_dispatch", lambda job_id: None)
    job, _ = ingest.ingest_submit(
        stream=io.BytesIO(MPR.read_bytes()),
        filename=MPR.name,
        project=project,
        params={"cell": cell.code},
    )
    assert ingest.job_run(job_id=job.pk).status == "succeeded"

    backup_dir = tmp_path / "backup"
    call_command("lims_backup", str(backup_dir), stdout=io.StringIO())
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    assert manifest["counts"]["cells.CycleRecord"] == 7
    assert manifest["copy_mismatches"] == []

    done = _restore(backup_dir, tmp_path / "restored")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["problems"] == []
    assert report["raw_files_checked"] == RawFile.objects.count() == 1
    assert report["counts"]["cells.CyclingTest"] == CyclingTest.objects.count() == 1
    test = CyclingTest.objects.get()
    assert (tmp_path / "restored/store" / test.series_path).read_bytes() == storage.absolute(
        test.series_path
    ).read_bytes()

    # a raw file changed in the backup is named, and the restore fails
    raw = RawFile.objects.get()
    copy = backup_dir / "store" / raw.storage_path
    copy.chmod(0o644)
    data = copy.read_bytes()
    copy.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    bad = _restore(backup_dir, tmp_path / "restored-bad")
    assert bad.returncode != 0
    assert f"raw file {raw.pk}: bytes hash" in bad.stdout


def test_a_backup_never_overwrites_and_a_restore_never_merges(project, tmp_path):
    from lims.backup import BackupError, backup, restore

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(BackupError, match="not empty"):
        backup(target=tmp_path / "full")
    backup(target=tmp_path / "ok")
    with pytest.raises(BackupError, match="database is not empty"):
        restore(source=tmp_path / "ok")  # the test database has its tables
