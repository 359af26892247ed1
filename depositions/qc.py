"""Check results and how they add up, shared by the tool-log and furnace-log checks.

Pure (no Django), like the checkers that produce them. The statuses are the values of the
``CheckStatus`` choices the check rows are stored with (a test keeps the two equal).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

PASS, WARN, FAIL = "pass", "warn", "fail"
STATUSES = (PASS, WARN, FAIL)  # best to worst


@dataclass(frozen=True)
class CheckResult:
    """One check: its name, status, the measured value against its threshold, and why."""

    name: str
    status: str  # pass | warn | fail
    value: float | None
    threshold: float | None
    details: str

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"check {self.name}: unknown status {self.status!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def worst_status(statuses: Iterable[str]) -> str:
    """fail if any fails, else warn if any warns, else pass (nothing checked: pass)."""
    seen = set(statuses)
    return next((s for s in reversed(STATUSES) if s in seen), PASS)


def overall_status(results: Iterable[CheckResult]) -> str:
    """The worst status of the results: a verdict is never better than its worst check."""
    return worst_status(r.status for r in results)
