"""Test-only parser and handler whose behaviour the file itself orders: sleep, die, allocate.

Installed in the test process and in the lease tests' worker (``tests.runtime_worker``), never
in production. A file is ``#lims-runtime-test`` then one command line:
``sleep <s>``, ``die`` (SIGKILL its own process, as the OOM killer would),
``alloc <MiB>`` (one allocation of that size) or ``polars <rows>`` (a frame that size).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

MAGIC = b"#lims-runtime-test"
KIND = "runtime_test"


class RuntimeTestParser:
    name = "runtime_test"
    version = "1"
    kind = KIND
    extensions: tuple[str, ...] = (".rtt",)

    def sniff(self, head: bytes, filename: str) -> float:
        return 1.0 if head.startswith(MAGIC) else 0.0

    def parse(self, path: Path, ctx: Any) -> dict[str, Any]:
        command, _, arg = path.read_text().splitlines()[1].partition(" ")
        if command == "sleep":
            deadline = time.monotonic() + float(arg)
            while time.monotonic() < deadline:
                time.sleep(0.05)
        elif command == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        elif command == "alloc":
            block = bytearray(int(arg) * 1024 * 1024)
            return {"command": command, "bytes": len(block), "pid": os.getpid()}
        elif command == "polars":
            import numpy as np
            import polars as pl

            rows = int(arg)
            frame = pl.DataFrame({"i": np.arange(rows), "x": np.random.default_rng(1).random(rows)})
            total = frame.group_by(pl.col("i") % 100).agg(pl.col("x").sum())["x"].sum()
            return {"command": command, "rows": rows, "total": float(total), "pid": os.getpid()}
        return {"command": command, "pid": os.getpid()}


def _prepare(*, job: Any, data: dict[str, Any]) -> dict[str, Any]:
    return data


def _persist(*, job: Any, prepared: dict[str, Any]) -> Any:
    from lims.ingestion.registry import IngestOutcome

    return IngestOutcome(status="succeeded", result=dict(prepared))


def install() -> None:
    from lims.ingestion import registry

    registry.register_parser(RuntimeTestParser())
    registry.register_handler(KIND, prepare=_prepare, persist=_persist)
