"""Pulse detection and alignment to the expanded recipe.

Detection, in order of preference (what the log allows):

1. valve channels sampled as 0/1 (or analog with an on-threshold): a pulse is a run of on
   samples; start = first on sample, width = on samples x period (+- one period);
2. valve open/close events (event logs): width = close - open (+- the clock resolution);
3. pressure spikes, when pulses are shorter than the sampling period and no valve is logged:
   a sample above the trailing baseline by ``spike_k_sigma`` noise sigmas starts a pulse.

Every pulse then gets, from the chamber pressure: the baseline (median of the
``baseline_window_s`` before the start), the peak (highest mean of two consecutive samples
over the pulse + ``peak_tail_s``: one noisy sample cannot make a dead pulse look alive, a real
response lasts longer than one sample), the rise (peak - baseline), the area above the baseline
over the pulse + ``tail_s`` (Torr*s) and the residual (pressure left above the baseline just
before the next pulse or at the end of the purge window); from a QCM mass channel: the mass
gained from just before the pulse to the end of its purge. The baseline noise sigma is the
robust spread of sample-to-sample differences inside the pre-pulse windows (where no transient
is), pooled over the run. A pulse whose rise is below ``dead_k_sigma`` sigmas is dead.

Everything is vectorised over samples (numpy gathers over pulses x window); only the
alignment walks the pulses (thousands, not hundreds of thousands) in Python.
"""

from __future__ import annotations

import itertools
import math
import re
import warnings as pywarnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, NamedTuple

import numpy as np
import polars as pl

from depositions.aldlogs.parsers.types import AldLog, Channel, PulseEvent
from depositions.choices import DOSE_KINDS
from depositions.expansion import PlannedStep, RecipeSpec
from lims.ingestion.parsing import ParseError

MAX_GATHER = 4096  # window samples gathered per pulse at once; longer windows go one by one
# At most this many values in one gathered block (pulses x window samples: 32 MB of floats).
# More pulses are gathered in turns: neither a file's pulse count nor its sample period
# (a 1 us clock makes a 5 s baseline window 5 million samples) sizes an allocation.
BLOCK_VALUES = 1 << 22
# The run's pooled baseline noise is the spread of at most this many differences, taken
# evenly from all baseline windows (all of them in any real log).
POOLED_DIFFS = 1 << 21
# All measurement windows of a log together may hold at most this many samples (a real log
# holds ~1e5-1e6): the time to measure grows with it, and a microsecond clock under thousands
# of pulses would make it 1e10. Such a log is refused with the numbers, not measured for hours.
MAX_WINDOW_SAMPLES = 200_000_000
# A trailing (spike baseline) median over more samples than this reads every k-th sample.
MAX_TRAILING = 256
# auto: valve events, else valve channels, else (no valve pulse at all) pressure spikes;
# "pressure" is for tools whose doses are shorter than the sample period of their valve log.
DETECTION_MODES = (
    "auto",
    "events",
    "valves",
    "pressure",
)


@dataclass(frozen=True)
class DetectionOptions:
    """Windows of the per-pulse measurements (defaults documented in docs/ald-checks.md)."""

    baseline_window_s: float = 5.0
    peak_tail_s: float = 2.0
    tail_s: float = 3.0
    qcm_window_s: float = 2.0
    end_window_s: float = 2.0
    dead_k_sigma: float = 3.0
    spike_k_sigma: float = 5.0
    pressure_channel: str | None = None
    purge_window_s: float | None = None  # None: median start-to-start interval of the run
    mode: str = "auto"  # auto | events | valves | pressure (see DETECTION_MODES)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> DetectionOptions:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in (data or {}).items() if k in names})


# --- channels ----------------------------------------------------------------------------------


def pressure_channel(log: AldLog, name: str | None = None) -> Channel | None:
    """The chamber pressure channel: ``name`` if given, else one named chamber/reactor/process,
    else the first pressure channel that has values."""
    candidates = [
        ch for ch in log.by_role("pressure") if log.series[ch.name].null_count() < log.series.height
    ]
    if name is not None:
        for ch in log.channels:
            if name in (ch.name, ch.source_column, ch.physical_channel):
                return ch
        return None
    for ch in candidates:
        if ch.zone == "chamber" or any(
            w in ch.name.lower() for w in ("chamber", "reactor", "process")
        ):
            return ch
    return candidates[0] if candidates else None


def qcm_channel(log: AldLog) -> Channel | None:
    for ch in log.by_role("qcm_mass"):
        if log.series[ch.name].null_count() < log.series.height:
            return ch
    return None


def _label_lookup(log: AldLog, source_map: dict[str, Any] | None) -> dict[str, str]:
    """Channel name -> chemical label from ``source_map`` (keys: channel, physical channel or
    port) or from the log's own ``valve_sources`` metadata."""
    out: dict[str, str] = {}
    known = log.metadata.get("valve_sources") or {}
    for ch in log.by_role("valve"):
        label = None
        for key in (ch.name, ch.physical_channel, ch.port):
            if source_map and key and key in source_map:
                value = source_map[key]
                label = value.get("label") if isinstance(value, dict) else str(value)
                break
        if label is None and ch.name in known:
            label = known[ch.name].get("label")
        if label:
            out[ch.name] = label
    return out


# --- detection ----------------------------------------------------------------------------------


def noise_sigma(values: np.ndarray) -> float | None:
    """Run-level baseline noise: 1.4826 x MAD of first differences / sqrt(2)."""
    finite = values[np.isfinite(values)]
    if finite.size < 3:
        return None
    d = np.diff(finite)
    mad = float(np.median(np.abs(d - np.median(d))))
    sigma = 1.4826 * mad / math.sqrt(2.0)
    if sigma > 0:
        return sigma
    nonzero = np.abs(d[d != 0])
    return float(nonzero.min()) if nonzero.size else 0.0


def _samples(seconds: float, period: float, n: int, least: int) -> int:
    """A window of ``seconds`` in samples, at least ``least``, at most the log (``n``), also
    for a zero, absurdly small or non-finite period read from a file."""
    ratio = seconds / period if period > 0 else math.inf
    if not math.isfinite(ratio):
        return max(least, n)
    return int(min(max(least, round(ratio)), max(least, n)))


def _row_chunks(rows: int, width: int) -> list[slice]:
    """Slices of ``rows`` pulses whose gathered ``width``-sample blocks hold at most
    :data:`BLOCK_VALUES` values each."""
    step = max(1, BLOCK_VALUES // max(width, 1))
    return [slice(a, min(a + step, rows)) for a in range(0, rows, step)]


def _window_diffs(p: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Sample-to-sample differences inside each window ``[lo, hi)`` (pulses x width-1, NaN pad)."""
    lengths = np.clip(hi - lo, 0, None)
    width = int(lengths.max()) if lengths.size else 0
    if width < 2:
        return np.full((lo.size, 1), np.nan)
    idx = lo[:, None] + np.arange(width)[None, :]
    block = np.where(idx < hi[:, None], p[np.clip(idx, 0, p.size - 1)], np.nan)
    diffs: np.ndarray = np.diff(block, axis=1)
    return diffs


def _robust_sigma(diffs: np.ndarray) -> float:
    mad = float(np.median(np.abs(diffs - np.median(diffs))))
    return 1.4826 * mad / math.sqrt(2.0)


def baseline_noise(p: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float | None:
    """Noise sigma of the baseline: robust spread of sample-to-sample differences inside the
    pre-pulse windows ``[lo, hi)`` (1.4826 x MAD / sqrt(2)), pooled over the run.

    Differences are used rather than deviations from each window's median, which
    underestimate sigma for windows of a few samples; too few differences (< 8) fall back to
    the whole run's differences.
    """
    return _baseline_stats(p, lo, hi)[2]


def _pooled_sigma(p: np.ndarray, d: np.ndarray) -> float | None:
    diffs = d[np.isfinite(d)]
    if diffs.size < 8:
        return noise_sigma(p)
    sigma = _robust_sigma(diffs)
    if sigma > 0:
        return sigma
    nonzero = np.abs(diffs[diffs != 0])
    return float(nonzero.min()) / 2.0 if nonzero.size else 0.0


def local_noise(p: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The same spread per pulse, from its own baseline window (noisy stretches of a run)."""
    return _baseline_stats(p, lo, hi)[1]


def _local_sigma(d: np.ndarray) -> np.ndarray:
    centre = _row_median(d)[:, None]
    mad = _row_median(np.abs(d - centre))
    out: np.ndarray = 1.4826 * mad / math.sqrt(2.0)
    return out


# A power channel is a plasma generator's when its name says so (or the tool maps it to a
# source): a heater's power in W is not a dose.
_PLASMA_NAME = re.compile(r"\b(rf|plasma|forward|fwd|icp|ccp|generator|rpg)\b", re.IGNORECASE)
PLASMA_MIN_W = 5.0  # on = above max(5 W, 10 % of the channel's highest reading)


def _plasma_channels(log: AldLog, labels: dict[str, str]) -> list[Channel]:
    columns = set(log.series.columns)
    return [
        ch
        for ch in log.by_role("power")
        if ch.name in columns
        and (
            ch.name in labels
            or _PLASMA_NAME.search(ch.name.replace("_", " "))
            or _PLASMA_NAME.search((ch.source_column or "").replace("_", " "))
        )
    ]


def _from_valve_channels(
    log: AldLog,
    channels: Sequence[Channel],
    labels: dict[str, str],
    t: np.ndarray,
    *,
    detection: str = "valve_channel",
) -> list[PulseEvent]:
    """Runs of on-samples: valves (on above 0.5, or the channel's on-threshold) or plasma
    power (``detection="power"``: above max(5 W, 10 % of the highest reading); each pulse
    carries its median power)."""
    n = t.size
    period = log.sample_period_s or (float(np.median(np.diff(t))) if n > 1 else 1.0)
    # one sample period, plus the clock's jitter (LabVIEW loops run 0.499-0.501 s)
    uncertainty = period + float((log.metadata.get("time_base") or {}).get("jitter_s") or 0.0)
    pulses: list[PulseEvent] = []
    highest = log.series.select(pl.col(ch.name).max() for ch in channels).row(0)
    plasma = detection == "power"
    for ch, top in zip(channels, highest, strict=True):
        if ch.on_threshold is not None:
            threshold = ch.on_threshold
        elif plasma:
            threshold = max(PLASMA_MIN_W, 0.1 * (top or 0.0))
        else:
            threshold = 0.5
        if top is None or top <= threshold:
            continue  # never opened: most digital outputs of a tool are unused
        column = log.series[ch.name]
        values = (column.fill_null(0.0) if column.null_count() else column).to_numpy()
        on = values > threshold
        # state changes, closed before the first and after the last sample: they alternate
        # start (first on-sample), end (first off-sample, exclusive)
        bounds = np.flatnonzero(np.diff(on, prepend=False, append=False))
        starts, ends = bounds[0::2], bounds[1::2]
        if starts.size == 0:
            continue
        within = ends < n
        widths = np.where(within, t[np.minimum(ends, n - 1)] - t[starts], (ends - starts) * period)
        source = ch.port if ch.port and ch.port != ch.name else ch.name
        first = len(pulses)
        # PulseEvent(index, source, source_label, channel, detection, start_s, width_s,
        # width_uncertainty_s), positionally through map: thousands of pulses per run
        pulses.extend(
            map(
                PulseEvent,
                itertools.count(),
                itertools.repeat(source),
                itertools.repeat(labels.get(ch.name)),
                itertools.repeat(ch.name),
                itertools.repeat(detection),
                t[starts].astype(float).tolist(),
                widths.astype(float).tolist(),
                itertools.repeat(uncertainty),
            )
        )
        if plasma:  # few per run: a loop is fine
            for pulse, a, b in zip(pulses[first:], starts.tolist(), ends.tolist(), strict=True):
                pulse.power_w = float(np.median(values[a:b]))
        if starts[0] == 0:
            pulses[first].flags.append("open_at_log_start")
        if ends[-1] >= n:
            pulses[-1].flags.append("open_at_log_end")
    return pulses


def _from_valve_events(log: AldLog, labels: dict[str, str]) -> list[PulseEvent]:
    resolution = float(log.metadata.get("time_resolution_s") or log.sample_period_s or 1.0)
    by_channel: dict[str, list[tuple[float, float]]] = {}
    for e in log.events:
        if e.kind == "valve" and e.channel and e.value is not None:
            by_channel.setdefault(e.channel, []).append((e.time_s, e.value))
    last_t = max((e.time_s for e in log.events), default=0.0)
    ports = {ch.name: ch.port for ch in log.by_role("valve")}
    pulses: list[PulseEvent] = []
    for name, items in by_channel.items():
        opened: float | None = None
        for t, value in sorted(items, key=lambda x: x[0]):
            if value > 0.5 and opened is None:
                opened = t
            elif value <= 0.5 and opened is not None:
                pulses.append(_event_pulse(name, ports, labels, opened, t - opened, resolution, []))
                opened = None
        if opened is not None:
            pulses.append(
                _event_pulse(
                    name, ports, labels, opened, last_t - opened, resolution, ["open_at_log_end"]
                )
            )
    return pulses


def _event_pulse(
    name: str,
    ports: dict[str, str | None],
    labels: dict[str, str],
    start: float,
    width: float,
    resolution: float,
    flags: list[str],
) -> PulseEvent:
    port = ports.get(name)
    return PulseEvent(
        index=0,
        source=name if not port or port == name.split()[-1] else port,
        source_label=labels.get(name),
        channel=name,
        detection="valve_event",
        start_s=start,
        width_s=max(width, 0.0),
        width_uncertainty_s=resolution,
        flags=flags,
    )


def _from_pressure_spikes(
    t: np.ndarray, p: np.ndarray, period: float, opts: DetectionOptions, sigma: float
) -> list[PulseEvent]:
    nb = _samples(opts.baseline_window_s, period, p.size, 3)
    base = _trailing_median(p, nb)
    above = np.isfinite(p) & np.isfinite(base) & (p > base + opts.spike_k_sigma * sigma)
    edges = np.diff(above.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    pulses: list[PulseEvent] = []
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        pulses.append(
            PulseEvent(
                index=0,
                source="pressure",
                source_label=None,
                channel=None,
                detection="pressure_spike",
                start_s=float(t[s]),
                width_s=float((e - s) * period),
                width_uncertainty_s=float(period),
                flags=["width_is_pressure_response"],
            )
        )
    return pulses


def _trailing_median(p: np.ndarray, nb: int) -> np.ndarray:
    """Median of the ``nb`` samples before each sample (NaN for the first ``nb``)."""
    if p.size <= nb:
        return np.full(p.size, np.nan)
    if nb > MAX_TRAILING:
        # a window of more samples than that (a fast clock): the median of every k-th sample
        # of it, so that the work stays n x MAX_TRAILING whatever the file's sample period
        k = -(-nb // MAX_TRAILING)
        coarse = _trailing_median(p[::k], max(3, nb // k))
        return coarse[np.arange(p.size) // k]
    windows = np.lib.stride_tricks.sliding_window_view(p, nb)[:-1]
    out = np.full(p.size, np.nan)
    with pywarnings.catch_warnings():
        pywarnings.simplefilter("ignore", RuntimeWarning)
        for part in _row_chunks(windows.shape[0], nb):
            out[nb + part.start : nb + part.stop] = np.nanmedian(windows[part], axis=1)
    return out


def _gather(
    at: Callable[[np.ndarray], np.ndarray], size: int, lo: np.ndarray, hi: np.ndarray, fn: str
) -> np.ndarray:
    """Per-pulse reduction of the samples in ``[lo, hi)`` (NaN for empty windows), vectorised.

    ``at(indices)`` gives the samples at in-range indices, so that derived values (pair means,
    p x dt) are computed only inside the windows, never for the whole run.
    """
    out = np.full(lo.size, np.nan)
    if lo.size == 0 or size == 0:
        return out
    lengths = np.clip(hi - lo, 0, None)
    small = lengths <= MAX_GATHER
    with pywarnings.catch_warnings():
        pywarnings.simplefilter("ignore", RuntimeWarning)
        rows = np.flatnonzero(small)
        width = int(lengths[rows].max()) if rows.size else 0
        for part in _row_chunks(rows.size, width) if width > 0 else []:
            sel = rows[part]
            idx = lo[sel, None] + np.arange(width)[None, :]
            mask = idx < hi[sel, None]
            block = np.where(mask, at(np.clip(idx, 0, size - 1)), np.nan)
            out[sel] = _reduce(block, fn)
        for k in np.flatnonzero(~small):
            window = np.arange(lo[k], min(hi[k], size))
            out[k] = _reduce(at(window)[None, :], fn)[0]
    return out


def _reduce(block: np.ndarray, fn: str) -> np.ndarray:
    if fn == "median":
        return _row_median(block)
    if fn == "max":
        result: np.ndarray = np.nanmax(block, axis=1)
        return result
    summed: np.ndarray = np.nansum(block, axis=1)
    return summed


def _row_median(block: np.ndarray) -> np.ndarray:
    """Median of each row ignoring NaN (sort-based: numpy's nanmedian is slow on many rows)."""
    ordered = np.sort(block, axis=1)  # NaN sort last
    n = np.count_nonzero(~np.isnan(block), axis=1)
    rows = np.arange(block.shape[0])
    lo = np.clip((n - 1) // 2, 0, None)
    hi = np.clip(n // 2, 0, None)
    with np.errstate(invalid="ignore"):
        median = (ordered[rows, lo] + ordered[rows, hi]) / 2.0
    out: np.ndarray = np.where(n > 0, median, np.nan)
    return out


def _floats(column: pl.Series) -> np.ndarray:
    """A column as float64 with NaN for nulls, in one copy (fill_null only if there are any)."""
    values = column.cast(pl.Float64)
    return (values.fill_null(np.nan) if values.null_count() else values).to_numpy()


def _measure(
    log: AldLog,
    pulses: list[PulseEvent],
    opts: DetectionOptions,
    pressure: Channel | None,
    t: np.ndarray,
) -> float | None:
    """Fill baseline, peak, rise, area, residual, QCM delta and the dead flag in place.

    Only the time, pressure and QCM columns are read whole; everything derived from them is
    computed on the samples of the pulses' windows (a few percent of a long run).
    """
    if not pulses:
        return None
    n = t.size
    period = log.sample_period_s or (float(np.median(np.diff(t))) if n > 1 else 1.0)
    starts = np.fromiter(map(attrgetter("start_s"), pulses), float, len(pulses))
    widths = np.fromiter(map(attrgetter("width_s"), pulses), float, len(pulses))
    order = np.argsort(starts, kind="stable")
    next_start = np.full(starts.size, np.inf)
    next_start[order[:-1]] = starts[order[1:]]
    if opts.purge_window_s is not None:
        purge_window = opts.purge_window_s
    elif starts.size > 1:
        purge_window = float(np.median(np.diff(starts[order])))
    else:
        purge_window = opts.tail_s
    end_of_purge = np.minimum(next_start, starts + widths + purge_window)
    i0 = np.searchsorted(t, starts, side="left")
    i_end = np.searchsorted(t, end_of_purge, side="left")
    sigma: float | None = None
    unknown: list[float | None] = [None] * len(pulses)
    baseline_l = peak_l = rise_l = area_l = residual_l = local_l = qcm_l = unknown
    if pressure is not None and n:
        p = _floats(log.series[pressure.name])
        nb = _samples(opts.baseline_window_s, period, n, 3)
        lo = np.maximum(i0 - nb, 0)
        # peak: highest mean of two consecutive samples over the pulse + peak_tail_s
        i_peak = np.searchsorted(t, starts + widths + opts.peak_tail_s, side="right")
        i_peak = np.minimum(np.maximum(i_peak - 1, i0 + 1), n)
        i1 = np.searchsorted(t, starts + widths + opts.tail_s, side="right")
        i1 = np.minimum(np.maximum(i1, i0 + 1), n)
        ne = _samples(opts.end_window_s, period, n, 2)
        i_tail = np.maximum(i_end - ne, i0)
        _within_budget(len(pulses), period, (lo, i0), (i0, i1), (i_tail, i_end))
        baseline, local, sigma = _baseline_stats(p, lo, i0)
        # area = sum((p - baseline) * dt) over the window = sum(p*dt) - baseline * sum(dt)
        peak, sum_pdt, sum_dt = _peak_and_area(p, t, period, i0, i_peak, i1)
        area = sum_pdt - baseline * sum_dt
        end_p = _gather(p.__getitem__, n, i_tail, i_end, "median")
        baseline_l, peak_l, rise_l = _opt(baseline), _opt(peak), _opt(peak - baseline)
        area_l, residual_l, local_l = _opt(area), _opt(end_p - baseline), _opt(local)
    qcm = qcm_channel(log)
    if qcm is not None and n:
        m = _floats(log.series[qcm.name])
        nq = _samples(opts.qcm_window_s, period, n, 1)
        _within_budget(len(pulses), period, (np.maximum(i0 - nq, 0), i0), (i_end - nq, i_end))
        before = _gather(m.__getitem__, n, np.maximum(i0 - nq, 0), i0, "median")
        after = _gather(m.__getitem__, n, np.maximum(i_end - nq, i0), i_end, "median")
        qcm_l = _opt(after - before)
    # fresh pulses (all None): what was not measured stays None
    for pulse, b, pk, rise, a, residual, local_sigma, delta, end in zip(
        pulses,
        baseline_l,
        peak_l,
        rise_l,
        area_l,
        residual_l,
        local_l,
        qcm_l,
        _opt(end_of_purge),
        strict=True,
    ):
        pulse.baseline, pulse.peak, pulse.rise, pulse.area = b, pk, rise, a
        pulse.residual, pulse.baseline_sigma, pulse.qcm_delta = residual, local_sigma, delta
        pulse.noise_sigma, pulse.end_of_purge_s = sigma, end
    mark_dead(pulses, opts.dead_k_sigma)
    return sigma


def _within_budget(pulses: int, period: float, *windows: tuple[np.ndarray, np.ndarray]) -> None:
    """ParseError when the windows ``[lo, hi)`` hold more than :data:`MAX_WINDOW_SAMPLES`."""
    total = sum(int(np.clip(hi - lo, 0, None).sum()) for lo, hi in windows)
    if total > MAX_WINDOW_SAMPLES:
        raise ParseError(
            f"{pulses} pulses on a {period:.3g} s sample clock make {total:,} samples to "
            f"measure around them, more than {MAX_WINDOW_SAMPLES:,}: check the log's time "
            "column (its unit, or a clock that does not advance)",
            location="time column",
        )


def _baseline_stats(
    p: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Median and local noise sigma of each baseline window ``[lo, hi)``, and the run's pooled
    noise sigma, gathered :data:`BLOCK_VALUES` values at a time."""
    lengths = np.clip(hi - lo, 0, None)
    width = int(lengths.max()) if lengths.size else 0
    baseline, local = np.full(lo.size, np.nan), np.full(lo.size, np.nan)
    stride = max(1, -(-int(np.clip(lengths - 1, 0, None).sum()) // POOLED_DIFFS))
    pooled: list[np.ndarray] = []
    for part in _row_chunks(lo.size, width):
        median, diffs = _baseline_windows(p, lo[part], hi[part])
        baseline[part], local[part] = median, _local_sigma(diffs)
        pooled.append(diffs[np.isfinite(diffs)][::stride])
    return baseline, local, _pooled_sigma(p, np.concatenate(pooled) if pooled else np.empty(0))


def _baseline_windows(
    p: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Median of each baseline window and the sample-to-sample differences inside it.

    Both come from one gathered block when every window is short enough to gather at once
    (the usual case); the same values as ``_gather(..., "median")`` and ``_window_diffs``.
    """
    lengths = np.clip(hi - lo, 0, None)
    width = int(lengths.max())
    if width > MAX_GATHER:
        return _gather(p.__getitem__, p.size, lo, hi, "median"), _window_diffs(p, lo, hi)
    if width == 0:
        return np.full(lo.size, np.nan), np.full((lo.size, 1), np.nan)
    idx = lo[:, None] + np.arange(width)[None, :]
    block = np.where(idx < hi[:, None], p[np.clip(idx, 0, p.size - 1)], np.nan)
    diffs: np.ndarray = np.diff(block, axis=1) if width >= 2 else np.full((lo.size, 1), np.nan)
    return _row_median(block), diffs


def _peak_and_area(
    p: np.ndarray, t: np.ndarray, period: float, i0: np.ndarray, i_peak: np.ndarray, i1: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Peak pair mean over ``[i0, i_peak)``, sum(p*dt) and sum(dt) over ``[i0, i1)``.

    dt = the step to the next sample (one period after the last), 0 where p is missing. The
    peak windows end before the area windows, so one gathered block serves all three (a max
    ignores the extra padding); the sums keep the block width ``_gather`` would use.
    """
    last_dt = (t[-1] + period) - t[-1]
    size = p.size
    lengths = np.clip(i1 - i0, 0, None)
    width = int(lengths.max())
    if width == 0 or width > MAX_GATHER:
        return (
            _gather(lambda i: _pair_mean(p, i), size, i0, i_peak, "max"),
            _gather(lambda i: _p_dt(p, t, last_dt, i)[0], size, i0, i1, "sum"),
            _gather(lambda i: _p_dt(p, t, last_dt, i)[1], size, i0, i1, "sum"),
        )
    peak, sum_pdt, sum_dt = (np.full(i0.size, np.nan) for _ in range(3))
    for part in _row_chunks(i0.size, width):
        idx = i0[part, None] + np.arange(width)[None, :]
        at = np.clip(idx, 0, size - 1)
        in_area = idx < i1[part, None]
        # _pair_mean and _p_dt at the same samples, each sample and its successor gathered once
        values, after = p[at], np.minimum(at + 1, size - 1)
        inside = at < size - 1
        pair = np.where(inside, (values + p[after]) / 2.0, values)
        dt = np.where(inside, t[after] - t[at], last_dt)
        finite = np.isfinite(values)
        dt = np.where(finite, dt, 0.0)
        pdt = np.where(finite, values, 0.0) * dt
        with pywarnings.catch_warnings():
            pywarnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: NaN, as _gather
            peak[part] = np.nanmax(np.where(idx < i_peak[part, None], pair, np.nan), axis=1)
            sum_pdt[part] = np.nansum(np.where(in_area, pdt, np.nan), axis=1)
            sum_dt[part] = np.nansum(np.where(in_area, dt, np.nan), axis=1)
    return peak, sum_pdt, sum_dt


def _pair_mean(p: np.ndarray, i: np.ndarray) -> np.ndarray:
    """Mean of samples i and i + 1 (the last sample alone)."""
    last = p.size - 1
    pair: np.ndarray = np.where(i < last, (p[i] + p[np.minimum(i + 1, last)]) / 2.0, p[i])
    return pair


def _p_dt(
    p: np.ndarray, t: np.ndarray, last_dt: float, i: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """p x dt and dt at samples i, both 0 where p is missing."""
    last = t.size - 1
    dt = np.where(i < last, t[np.minimum(i + 1, last)] - t[i], last_dt)
    values = p[i]
    finite = np.isfinite(values)
    dt = np.where(finite, dt, 0.0)
    return np.where(finite, values, 0.0) * dt, dt


def _opt(values: np.ndarray) -> list[float | None]:
    """Floats with NaN/inf as None (what PulseEvent stores), converted in one pass."""
    finite = np.isfinite(values)
    if finite.all():
        return values.tolist()
    return [v if ok else None for v, ok in zip(values.tolist(), finite.tolist(), strict=True)]


def mark_dead(pulses: Iterable[PulseEvent], k_sigma: float) -> None:
    """Flag pulses whose pressure rise is below ``k_sigma`` noise sigmas (None: unknown).

    A rise of zero or less is dead whatever the noise: a gauge that reads the same value
    throughout (sigma 0) must not make a valve that did nothing pass. Plasma pulses are
    judged by their power, not the pressure (None).
    """
    for pulse in pulses:
        rise, sigma = pulse.rise, pulse.noise_sigma
        if rise is None or sigma is None or pulse.detection == "power":
            dead = None
        else:
            dead = rise <= 0.0 or rise < k_sigma * sigma
        pulse.dead = dead
        if dead:
            if "dead" not in pulse.flags:
                pulse.flags.append("dead")
        elif "dead" in pulse.flags:
            pulse.flags.remove("dead")


def detect_pulses(
    log: AldLog,
    *,
    source_map: dict[str, Any] | None = None,
    options: DetectionOptions | None = None,
) -> list[PulseEvent]:
    """Every pulse of the run, in time order, measured against the chamber pressure.

    ``source_map`` maps a valve (channel name, physical channel or port) to the chemical label
    (``{"Mod8/do1": "TMA"}``); without it the log's own ``valve_sources`` are used, else the
    pulses carry only their valve and alignment may infer labels from the plan.
    """
    opts = options or DetectionOptions()
    if opts.mode not in DETECTION_MODES:
        raise ValueError(f"unknown detection mode {opts.mode!r} (one of {DETECTION_MODES})")
    labels = _label_lookup(log, source_map)
    pressure = pressure_channel(log, opts.pressure_channel)
    columns = set(log.series.columns)
    valves = [
        ch
        for ch in log.by_role("valve")
        if ch.name in columns and log.series[ch.name].null_count() < log.series.height
    ]
    pulses: list[PulseEvent] = []
    mode = opts.mode
    t = log.series["time_s"].to_numpy()  # one copy for detection and measurement
    if mode in ("auto", "events") and any(e.kind == "valve" for e in log.events):
        pulses = _from_valve_events(log, labels)
    elif mode in ("auto", "valves") and valves:
        pulses = _from_valve_channels(log, valves, labels, t)
    # Doses shorter than the sample period can fall between two samples of a valve channel
    # and be seen only in the pressure: with no valve pulse at all, look for spikes.
    spikes = not pulses and mode in ("auto", "pressure") and pressure is not None
    if spikes and pressure is not None and log.series.height > 3:
        p = log.series[pressure.name].cast(float).fill_null(np.nan).to_numpy()
        period = log.sample_period_s or 1.0
        pulses = _from_pressure_spikes(t, p, period, opts, noise_sigma(p) or 0.0)
    # plasma steps: runs of forward power, whatever gave the valve pulses
    plasma = _plasma_channels(log, labels)
    if plasma:
        pulses += _from_valve_channels(log, plasma, labels, t, detection="power")
    # by (start, source): two stable sorts, without a key tuple per pulse
    pulses.sort(key=attrgetter("source"))
    pulses.sort(key=attrgetter("start_s"))
    for k, pulse in enumerate(pulses):
        pulse.index = k
    _measure(log, pulses, opts, pressure, t)
    return pulses


# --- alignment ----------------------------------------------------------------------------------


class PlannedDose(NamedTuple):
    """A dose of the expanded recipe with the non-dose time that follows it."""

    position: int  # 0-based among the run's planned doses
    source_label: str
    kind: str
    phase: str
    supercycle: int | None
    block: int | None
    subcycle: str | None
    repetition: int | None
    order: int
    start_s: float
    width_s: float
    purge_s: float


_PURGE = 11  # position of purge_s in a PlannedDose row


def planned_doses(plan: RecipeSpec | Iterable[PlannedStep]) -> list[PlannedDose]:
    """Doses in execution order; ``purge_s`` = time of the non-dose steps up to the next dose.

    A :class:`RecipeSpec` is walked sub-cycle by sub-cycle with the same arithmetic offsets as
    :func:`~depositions.expansion.iter_steps` (without building every step object): a
    2000-cycle recipe costs milliseconds.
    """
    rows: list[list[Any]] = []
    if not isinstance(plan, RecipeSpec):
        for step in plan:
            if step.kind in DOSE_KINDS:
                rows.append(
                    [
                        len(rows),
                        step.source_label,
                        step.kind,
                        step.phase,
                        step.supercycle,
                        step.block,
                        step.subcycle,
                        step.repetition,
                        step.order,
                        step.start_s,
                        step.duration_s,
                        0.0,
                    ]
                )
            elif rows:
                rows[-1][_PURGE] += step.duration_s
        return _as_tuples(rows)
    spec = plan

    def outside(phase: str, steps: Sequence[Any], t: float) -> None:
        for spec_step in steps:
            if spec_step.is_dose:
                head = [len(rows), spec_step.source_label, spec_step.kind, phase]
                tail = [spec_step.order, round(t, 6), spec_step.duration_s, 0.0]
                rows.append([*head, None, None, None, None, *tail])
            elif rows:
                rows[-1][_PURGE] += spec_step.duration_s
            t += spec_step.duration_s

    pre_s = math.fsum(s.duration_s for s in spec.pre_steps)
    outside("pre", spec.pre_steps, 0.0)
    block_starts: list[float] = []
    acc: list[float] = []
    for block in spec.blocks:
        block_starts.append(math.fsum(acc))
        acc.append(block.repeat * spec.subcycle(block.subcycle).duration_s)
    supercycle_s = math.fsum(acc)
    # per sub-cycle: (is_dose, offset, label, kind, order, duration) of each step, read once
    templates = {
        sc.name: [
            (item.is_dose, offset, item.source_label, item.kind, item.order, item.duration_s)
            for item, offset in zip(sc.steps, sc.offsets_s, strict=True)
        ]
        for sc in spec.subcycles
    }
    for k in range(spec.repeats):
        for b, block in enumerate(spec.blocks):
            sc = spec.subcycle(block.subcycle)
            name, template = sc.name, templates[sc.name]
            for r in range(block.repeat):
                base = pre_s + k * supercycle_s + block_starts[b] + r * sc.duration_s
                for is_dose, offset, label, kind, order, duration in template:
                    if is_dose:
                        start = round(base + offset, 6)
                        rows.append(
                            [
                                len(rows),
                                label,
                                kind,
                                "cycle",
                                k,
                                b,
                                name,
                                r,
                                order,
                                start,
                                duration,
                                0.0,
                            ]
                        )
                    elif rows:
                        rows[-1][_PURGE] += duration
    outside("post", spec.post_steps, pre_s + spec.repeats * supercycle_s)
    return _as_tuples(rows)


def _as_tuples(rows: list[list[Any]]) -> list[PlannedDose]:
    """The rows as PlannedDose, in place: each row list is freed as its tuple is made, so a
    long plan never holds twice its doses as live objects (fewer garbage collections)."""
    doses: list[Any] = rows
    for i, row in enumerate(rows):
        doses[i] = PlannedDose._make(row)
    return doses


def as_doses(plan: RecipeSpec | Iterable[PlannedStep] | Iterable[PlannedDose]) -> list[PlannedDose]:
    """Planned doses from a recipe, its expanded steps, or planned doses already."""
    if isinstance(plan, RecipeSpec):
        return planned_doses(plan)
    items: list[Any] = list(plan)
    if items and all(isinstance(d, PlannedDose) for d in items):
        return items
    return planned_doses(items)


def expected_counts(doses: Sequence[PlannedDose]) -> dict[str, int]:
    """Planned doses per source label, in order of first use."""
    return dict(Counter(map(attrgetter("source_label"), doses)))


@dataclass
class Alignment:
    """How the observed pulses map onto the planned doses."""

    planned: int
    observed: int
    matched: int
    missing: list[int] = field(default_factory=list)  # planned dose indices
    extra: list[int] = field(default_factory=list)  # pulse indices
    label_map: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def aligned(self) -> bool:
        return not self.missing and not self.extra

    def as_dict(self) -> dict[str, Any]:
        return {
            "planned": self.planned,
            "observed": self.observed,
            "matched": self.matched,
            "missing": len(self.missing),
            "extra": len(self.extra),
            "first_missing": self.missing[:20],
            "first_extra": self.extra[:20],
            "label_map": self.label_map,
            "notes": self.notes,
        }


def _key(pulse: PulseEvent) -> str:
    return pulse.source_label or pulse.source


def _infer_labels(pulses: Sequence[PulseEvent], labels: Sequence[str]) -> dict[str, str]:
    """Observed source -> planned label by order of first use (used when no label matches)."""
    seen_obs: list[str] = []
    for p in pulses:
        if p.source not in seen_obs:
            seen_obs.append(p.source)
    seen_plan = list(dict.fromkeys(labels))
    return dict(zip(seen_obs, seen_plan, strict=False))


def _agree(keys: Sequence[str], i: int, plan: Sequence[str], j: int, span: int) -> int:
    n = min(span, len(keys) - i, len(plan) - j)
    return sum(1 for m in range(max(n, 0)) if keys[i + m] == plan[j + m])


def align_to_plan(
    pulses: Sequence[PulseEvent],
    plan: RecipeSpec | Iterable[PlannedStep] | Iterable[PlannedDose],
    *,
    lookahead: int = 8,
    span: int = 12,
) -> Alignment:
    """Assign each pulse its planned dose (supercycle, block, sub-cycle, repetition, step).

    Walks both sequences in order. On a mismatch, either planned doses were skipped (a missing
    pulse) or the pulse is extra: the hypothesis under which the next ``span`` pulses agree
    with the plan more often wins, ties going to the one whose time since the last matched
    pulse is closer to the plan's. Pulses of a source the plan never names are extra. When no
    pulse carries a label the plan knows, labels are inferred from the order of first use;
    pressure-spike pulses (no valve) take the plan's labels in order.
    """
    doses = as_doses(plan)
    ordered = sorted(pulses, key=attrgetter("start_s"))
    result = Alignment(planned=len(doses), observed=len(ordered), matched=0)
    plan_labels = list(map(attrgetter("source_label"), doses))
    planset = set(plan_labels)
    # A pulse aligned before (to another plan) starts afresh: matched pulses get all their
    # alignment fields from _assign, the extra ones are cleared at the end.
    if ordered and all(p.detection == "pressure_spike" for p in ordered):
        for p, d in zip(ordered, doses, strict=False):
            p.source_label = d.source_label
            _flag(p, "label_from_plan_order")
            _assign(p, d)
        for p in ordered[len(doses) :]:
            _unassign(p)
        result.matched = min(len(ordered), len(doses))
        result.extra = [p.index for p in ordered[len(doses) :]]
        result.missing = list(range(len(ordered), len(doses)))
        result.notes.append("pressure-spike pulses: labels taken from the plan's order")
        return result
    keys = [p.source_label or p.source for p in ordered]
    if ordered and planset.isdisjoint(keys):
        mapping = _infer_labels(ordered, plan_labels)
        result.label_map = mapping
        for p in ordered:
            if p.source in mapping:
                p.source_label = mapping[p.source]
                if "label_inferred" not in p.flags:
                    p.flags.append("label_inferred")
        shown = ", ".join(f"{k} -> {v}" for k, v in mapping.items())
        result.notes.append(f"no pulse label matches the plan: inferred by first use ({shown})")
        keys = [p.source_label or p.source for p in ordered]
    unmatched: list[PulseEvent] = []
    i = j = 0
    last: tuple[int, int] | None = None
    while i < len(ordered):
        key = keys[i]
        if j >= len(doses) or key not in planset:
            unmatched.append(ordered[i])
            i += 1
            continue
        if plan_labels[j] == key:
            _assign(ordered[i], doses[j])
            last, i, j = (i, j), i + 1, j + 1
            result.matched += 1
            continue
        skip = next(
            (
                d
                for d in range(1, lookahead + 1)
                if j + d < len(doses) and plan_labels[j + d] == key
            ),
            None,
        )
        if skip is None:
            unmatched.append(ordered[i])
            i += 1
            continue
        score_skip = _agree(keys, i, plan_labels, j + skip, span) - skip
        score_extra = _agree(keys, i + 1, plan_labels, j, span) - 1
        if score_skip == score_extra and last is not None and i + 1 < len(ordered):
            li, lj = last
            err_skip = abs(
                (ordered[i].start_s - ordered[li].start_s)
                - (doses[j + skip].start_s - doses[lj].start_s)
            )
            err_extra = abs(
                (ordered[i + 1].start_s - ordered[li].start_s)
                - (doses[j].start_s - doses[lj].start_s)
            )
            take_skip = err_skip <= err_extra
        else:
            take_skip = score_skip >= score_extra
        if take_skip:
            result.missing.extend(range(j, j + skip))
            j += skip
            _assign(ordered[i], doses[j])
            last, i, j = (i, j), i + 1, j + 1
            result.matched += 1
        else:
            unmatched.append(ordered[i])
            i += 1
    for pulse in unmatched:
        _unassign(pulse)
    result.extra = [pulse.index for pulse in unmatched]
    result.missing.extend(range(j, len(doses)))
    if result.missing or result.extra:
        result.notes.append(
            f"{len(result.missing)} planned doses without a pulse, {len(result.extra)} pulses "
            "without a planned dose"
        )
    return result


def _flag(pulse: PulseEvent, flag: str) -> None:
    if flag not in pulse.flags:
        pulse.flags.append(flag)


def _unassign(pulse: PulseEvent) -> None:
    pulse.planned_index = pulse.phase = pulse.supercycle = pulse.block = None
    pulse.subcycle = pulse.repetition = pulse.step_order = None
    pulse.planned_width_s = pulse.planned_purge_s = None


def _assign(pulse: PulseEvent, dose: PlannedDose) -> None:
    # one unpacking of the dose (called once per pulse)
    position, _, _, phase, supercycle, block, subcycle, repetition, order, _, width, purge = dose
    pulse.planned_index, pulse.phase, pulse.supercycle = position, phase, supercycle
    pulse.block, pulse.subcycle, pulse.repetition = block, subcycle, repetition
    pulse.step_order, pulse.planned_width_s, pulse.planned_purge_s = order, width, purge
