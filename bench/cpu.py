"""CPU seconds by component over a window, read from /proc (Linux): where the cores went.

A throughput figure alone does not say whether more worker processes could help: this says
how many core-seconds the web, the workers, PostgreSQL, Redis and the load generator each
used while the files were ingested, and how busy the machine was in all.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _group(cmdline: str, comm: str, bench_pid: int, pid: int) -> str | None:
    if pid == bench_pid:
        return "load generator"
    if "gunicorn" in cmdline or "runserver" in cmdline:
        return "web"
    if "celery" in cmdline and " worker" in cmdline:
        return "worker"
    if "celery" in cmdline and " beat" in cmdline:
        return "beat"
    if comm.startswith("postgres") or cmdline.startswith("postgres"):
        return "postgresql"
    if comm.startswith("redis"):
        return "redis"
    return None


def _proc_times() -> dict[int, tuple[str, float]]:
    """pid -> (group, own + reaped children's CPU seconds) for the processes of interest.

    Reaped children count with their parent (PostgreSQL's postmaster reaps the backends of
    closed connections), so nothing that ran and exited inside the window is missed.
    """
    bench_pid = os.getpid()
    out: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        group = _group(cmdline, comm, bench_pid, int(entry.name))
        if group is None:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        # fields[11..14] = utime, stime, cutime, cstime (stat(5) fields 14-17)
        ticks = sum(int(f) for f in fields[11:15])
        out[int(entry.name)] = (group, ticks / _TICK)
    return out


def _machine() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])
    return (total - idle) / _TICK, total / _TICK


class CpuWindow:
    """``start()`` before the load, ``stop()`` after: core-seconds by component."""

    def start(self) -> None:
        self._procs = _proc_times()
        self._machine = _machine()

    def stop(self) -> dict[str, float]:
        procs = _proc_times()
        busy, total = _machine()
        by_group: dict[str, float] = defaultdict(float)
        for pid, (group, seconds) in procs.items():
            before = self._procs.get(pid)
            by_group[group] += seconds - (before[1] if before and before[0] == group else 0.0)
        wall_cores = total - self._machine[1]
        by_group["machine busy"] = busy - self._machine[0]
        by_group["machine capacity"] = wall_cores
        return dict(by_group)


def describe(usage: dict[str, float], files: int) -> str:
    """One line: core-ms per file by component, and how full the cores were."""
    order = ("worker", "web", "postgresql", "redis", "beat", "load generator")
    parts = [
        f"{name} {usage[name] * 1000 / files:.0f}"
        for name in order
        if usage.get(name, 0.0) > 0.0005 * files
    ]
    capacity = usage.get("machine capacity") or 1.0
    busy = usage.get("machine busy", 0.0)
    return (
        "core-ms per file: "
        + ", ".join(parts)
        + f"; machine {busy / capacity:.0%} busy ({busy:.1f} of {capacity:.1f} core-s)"
    )
