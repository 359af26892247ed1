"""A furnace log against its anneal's plan. Pure: no Django.

:func:`furnace_log_check`: did each planned dwell hold its temperature (within ± tolerance,
default 5 K) for at least its planned time? Timing is known only to ± one sample period, so a
hold short by less than one period is a warning, not a failure. Rules: docs/depositions.md.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence

from depositions.furnace.profile import Profile
from depositions.qc import FAIL, PASS, WARN, CheckResult

DEFAULT_TOLERANCE_K = 5.0


def furnace_log_check(
    *,
    profile: Profile,
    times_s: Sequence[float],
    temperatures_c: Sequence[float],
    tolerance_k: float = DEFAULT_TOLERANCE_K,
) -> list[CheckResult]:
    """Check every planned dwell against the log.

    For dwell i at T for D seconds, searching after the previous dwell:
    - the dwell starts at the first sample within T ± tolerance;
    - ``dwell_i_duration``: time from there to the last sample before the log leaves the
      band (or ends): pass >= D, warn >= D - one sample period, else fail;
    - ``dwell_i_temperature``: samples in [start, start + D]: pass when all are within the
      band, warn when only their mean is (short excursions), fail otherwise.
    """
    if tolerance_k <= 0:
        raise ValueError("the tolerance must be above zero")
    n = len(times_s)
    if n != len(temperatures_c):
        raise ValueError("times and temperatures differ in length")
    results: list[CheckResult] = []
    if n < 2:
        return [CheckResult("log_points", FAIL, float(n), 2.0, "fewer than 2 samples")]
    period = statistics.median(b - a for a, b in itertools.pairwise(times_s))
    results.append(
        CheckResult(
            "log_points",
            PASS,
            float(n),
            2.0,
            f"{n} samples over {times_s[-1] - times_s[0]:.0f} s, period {period:g} s",
        )
    )
    if not profile.dwells:
        results.append(CheckResult("dwells", WARN, 0.0, None, "the plan has no dwell"))
    cursor = 0
    for number, dwell in enumerate(profile.dwells, start=1):
        target, planned = dwell.target_c, dwell.duration_s
        prefix = f"dwell_{number}"
        enter = next(
            (i for i in range(cursor, n) if abs(temperatures_c[i] - target) <= tolerance_k), None
        )
        if enter is None:
            window = temperatures_c[cursor:] or temperatures_c
            closest = min(window, key=lambda v: abs(v - target))
            results.append(
                CheckResult(
                    f"{prefix}_temperature",
                    FAIL,
                    round(abs(closest - target), 3),
                    tolerance_k,
                    f"never within {target:g} ± {tolerance_k:g} degC; closest {closest:.1f} degC",
                )
            )
            results.append(
                CheckResult(
                    f"{prefix}_duration", FAIL, 0.0, planned, "the dwell temperature was not held"
                )
            )
            continue
        last = enter
        while last + 1 < n and abs(temperatures_c[last + 1] - target) <= tolerance_k:
            last += 1
        hold = times_s[last] - times_s[enter]
        ended = last + 1 >= n
        if hold >= planned:
            status = PASS
        elif hold + period >= planned:
            status = WARN
        else:
            status = FAIL
        why = "log ends inside the band" if ended else f"left the band at {times_s[last + 1]:g} s"
        results.append(
            CheckResult(
                f"{prefix}_duration",
                status,
                round(hold, 3),
                planned,
                f"held {hold:.0f} s of {planned:.0f} s planned from {times_s[enter]:g} s; {why}",
            )
        )
        stop = times_s[enter] + planned
        window_idx = [i for i in range(enter, n) if times_s[i] <= stop]
        values = [temperatures_c[i] for i in window_idx]
        worst = max(abs(v - target) for v in values)
        mean = statistics.fmean(values)
        if worst <= tolerance_k:
            t_status = PASS
        elif abs(mean - target) <= tolerance_k:
            t_status = WARN
        else:
            t_status = FAIL
        results.append(
            CheckResult(
                f"{prefix}_temperature",
                t_status,
                round(worst, 3),
                tolerance_k,
                f"mean {mean:.2f} degC, max deviation {worst:.2f} K over {len(values)} samples "
                f"(target {target:g} degC)",
            )
        )
        cursor = max(window_idx[-1], last) + 1 if window_idx else last + 1
    return results
