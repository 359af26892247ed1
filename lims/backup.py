"""Backup and restore: the database and the file store as one set, verified by hashes.

A backup is a folder: ``db.dump`` (``pg_dump`` custom format; ``db.sqlite3`` in the embedded
mode), ``store/`` (raw files and Parquet series, copied) and ``manifest.json`` (row counts of
the tables that hold results, and every raw file's sha256 as read back from the copy). A
restore goes into an empty database and an empty store only (it never merges), then reads
every raw file again and compares its hash with the database's and the manifest's, and the
row counts with the manifest's. Mismatches are reported, never repaired.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import connection

MANIFEST = "manifest.json"
# tables whose rows are results or their provenance: counted in the manifest and on restore
COUNTED = (
    "lims.RawFile",
    "lims.IngestionJob",
    "lims.ObjectChange",
    "samples.Sample",
    "samples.Operation",
    "depositions.DepositionRun",
    "depositions.PostTreatment",
    "depositions.RunLogFile",
    "cells.Cell",
    "cells.CyclingTest",
    "cells.CycleRecord",
    "cells.PerformanceRecord",
    "cells.EisSpectrum",
    "cells.EisFit",
)


class BackupError(Exception):
    """The backup or restore cannot go on; the message says why."""


def _counts() -> dict[str, int]:
    out = {}
    for label in COUNTED:
        try:
            model = apps.get_model(label)
        except LookupError:
            continue
        out[label] = model.objects.count()
    return out


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _pg_env() -> tuple[dict[str, str], list[str]]:
    db = settings.DATABASES["default"]
    env = {**os.environ}
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])
    args = ["-h", str(db.get("HOST") or "127.0.0.1"), "-p", str(db.get("PORT") or 5432)]
    args += ["-U", str(db.get("USER") or "postgres"), "-d", str(db["NAME"])]
    return env, args


def backup(*, target: Path) -> dict[str, Any]:
    """Write a backup folder at ``target`` (which must not exist yet); its manifest."""
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty: a backup goes into a new folder")
    target.mkdir(parents=True, exist_ok=True)
    if connection.vendor == "postgresql":
        env, args = _pg_env()
        done = subprocess.run(
            ["pg_dump", "--format=custom", "--no-owner", "--file", str(target / "db.dump"), *args],
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise BackupError(f"pg_dump failed: {done.stderr.strip()[:500]}")
        database = "db.dump"
    elif connection.vendor == "sqlite":
        connection.ensure_connection()
        with sqlite3.connect(target / "db.sqlite3") as out:
            connection.connection.backup(out)  # a consistent copy while the app runs
        database = "db.sqlite3"
    else:  # pragma: no cover - the project runs on these two
        raise BackupError(f"no backup for a {connection.vendor} database")
    store = Path(settings.LIMS_STORAGE_DIR)
    for part in ("raw", "series"):
        if (store / part).exists():
            shutil.copytree(store / part, target / "store" / part)
    from lims.models import RawFile

    raw_files = []
    for raw in RawFile.objects.order_by("pk").values("pk", "sha256", "storage_path", "size"):
        copy = target / "store" / raw["storage_path"]
        read = _sha256(copy) if copy.exists() else None
        raw_files.append({**raw, "copied_sha256": read})
    manifest = {
        "created_at": datetime.now(UTC).isoformat(),
        "database": database,
        "vendor": connection.vendor,
        "counts": _counts(),
        "raw_files": raw_files,
        "copy_mismatches": [r["pk"] for r in raw_files if r["copied_sha256"] != r["sha256"]],
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str))
    return manifest


def restore(*, source: Path) -> dict[str, Any]:
    """Restore ``source`` into this (empty) database and (empty) store, then verify it."""
    manifest = json.loads((source / MANIFEST).read_text())
    store = Path(settings.LIMS_STORAGE_DIR)
    if manifest["vendor"] != connection.vendor:
        raise BackupError(f"a {manifest['vendor']} backup cannot go into {connection.vendor}")
    if connection.vendor == "postgresql" and connection.introspection.table_names():
        raise BackupError("the database is not empty: restore into a new one")
    if any((store / part).exists() and any((store / part).iterdir()) for part in ("raw", "series")):
        raise BackupError(f"the store {store} is not empty: restore into an empty one")
    if connection.vendor == "postgresql":
        env, args = _pg_env()
        done = subprocess.run(
            ["pg_restore", "--no-owner", "--exit-on-error", *args, str(source / "db.dump")],
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise BackupError(f"pg_restore failed: {done.stderr.strip()[:500]}")
    else:
        name = Path(settings.DATABASES["default"]["NAME"])
        connection.close()
        if name.exists() and name.stat().st_size:
            raise BackupError(f"{name} exists: restore into a new database file")
        shutil.copyfile(source / "db.sqlite3", name)
    if (source / "store").exists():
        shutil.copytree(source / "store", store, dirs_exist_ok=True)
    return verify(manifest=manifest)


def verify(*, manifest: dict[str, Any]) -> dict[str, Any]:
    """Every raw file read back against the database's sha256 and the manifest's; row counts."""
    from lims.ingestion import storage
    from lims.models import RawFile

    expected = {r["pk"]: r["sha256"] for r in manifest["raw_files"]}
    problems: list[str] = []
    checked = 0
    for pk, sha, path in RawFile.objects.order_by("pk").values_list("pk", "sha256", "storage_path"):
        file = storage.absolute(path)
        if not file.exists():
            problems.append(f"raw file {pk} ({path}) is missing from the store")
            continue
        read = _sha256(file)
        checked += 1
        if read != sha:
            problems.append(f"raw file {pk}: bytes hash {read}, database says {sha}")
        if expected.get(pk) != sha:
            problems.append(f"raw file {pk}: manifest says {expected.get(pk)}, database {sha}")
    missing = set(expected) - set(RawFile.objects.values_list("pk", flat=True))
    problems += [f"raw file {pk} of the manifest is not in the database" for pk in sorted(missing)]
    counts = _counts()
    for label, count in manifest["counts"].items():
        if counts.get(label) != count:
            problems.append(f"{label}: {counts.get(label)} rows, the backup had {count}")
    return {"raw_files_checked": checked, "counts": counts, "problems": problems}
