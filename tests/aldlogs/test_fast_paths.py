"""The fast paths of parsing, detection and checks give exactly what the plain ways give.

Each shortcut (chunk views instead of copies, shared window blocks, one regex pass) is
compared with the reference computation it replaces, on data with NaN, nulls, duplicates,
edge windows and many chunks.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from depositions.aldlogs import checks, pulses
from depositions.aldlogs.parsers import labview, tabular
from depositions.aldlogs.parsers.tabular import ColumnSpec
from depositions.aldlogs.parsers.types import Channel
from lims.ingestion import text


def _chunked(values: np.ndarray, pieces: int = 7) -> pl.Series:
    parts = [pl.Series("x", part) for part in np.array_split(values, pieces)]
    series = pl.concat(parts, rechunk=False)
    assert series.n_chunks() == pieces
    return series


def test_every_is_gather_every() -> None:
    series = _chunked(np.arange(10_007, dtype=float))
    for step in (1, 3, 9, 10, 4000):
        expected = series.gather_every(step).to_numpy()
        assert np.array_equal(checks._every(series, step), expected)


def test_search_sorted_is_polars_search_sorted() -> None:
    times = np.repeat(np.arange(0.0, 500.0, 0.5), 2)  # duplicates across chunk edges
    series = _chunked(times, 9)
    probes = [-1.0, 0.0, 0.25, 3.0, 137.5, 250.0, 499.5, 600.0, float("nan")]
    for value in probes:
        for side in ("left", "right"):
            expected = int(series.search_sorted(value, side=side))
            assert checks._search_sorted(series, value, side) == expected, (value, side)


def _windows(n: int, m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    lo = np.sort(rng.integers(0, n, m))
    lo[:3] = 0
    hi = np.minimum(lo + rng.integers(0, 14, m), n)
    hi[-2:] = n
    return lo, hi


def test_baseline_windows_are_gather_and_window_diffs() -> None:
    rng = np.random.default_rng(3)
    p = rng.normal(1.8, 0.01, 5_000)
    p[rng.integers(0, p.size, 60)] = np.nan
    lo, hi = _windows(p.size, 400, rng)
    baseline, diffs = pulses._baseline_windows(p, lo, hi)
    expected = pulses._gather(p.__getitem__, p.size, lo, hi, "median")
    assert np.array_equal(baseline, expected, equal_nan=True)
    assert np.array_equal(diffs, pulses._window_diffs(p, lo, hi), equal_nan=True)


def test_peak_and_area_are_three_gathers() -> None:
    rng = np.random.default_rng(4)
    n = 5_000
    t = np.round(np.arange(n) * 0.5 + rng.normal(0, 0.0004, n), 3)
    p = rng.normal(1.8, 0.01, n)
    p[rng.integers(0, n, 60)] = np.nan
    i0, i1 = _windows(n, 400, rng)
    i1 = np.minimum(np.maximum(i1, i0 + 1), n)
    i_peak = np.minimum(np.maximum(i0 + (i1 - i0) // 2, i0 + 1), n)
    last_dt = (t[-1] + 0.5) - t[-1]
    peak, sum_pdt, sum_dt = pulses._peak_and_area(p, t, 0.5, i0, i_peak, i1)
    expected = (
        pulses._gather(lambda i: pulses._pair_mean(p, i), n, i0, i_peak, "max"),
        pulses._gather(lambda i: pulses._p_dt(p, t, last_dt, i)[0], n, i0, i1, "sum"),
        pulses._gather(lambda i: pulses._p_dt(p, t, last_dt, i)[1], n, i0, i1, "sum"),
    )
    for got, want in zip((peak, sum_pdt, sum_dt), expected, strict=True):
        assert np.array_equal(got, want, equal_nan=True)


@pytest.mark.parametrize(
    "values",
    [
        ["1.5", "2", "-3e-4", ".5", "+7"],
        ["", "  ", "1"],
        [],
        ["1.5", "abc", "2"],
        ["abc", "def", "1"],
        ["N/A", "--", "1"],
        ["1.5", "2 3"],
        ["1\n2"],
    ],
)
def test_numeric_sample_fast_path(values: list[str]) -> None:
    filled = [v.strip() for v in values if v.strip()]
    words = [
        v for v in filled if v.upper() not in labview._MISSING and not labview._NUMBER.match(v)
    ]
    assert labview._numeric_sample(values) is (len(words) * 2 <= len(filled))


def test_binary_offset() -> None:
    allowed = set(b"\t\n\r\x0b\x0c\x1a") | set(range(0x20, 0x100))
    for head in (b"plain\ttext\n", b"ab\x00cd\x01", b"\xba\xb2 ok\x1b", b""):
        first = next((i for i, byte in enumerate(head) if byte not in allowed), None)
        assert text.binary_offset(head) == first


def test_series_from_fills_nan_only_where_there_is_some() -> None:
    frame = pl.DataFrame(
        {
            "time_s": [0.0, 0.5, 1.0],
            "p": [1.0, float("nan"), 2.0],
            "q": [1.0, None, 2.0],
            "v": pl.Series([0, 1, 0], dtype=pl.Int8),
        }
    )
    specs = [
        ColumnSpec(name, Channel(name, "other", "", name), 2.0 if name == "q" else 1.0)
        for name in ("p", "q", "v")
    ]
    series = tabular.series_from(frame, specs)
    reference = frame.select(
        pl.col("time_s"),
        pl.col("p").fill_nan(None),
        (pl.col("q") * 2.0).fill_nan(None),
        pl.col("v").cast(pl.Float64),
    )
    assert series.equals(reference)
    assert series.schema == reference.schema
