"""The local state file (SQLite): every file seen, what was sent, the queue, recent errors.

It is the queue itself, so a crash, a kill or a reboot loses nothing: on start, a file that
was being sent is queued again (``recover``), and the server's answer by SHA-256 keeps it
from being sent twice. Written by one ``run``/``once`` at a time (``single_instance``); read
by ``status`` at any time (WAL mode).

A file's life: ``waiting`` (seen; not settled yet) -> ``queued`` (settled, hashed) ->
``sending`` -> ``sent`` (the server holds these bytes: uploaded, or found by the check) or
``refused`` (the server said no to these bytes: 400/413/415; tried again when the file
changes). ``gone``: deleted or renamed away.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    folder TEXT NOT NULL,
    relpath TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    seen_since REAL NOT NULL,
    status TEXT NOT NULL,
    sha256 TEXT,
    sent_sha256 TEXT,
    sent_size INTEGER,
    sent_mtime_ns INTEGER,
    sent_at REAL,
    job_id INTEGER,
    job_url TEXT,
    outcome TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try_at REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_status ON files (status, next_try_at);
CREATE TABLE IF NOT EXISTS sends (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    http_status INTEGER,
    job_id INTEGER,
    seconds REAL
);
CREATE TABLE IF NOT EXISTS errors (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    path TEXT,
    message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""
QUEUE = ("waiting", "queued", "sending")
KEEP_ERRORS = 200


@dataclass
class FileRow:
    path: str
    folder: str
    relpath: str
    size: int
    mtime_ns: int
    seen_since: float
    status: str
    sha256: str | None
    sent_sha256: str | None
    sent_size: int | None
    sent_mtime_ns: int | None
    sent_at: float | None
    job_id: int | None
    job_url: str | None
    outcome: str | None
    attempts: int
    next_try_at: float
    last_error: str | None
    updated_at: float


class State:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # autocommit: each statement is its own transaction, durable when it returns
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self.db.execute("PRAGMA user_version=1")

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Many writes in one transaction (a rescan of thousands of files)."""
        self.db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- files ------------------------------------------------------------------------------

    def get(self, path: str) -> FileRow | None:
        row = self.db.execute("SELECT * FROM files WHERE path = ?", (path,)).fetchone()
        return FileRow(**dict(row)) if row else None

    def all_paths(self, folder: str) -> dict[str, tuple[int, int, str]]:
        """path -> (size, mtime_ns, status) of the folder's files not gone."""
        rows = self.db.execute(
            "SELECT path, size, mtime_ns, status FROM files WHERE folder = ? AND status != 'gone'",
            (folder,),
        )
        return {r["path"]: (r["size"], r["mtime_ns"], r["status"]) for r in rows}

    def seen(self, *, path: str, folder: str, relpath: str, size: int, mtime_ns: int) -> str:
        """Record a look at a file; returns its status afterwards.

        New size or mtime: the file waits (again) to settle. The same as the version that was
        sent: nothing to do. Otherwise unchanged.
        """
        now = time.time()
        row = self.get(path)
        if row is None:
            self.db.execute(
                "INSERT INTO files (path, folder, relpath, size, mtime_ns, seen_since, status,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, 'waiting', ?)",
                (path, folder, relpath, size, mtime_ns, now, now),
            )
            return "waiting"
        if (row.size, row.mtime_ns) == (size, mtime_ns) and row.status != "gone":
            return row.status
        if (row.sent_size, row.sent_mtime_ns) == (size, mtime_ns) and row.status in (
            "sent",
            "gone",
        ):
            self._set(path, status="sent", size=size, mtime_ns=mtime_ns)
            return "sent"
        self._set(
            path,
            status="waiting",
            size=size,
            mtime_ns=mtime_ns,
            seen_since=now,
            sha256=None,
            attempts=0,
            next_try_at=0,
            last_error=None,
        )
        return "waiting"

    def gone(self, path: str) -> FileRow | None:
        """The file disappeared; the row it had (None when unknown or already gone)."""
        row = self.get(path)
        if row is None or row.status == "gone":
            return None
        self._set(path, status="gone")
        return row

    def waiting(self) -> list[FileRow]:
        rows = self.db.execute("SELECT * FROM files WHERE status = 'waiting' ORDER BY seen_since")
        return [FileRow(**dict(r)) for r in rows]

    def due(self, now: float, limit: int = 100) -> list[FileRow]:
        rows = self.db.execute(
            "SELECT * FROM files WHERE status = 'queued' AND next_try_at <= ?"
            " ORDER BY next_try_at, seen_since LIMIT ?",
            (now, limit),
        )
        return [FileRow(**dict(r)) for r in rows]

    def next_due_at(self) -> float | None:
        row = self.db.execute(
            "SELECT MIN(next_try_at) AS t FROM files WHERE status = 'queued'"
        ).fetchone()
        return row["t"]

    def queue_length(self) -> int:
        marks = ",".join("?" * len(QUEUE))
        row = self.db.execute(f"SELECT COUNT(*) FROM files WHERE status IN ({marks})", QUEUE)
        return int(row.fetchone()[0])

    def queued(self, path: str, sha256: str) -> None:
        self._set(path, status="queued", sha256=sha256, next_try_at=0, last_error=None)

    def sending(self, path: str) -> None:
        self._set(path, status="sending")

    def sent(
        self,
        row: FileRow,
        *,
        outcome: str,
        sha256: str,
        job_id: int | None,
        job_url: str | None,
        http_status: int | None,
        seconds: float | None,
    ) -> None:
        """The server holds these bytes. ``outcome``: uploaded (202), resent (the upload
        answered 200), present (the check found them: not sent), elsewhere (409: another
        source brought them), unchanged (touched; the bytes that were sent)."""
        now = time.time()
        self._set(
            row.path,
            status="sent",
            sha256=sha256,
            sent_sha256=sha256,
            sent_size=row.size,
            sent_mtime_ns=row.mtime_ns,
            sent_at=now,
            job_id=job_id,
            job_url=job_url,
            outcome=outcome,
            attempts=0,
            last_error=None,
        )
        self._log_send(row, sha256, outcome, http_status, job_id, seconds)
        self.set_meta("last_success_at", str(now))
        self.set_meta("last_success_path", row.path)

    def refused(self, row: FileRow, *, sha256: str, http_status: int, message: str) -> None:
        self._set(row.path, status="refused", sha256=sha256, last_error=message)
        self._log_send(row, sha256, "refused", http_status, None, None)
        self.error(row.path, message)

    def retry_later(self, path: str, *, at: float, message: str) -> None:
        """Back to the queue after a failed try (the server away, a read error)."""
        self.db.execute(
            "UPDATE files SET status = 'queued', attempts = attempts + 1, next_try_at = ?,"
            " last_error = ?, updated_at = ? WHERE path = ?",
            (at, message, time.time(), path),
        )

    def back_to_waiting(self, path: str, message: str | None = None) -> None:
        """The file changed under us: it has to settle again."""
        self._set(path, status="waiting", seen_since=time.time(), sha256=None, last_error=message)

    def recover(self) -> int:
        """After a crash: a file that was being sent is queued again; how many."""
        cur = self.db.execute(
            "UPDATE files SET status = 'queued', next_try_at = 0 WHERE status = 'sending'"
        )
        return cur.rowcount

    def _set(self, path: str, **values: Any) -> None:
        values["updated_at"] = time.time()
        cols = ", ".join(f"{k} = ?" for k in values)
        self.db.execute(f"UPDATE files SET {cols} WHERE path = ?", (*values.values(), path))

    def _log_send(
        self,
        row: FileRow,
        sha256: str,
        outcome: str,
        http_status: int | None,
        job_id: int | None,
        seconds: float | None,
    ) -> None:
        self.db.execute(
            "INSERT INTO sends (at, path, sha256, size, outcome, http_status, job_id, seconds)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (time.time(), row.path, sha256, row.size, outcome, http_status, job_id, seconds),
        )

    # --- errors and facts -------------------------------------------------------------------

    def error(self, path: str | None, message: str) -> None:
        self.db.execute(
            "INSERT INTO errors (at, path, message) VALUES (?, ?, ?)", (time.time(), path, message)
        )
        self.db.execute(
            "DELETE FROM errors WHERE id <= (SELECT MAX(id) FROM errors) - ?", (KEEP_ERRORS,)
        )

    def set_meta(self, key: str, value: str | None) -> None:
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row["value"]

    def summary(self, errors: int = 10) -> dict[str, Any]:
        """What ``lims-harvest status`` shows."""
        counts = {
            r["status"]: r["n"]
            for r in self.db.execute("SELECT status, COUNT(*) AS n FROM files GROUP BY status")
        }
        sends = {
            r["outcome"]: r["n"]
            for r in self.db.execute("SELECT outcome, COUNT(*) AS n FROM sends GROUP BY outcome")
        }
        recent = [
            {"at": r["at"], "path": r["path"], "message": r["message"]}
            for r in self.db.execute(
                "SELECT at, path, message FROM errors ORDER BY id DESC LIMIT ?", (errors,)
            )
        ]
        last = self.meta("last_success_at")
        offline = self.meta("offline_since")
        return {
            "state_file": str(self.path),
            "queue": sum(counts.get(s, 0) for s in QUEUE),
            "files": counts,
            "sends": sends,
            "last_success_at": float(last) if last else None,
            "last_success_path": self.meta("last_success_path"),
            "last_contact_at": _float(self.meta("last_contact_at")),
            "offline_since": _float(offline),
            "recent_errors": recent,
        }


def _float(text: str | None) -> float | None:
    return float(text) if text else None


class AlreadyRunning(RuntimeError):
    pass


@contextlib.contextmanager
def single_instance(state_file: Path) -> Iterator[None]:
    """One writer per state file: an OS lock on ``<state>.lock``, released by the OS when the
    process dies however it dies (a SIGKILL leaves no stale lock behind)."""
    lock_path = state_file.with_name(state_file.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle: IO[bytes] = open(lock_path, "a+b")  # noqa: SIM115 - held for the block
    try:
        try:
            if sys.platform == "win32":  # pragma: no cover - Windows
                import msvcrt

                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            else:
                import fcntl

                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise AlreadyRunning(
                f"another lims-harvest uses {state_file} (lock {lock_path})"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()).encode())
        handle.flush()
        yield
    finally:
        handle.close()
