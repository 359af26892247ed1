"""Logs: JSON lines as a service (one object per line, for journald, NSSM or a log shipper),
short readable lines at a terminal, where a progress bar shows each upload."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any

log = logging.getLogger("lims_harvester")

# the keys a call may pass in ``extra=`` that go into the JSON object
FIELDS = (
    "event",
    "path",
    "sha256",
    "size",
    "job",
    "status",
    "outcome",
    "seconds",
    "retry_in",
    "error",
    "queue",
    "files",
)


# what a terminal line adds to the message
SHOWN = ("path", "outcome", "job", "status", "retry_in", "queue", "error")


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        for key in FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class Readable(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        text = f"{stamp} {record.levelname[0]} {record.getMessage()}"
        details = [f"{k}={getattr(record, k)}" for k in SHOWN if getattr(record, k, None)]
        if details:
            text += "  " + " ".join(details)
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup(*, json_lines: bool, level: str = "INFO", stream: IO[str] | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLines() if json_lines else Readable())
    log.handlers[:] = [handler]
    log.setLevel(level.upper())
    log.propagate = False


class Progress:
    """A one-line progress bar on a terminal: name, percent, bytes, rate."""

    def __init__(self, name: str, total: int, stream: IO[str] | None = None) -> None:
        self.name = name if len(name) <= 40 else "..." + name[-37:]
        self.total = max(total, 1)
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self._last = 0.0

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if done < self.total and now - self._last < 0.1:
            return
        self._last = now
        frac = min(done / self.total, 1.0)
        bar = "#" * int(frac * 24)
        rate = done / max(now - self.start, 1e-6) / 1e6
        self.stream.write(
            f"\r{self.name:<40} [{bar:<24}] {frac:6.1%} {done / 1e6:8.1f} MB {rate:6.1f} MB/s"
        )
        if done >= self.total:
            self.stream.write("\n")
        self.stream.flush()
