"""Fit quality and fit time of the automatic equivalent-circuit fit (in process, no stack).

Run on demand:
``.venv/bin/python bench/eis_fit_quality.py [--repeat N] [--set grid|random|fixtures|all]``.

(1) Generated set: 72 ``bulk_grain_boundary`` spectra R0-p(R1,CPE1)-p(R2,CPE2)-CPE3, 71 points
    1 MHz .. 0.1 Hz, R0 = 50, bulk arc R1 = 1000 ohm at 100 kHz (a1 0.9), grain boundary
    R2 = 1000 ohm with its apex at f2 in {1 kHz, 300, 100, 30 Hz}, a2 in {0.7, 0.85}, blocking
    tail Q3 in {1e-6, 1e-5, 1e-4}, a3 in {0.6, 0.8, 0.9}. Once exact and once with 0.5 % complex
    Gaussian noise (seeded). A fit is in a wrong minimum when its chi-square exceeds, by more than
    1 %, that of the same fit started from the true parameters; beside it the count of fits with
    R1 or R2 off the truth by more than 1 % (exact) or 10 % (noisy), which noise alone can cause.
(2) Random sets (``--n-random`` per circuit, seeded), each of the three measurement circuits, the
    same 71 frequencies: R0 1-100, R1 100-100k ohm with its apex at 1-300 kHz, R2 0.1-10 x R1
    with its apex 1.5-4 decades lower (>= 1 Hz), exponents a1 0.75-1, a2 0.6-0.95, a tail CPE's
    0.5-0.95 (blocking pellet: its CPE2 0.5-0.95); the tail (CPE or Warburg) from
    0.05 to 30 x R2 (two arcs) or 0.3-30 x R1 a decade below the arc (blocking pellet) at the
    apex. Same criteria as (1).
(3) Real fixtures (tests/fixtures/eis/, read by the project's readers, first sweep) fitted with
    each of the three measurement circuits: time, rms relative residual and the fitted
    high-frequency resistance against the model-free intercept (issue: within 2 %).

Fit times are the best of ``--repeat`` runs per spectrum (the machine is shared); p50/p90/max
are over spectra. Target (issue 10): the fit itself <= 0.5 s.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cells.eis.fit import (  # noqa: E402
    CIRCUITS,
    circuit_impedance,
    fit_circuit,
    high_frequency_intercept,
    parameter_names,
)

F = np.logspace(6, -1, 71)
F2 = (1e3, 300.0, 100.0, 30.0)
A2 = (0.7, 0.85)
Q3 = (1e-6, 1e-5, 1e-4)
A3 = (0.6, 0.8, 0.9)


def generated() -> list[tuple[str, list[float]]]:
    r0, r1, f1, a1, r2 = 50.0, 1000.0, 1e5, 0.9, 1000.0
    out = []
    for f2, a2, q3, a3 in itertools.product(F2, A2, Q3, A3):
        q1 = 1 / (r1 * (2 * math.pi * f1) ** a1)
        q2 = 1 / (r2 * (2 * math.pi * f2) ** a2)
        out.append((f"f2={f2:g} a2={a2} Q3={q3:g} a3={a3}", [r0, r1, q1, a1, r2, q2, a2, q3, a3]))
    return out


def timed_fit(f, z, circuit: str, repeat: int):
    best = math.inf
    fit = None
    for _ in range(repeat):
        t = time.perf_counter()
        fit = fit_circuit(f, z, circuit)
        best = min(best, time.perf_counter() - t)
    return fit, best


def summary(times: list[float]) -> str:
    a = np.asarray(times) * 1000
    return (
        f"p50 {np.percentile(a, 50):6.1f} ms  p90 {np.percentile(a, 90):6.1f} ms  "
        f"max {a.max():6.1f} ms"
    )


def random_set(circuit: str, n: int, seed: int) -> list[tuple[str, list[float]]]:
    """``n`` parameter sets of ``circuit`` drawn log-uniformly over the ranges of the docstring."""
    rng = np.random.default_rng(seed)

    def lu(lo: float, hi: float) -> float:
        return float(10 ** rng.uniform(math.log10(lo), math.log10(hi)))

    def cpe(r: float, f_apex: float, a: float) -> float:
        return 1 / (r * (2 * math.pi * f_apex) ** a)

    out = []
    for i in range(n):
        r0, r1, f1, a1 = lu(1, 100), lu(100, 1e5), lu(1e3, 3e5), rng.uniform(0.75, 1.0)
        if circuit == "blocking_pellet":
            a2 = rng.uniform(0.5, 0.95)
            # tail |Z| a decade below the arc: 0.3 .. 30 R1
            q2 = 1 / (lu(0.3, 30) * r1 * (2 * math.pi * f1 / 10) ** a2)
            params = [r0, r1, cpe(r1, f1, a1), a1, q2, a2]
        else:
            r2 = r1 * lu(0.1, 10)
            f2 = max(f1 / lu(30, 1e4), 1.0)
            a2 = rng.uniform(0.6, 0.95)
            head = [r0, r1, cpe(r1, f1, a1), a1, r2, cpe(r2, f2, a2), a2]
            if circuit == "bulk_grain_boundary":
                a3 = rng.uniform(0.5, 0.95)
                # tail |Z| at the grain-boundary apex: 0.1 .. 30 R2
                params = [*head, 1 / (lu(0.1, 30) * r2 * (2 * math.pi * f2) ** a3), a3]
            else:
                # Warburg |Z| at the second apex: 0.05 .. 2 R2
                params = [*head, lu(0.05, 2) * r2 * math.sqrt(2 * math.pi * f2) / math.sqrt(2)]
        out.append((f"{circuit} #{i}", params))
    return out


def bench_set(
    title: str, circuit: str, cases: list[tuple[str, list[float]]], repeat: int, verbose: bool
) -> None:
    """Fit every case exact and with 0.5 % noise; print times and wrong minima."""
    circ = CIRCUITS[circuit]
    arcs = [n for n in ("R1", "R2") if n in [p for p, _ in parameter_names(circ)]]
    for noise, tol in ((0.0, 0.01), (0.005, 0.10)):
        times, wrong, off = [], [], []
        for k, (label, params) in enumerate(cases):
            z = circuit_impedance(circ, params, F)
            if noise:
                rng = np.random.default_rng(1000 + k)
                z = z * (
                    1 + noise * (rng.standard_normal(F.size) + 1j * rng.standard_normal(F.size))
                )
            fit, dt = timed_fit(F, z, circuit, repeat)
            times.append(dt)
            # The fit started from the true parameters: the minimum the automatic start should find.
            ref = fit_circuit(F, z, circuit, initial_guess=params)
            rs = {n: fit.value(n) for n in arcs}
            line = (
                f"{label}: "
                + " ".join(
                    f"{n} {v:.4g} (true {params[1 if n == 'R1' else 4]:.4g})" for n, v in rs.items()
                )
                + f" chi2 {fit.chi_square:.3g} (from the truth {ref.chi_square:.3g})"
            )
            if fit.chi_square > 1.01 * ref.chi_square + 1e-12:
                wrong.append(line)
            if any(abs(v / params[1 if n == "R1" else 4] - 1) > tol for n, v in rs.items()):
                off.append(line)
            if verbose:
                print(f"  {dt * 1000:7.1f} ms  {line}")
        kind = "exact" if not noise else f"{noise:.1%} noise"
        print(
            f"{title}, {len(times)} spectra ({kind}): {summary(times)}\n"
            f"    wrong minima {len(wrong)} (chi2 > 1.01 x the fit started from the truth); "
            f"{'/'.join(arcs)} off the truth by > {tol:.0%}: {len(off)}"
        )
        for w in wrong:
            print(f"    wrong minimum: {w}")
        if verbose:
            for w in off:
                if w not in wrong:
                    print(f"    off the truth (same chi2 as from the truth): {w}")


def bench_fixtures(repeat: int) -> None:
    from cells.eis.parsers import PARSERS
    from lims.ingestion.parsing import ParseContext

    times = []
    for path in sorted((ROOT / "tests" / "fixtures" / "eis").iterdir()):
        if path.suffix == ".py":
            continue
        head = path.read_bytes()[:65536]
        parser = max((p() for p in PARSERS), key=lambda p: p.sniff(head, path.name))
        points = parser.parse(path, ParseContext(filename=path.name)).points
        first = points.filter(points["sweep"] == points["sweep"].min())
        f = first["f_hz"].to_numpy().astype(float)
        z = first["z_real_ohm"].to_numpy() + 1j * first["z_imag_ohm"].to_numpy()
        intercept = high_frequency_intercept(f, z)
        for circuit in CIRCUITS:
            fit, dt = timed_fit(f, z, circuit, repeat)
            times.append(dt)
            if intercept is None:
                hfr = "no intercept in the data"
            else:
                dev = fit.high_frequency_resistance / intercept - 1
                hfr = f"HFR/intercept - 1 = {dev:+.2%}" + ("" if abs(dev) <= 0.02 else "  > 2 %")
            print(
                f"  {path.name[:38]:38s} {f.size:3d} pts {circuit:20s} {dt * 1000:7.1f} ms  "
                f"rms {fit.rms_relative:.3f}  {hfr}"
            )
    print(f"fixtures x 3 circuits, {len(times)} fits: {summary(times)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per spectrum (best is kept)")
    ap.add_argument("--verbose", action="store_true", help="one line per generated spectrum")
    ap.add_argument("--set", choices=("grid", "random", "fixtures", "all"), default="all")
    ap.add_argument("--n-random", type=int, default=40, help="random spectra per circuit")
    args = ap.parse_args()
    if args.set in ("grid", "all"):
        bench_set(
            "grid bulk_grain_boundary",
            "bulk_grain_boundary",
            generated(),
            args.repeat,
            args.verbose,
        )
    if args.set in ("random", "all"):
        for seed, circuit in enumerate(CIRCUITS):
            cases = random_set(circuit, args.n_random, seed)
            bench_set(f"random {circuit}", circuit, cases, args.repeat, args.verbose)
    if args.set in ("fixtures", "all"):
        bench_fixtures(args.repeat)


if __name__ == "__main__":
    main()
