"""The harvester's loop: find files, wait until they settle, hash, ask, send, remember.

Filesystem events (watchdog) only say *where to look*; a full rescan every
``rescan_seconds`` finds what events missed (network shares lose them, the harvester was
down). Every step's outcome is in the state file before the next one starts, so the loop can
be killed anywhere and started again.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lims_harvester import backoff, client
from lims_harvester.config import Config, Folder
from lims_harvester.logs import Progress, log
from lims_harvester.stability import Seen, locked, settled
from lims_harvester.state import FileRow, State

HASH_CHUNK = 1024 * 1024
SEND_SLICE_S = 2.0  # then look at the folders again before sending on


def sha256_of(path: Path, size: int) -> str:
    """SHA-256 of the file's first ``size`` bytes; Changed if it has fewer now."""
    import hashlib

    digest = hashlib.sha256()
    left = size
    with open(path, "rb") as fh:
        while left > 0:
            chunk = fh.read(min(HASH_CHUNK, left))
            if not chunk:
                raise client.Changed("shorter than when it settled")
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


class Harvester:
    def __init__(
        self,
        config: Config,
        state: State,
        api: client.Client,
        *,
        progress: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.state = state
        self.api = api
        self.progress = progress
        self.clock = clock
        self.folders = {str(f.path): f for f in config.folders}
        self.host = socket.gethostname()
        self.stop = threading.Event()
        self.wake = threading.Event()
        self._dirty: set[str] = set()
        self._rescan_asked = False
        self._lock = threading.Lock()
        self._offline_attempts = 0
        self._offline_until = 0.0
        self._unavailable: set[str] = set()
        self._observer: Any = None
        self._watched: set[str] = set()

    # --- finding files ----------------------------------------------------------------------

    def scan(self) -> int:
        """Look at every file of every folder; files no longer there are gone. How many."""
        total = 0
        for folder in self.config.folders:
            total += self._scan_folder(folder)
        return total

    def _scan_folder(self, folder: Folder) -> int:
        key = str(folder.path)
        if not folder.path.is_dir():
            if key not in self._unavailable:
                self._unavailable.add(key)
                log.warning(
                    "folder not available (a share down?); nothing is marked gone",
                    extra={"event": "folder_unavailable", "path": key},
                )
                self.state.error(key, "folder not available")
            return 0
        if key in self._unavailable:
            self._unavailable.discard(key)
            log.info("folder available again", extra={"event": "folder_available", "path": key})
        errors: list[OSError] = []
        found: dict[str, tuple[str, Seen]] = {}
        for dirpath, dirnames, filenames in os.walk(folder.path, onerror=errors.append):
            base = Path(dirpath)
            if not folder.recursive:
                dirnames[:] = []
            else:
                dirnames[:] = [d for d in dirnames if folder.wants_dir(d)]
            for name in filenames:
                full = base / name
                rel = full.relative_to(folder.path).as_posix()
                if not folder.wants(rel):
                    continue
                try:
                    found[str(full)] = (rel, Seen.of(full))
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    errors.append(exc)
        known = self.state.all_paths(key)
        with self.state.batch():
            for path, (rel, seen) in found.items():
                before = known.get(path)
                if before is not None and before[:2] == (seen.size, seen.mtime_ns):
                    continue
                self.state.seen(
                    path=path, folder=key, relpath=rel, size=seen.size, mtime_ns=seen.mtime_ns
                )
            if not errors:  # a partial listing proves no deletion
                for path in known.keys() - found.keys():
                    self._gone(path)
        for err in errors[:5]:
            log.warning(
                "cannot list part of the folder",
                extra={"event": "scan_error", "path": key, "error": str(err)},
            )
        return len(found)

    def look_at(self, paths: Iterable[str]) -> None:
        """Files an event named: stat them (an event says where, never what)."""
        for raw in paths:
            path = Path(raw)
            where = self.config.folder_of(path)
            if where is None:
                continue
            folder, rel = where
            if not folder.wants(rel):
                continue
            try:
                seen = Seen.of(path)
            except FileNotFoundError:
                self._gone(str(path))
                continue
            except OSError:
                continue  # the rescan will tell
            if not path.is_file():
                continue
            self.state.seen(
                path=str(path),
                folder=str(folder.path),
                relpath=rel,
                size=seen.size,
                mtime_ns=seen.mtime_ns,
            )

    def _gone(self, path: str) -> None:
        row = self.state.gone(path)
        if row is None:
            return
        if row.status in ("waiting", "queued", "sending", "refused"):
            log.warning(
                "file gone before this version was sent",
                extra={"event": "gone_unsent", "path": path, "status": row.status},
            )
        else:
            log.info("file gone", extra={"event": "gone", "path": path})

    # --- settling ---------------------------------------------------------------------------

    def promote(self) -> int:
        """Waiting files that settled and are free: hash them and queue them. How many."""
        queued = 0
        for row in self.state.waiting():
            if self.stop.is_set():
                break
            folder = self.folders.get(row.folder)
            if folder is None:
                continue  # a folder no longer in the configuration
            path = Path(row.path)
            try:
                seen = Seen.of(path)
            except FileNotFoundError:
                self._gone(row.path)
                continue
            except OSError:
                continue
            if (seen.size, seen.mtime_ns) != (row.size, row.mtime_ns):
                self.state.seen(
                    path=row.path,
                    folder=row.folder,
                    relpath=row.relpath,
                    size=seen.size,
                    mtime_ns=seen.mtime_ns,
                )
                continue
            now = self.clock()
            if not settled(row.seen_since, now, folder.settle_seconds):
                continue
            if row.sent_at is not None and now - row.sent_at < folder.resend_after_seconds:
                continue  # a growing file: the next version a little later
            why = locked(path, seen)
            if why is not None:
                log.debug("not yet", extra={"event": "locked", "path": row.path, "error": why})
                continue
            try:
                digest = sha256_of(path, seen.size)
                if Seen.of(path) != seen:
                    raise client.Changed("changed while it was hashed")
            except client.Changed as exc:
                self.state.back_to_waiting(row.path, str(exc))
                continue
            except OSError as exc:
                log.warning(
                    "cannot read",
                    extra={"event": "read_error", "path": row.path, "error": str(exc)},
                )
                continue
            if digest == row.sent_sha256:  # touched, or grew and shrank back: sent already
                self.state.sent(
                    row,
                    outcome="unchanged",
                    sha256=digest,
                    job_id=row.job_id,
                    job_url=row.job_url,
                    http_status=None,
                    seconds=None,
                )
                continue
            self.state.queued(row.path, digest)
            queued += 1
        return queued

    # --- sending ----------------------------------------------------------------------------

    def offline_for(self) -> float:
        return max(0.0, self._offline_until - self.clock())

    def send_due(self, *, budget_s: float = SEND_SLICE_S) -> int:
        """Send queued files whose time has come, for about ``budget_s``. How many done."""
        done = 0
        started = time.monotonic()
        while not self.stop.is_set() and self.offline_for() == 0:
            rows = self.state.due(self.clock(), limit=50)
            if not rows:
                break
            for row in rows:
                if self.stop.is_set() or self.offline_for() > 0:
                    return done
                done += self.send(row)
                if time.monotonic() - started > budget_s:
                    return done
        return done

    def _metadata(self, folder: Folder, row: FileRow) -> dict[str, Any]:
        mtime = datetime.fromtimestamp(row.mtime_ns / 1e9, tz=UTC)
        return {
            **folder.metadata,
            "harvest": {
                "host": self.host,
                "folder": str(folder.path),
                "path": row.relpath,
                "mtime": mtime.isoformat(timespec="seconds"),
            },
        }

    def send(self, row: FileRow) -> int:
        """One queued file: ask by SHA-256, upload if the server lacks it. 1 when settled."""
        folder = self.folders[row.folder]
        path = Path(row.path)
        assert row.sha256 is not None
        try:
            seen = Seen.of(path)
        except FileNotFoundError:
            self._gone(row.path)
            return 0
        except OSError as exc:
            return self._retry(row, f"cannot stat: {exc}")
        if (seen.size, seen.mtime_ns) != (row.size, row.mtime_ns):
            self.state.seen(
                path=row.path,
                folder=row.folder,
                relpath=row.relpath,
                size=seen.size,
                mtime_ns=seen.mtime_ns,
            )
            return 0
        self.state.sending(row.path)
        t0 = time.monotonic()
        fields = folder.fields_for(row.relpath)
        extra = {"path": row.path, "sha256": row.sha256, "size": row.size}
        try:
            known = self.api.check(row.sha256)
            self._contact()
            if known is not None and known.stored:
                self.state.sent(
                    row,
                    outcome="present",
                    sha256=row.sha256,
                    job_id=known.job_id,
                    job_url=known.job_url,
                    http_status=200,
                    seconds=time.monotonic() - t0,
                )
                log.info(
                    "already on the server: not sent",
                    extra={**extra, "event": "present", "job": known.job_id},
                )
                return 1
            log.info("sending", extra={**extra, "event": "upload_start"})
            bar = Progress(path.name, row.size) if self.progress else None
            up = self.api.upload(
                path,
                filename=path.name,
                size=row.size,
                sha256=row.sha256,
                fields=fields,
                metadata=self._metadata(folder, row),
                progress=bar,
            )
            self._contact()
        except client.Changed as exc:
            self.state.back_to_waiting(row.path, str(exc))
            log.warning(
                "changed while it was sent: it settles again",
                extra={**extra, "event": "changed", "error": str(exc)},
            )
            return 0
        except client.Refused as exc:
            self.state.refused(row, sha256=row.sha256, http_status=exc.status, message=str(exc))
            log.error(
                "the server refused this file",
                extra={**extra, "event": "refused", "status": exc.status, "error": str(exc)},
            )
            return 1
        except client.Offline as exc:
            self._went_offline(row, exc)
            return 0
        except OSError as exc:  # reading the file (a share dropped out)
            return self._retry(row, f"cannot read: {exc}")
        # "resent": the upload answered 200, the server had the bytes (an older server
        # without the check, or stored between the check and the upload)
        outcome = "elsewhere" if up.elsewhere else ("uploaded" if up.status == 202 else "resent")
        seconds = time.monotonic() - t0
        self.state.sent(
            row,
            outcome=outcome,
            sha256=up.sha256,
            job_id=up.job_id,
            job_url=up.job_url,
            http_status=up.status,
            seconds=seconds,
        )
        log.info(
            "sent",
            extra={
                **extra,
                "event": "sent",
                "outcome": outcome,
                "status": up.status,
                "job": up.job_id,
                "seconds": round(seconds, 3),
            },
        )
        return 1

    def _retry(self, row: FileRow, message: str) -> int:
        wait = backoff.delay(row.attempts + 1, self.config.backoff)
        self.state.retry_later(row.path, at=self.clock() + wait, message=message)
        self.state.error(row.path, message)
        log.warning(message, extra={"event": "retry", "path": row.path, "retry_in": round(wait, 1)})
        return 0

    def _contact(self) -> None:
        now = self.clock()
        self.state.set_meta("last_contact_at", str(now))
        since = self.state.meta("offline_since")  # this run's outage, or one before a restart
        if since is not None:
            log.info(
                "server reachable again",
                extra={
                    "event": "online",
                    "seconds": round(now - float(since), 1),
                    "queue": self.state.queue_length(),
                },
            )
            self.state.set_meta("offline_since", None)
        self._offline_attempts = 0
        self._offline_until = 0.0

    def _went_offline(self, row: FileRow | None, exc: client.Offline) -> None:
        self._offline_attempts += 1
        wait = backoff.delay(
            self._offline_attempts, self.config.backoff, retry_after=exc.retry_after
        )
        now = self.clock()
        self._offline_until = now + wait
        if row is not None:
            self.state.retry_later(row.path, at=self._offline_until, message=str(exc))
        if self.state.meta("offline_since") is None:
            self.state.set_meta("offline_since", str(now))
        self.state.error(row.path if row else None, str(exc))
        unauthorized = isinstance(exc, client.Unauthorized)
        (log.error if unauthorized else log.warning)(
            "the token is refused: check it (a project manager issues one on the project page)"
            if unauthorized
            else "server unreachable: files stay queued",
            extra={
                "event": "unauthorized" if unauthorized else "offline",
                "error": str(exc),
                "retry_in": round(wait, 1),
                "queue": self.state.queue_length(),
            },
        )

    def heartbeat(self) -> None:
        """A call when nothing else called for a while: the dashboard's "last contact"."""
        every = self.config.heartbeat_seconds
        if every <= 0 or self.offline_for() > 0:
            return
        last = self.state.meta("last_contact_at")
        if last is not None and self.clock() - float(last) < every:
            return
        try:
            self.api.check(client.EMPTY_SHA256)
            self._contact()
        except client.Offline as exc:
            self._went_offline(None, exc)

    # --- events -----------------------------------------------------------------------------

    def _event(self, paths: Iterable[str], directory: bool) -> None:
        with self._lock:
            if directory:
                self._rescan_asked = True
            else:
                self._dirty.update(paths)
        self.wake.set()

    def _take_dirty(self) -> tuple[set[str], bool]:
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            rescan, self._rescan_asked = self._rescan_asked, False
        return dirty, rescan

    def watch(self) -> None:
        """Start (or extend) filesystem watches; a folder that cannot be watched now is tried
        again at the next rescan, and its files are found by the rescans meanwhile."""
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        harvester = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type in ("opened", "closed_no_write"):
                    return
                paths = [os.fsdecode(event.src_path)]
                if getattr(event, "dest_path", ""):
                    paths.append(os.fsdecode(event.dest_path))
                harvester._event(paths, event.is_directory and event.event_type != "modified")

        if self._observer is None:
            self._observer = Observer()
            self._observer.daemon = True
            self._observer.start()
            self._handler = Handler()
        for folder in self.config.folders:
            key = str(folder.path)
            if key in self._watched or not folder.path.is_dir():
                continue
            try:
                self._observer.schedule(self._handler, key, recursive=folder.recursive)
                self._watched.add(key)
            except OSError as exc:
                log.warning(
                    "cannot watch the folder; rescans find its files",
                    extra={"event": "watch_error", "path": key, "error": str(exc)},
                )

    def unwatch(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
            self._watched.clear()

    # --- the loop ---------------------------------------------------------------------------

    def step(self) -> None:
        dirty, rescan = self._take_dirty()
        if rescan:
            self.scan()
        if dirty:
            self.look_at(dirty)
        self.promote()
        self.send_due()
        self.heartbeat()

    def run(self, *, watch: bool = True, until_idle_s: float | None = None) -> bool:
        """The service loop (``until_idle_s`` None), or ``once``: scan, then work until the
        queue is empty or ``until_idle_s`` passed. True when nothing is left to send."""
        recovered = self.state.recover()
        if recovered:
            log.info(
                "resumed: files that were being sent are queued again",
                extra={"event": "recovered", "files": recovered},
            )
        log.info(
            "started",
            extra={
                "event": "start",
                "queue": self.state.queue_length(),
                "path": str(self.config.source or ""),
            },
        )
        started = time.monotonic()
        next_rescan = 0.0
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                if now >= next_rescan:
                    if watch:
                        self.watch()
                    self.scan()
                    next_rescan = now + self.config.rescan_seconds
                self.step()
                queue = self.state.queue_length()
                if until_idle_s is not None and (
                    queue == 0 or time.monotonic() - started >= until_idle_s
                ):
                    break
                self.wake.wait(self._sleep(next_rescan, queue))
                self.wake.clear()
        finally:
            self.unwatch()
        return self.state.queue_length() == 0

    def _sleep(self, next_rescan: float, queue: int) -> float:
        until_rescan = max(0.0, next_rescan - time.monotonic())
        if queue == 0:
            heartbeat = self.config.heartbeat_seconds or until_rescan
            return max(0.05, min(until_rescan, heartbeat))
        due = self.state.next_due_at()
        soon = 0.25  # waiting files are looked at again (size, mtime, lock)
        if due is not None:
            soon = min(soon, max(0.0, due - self.clock()))
        return max(0.05, min(until_rescan, soon, self.offline_for() or soon))
