"""The NumPy circuit model (cells.eis.circuits) against impedance.py, its reference."""

from __future__ import annotations

import numpy as np
import pytest
from impedance.models.circuits.fitting import wrapCircuit

from cells.eis.circuits import EVALUATOR, Unsupported, compile_circuit
from cells.eis.fit import CIRCUITS, circuit_impedance, evaluator, fit_circuit, parameter_names

F = np.logspace(7, -3, 101)
W = 2 * np.pi * F

# Every element the model knows, series inside parallel inside series, and the three measurement
# circuits with the series inductor a fit adds for inductive spectra.
MODELLED = [
    *CIRCUITS.values(),
    "L0-" + CIRCUITS["cell_interfaces"],
    "R0-p(R1-Wo1,C1)-p(R2,La1)-Ws1",
    "p(R1,C1,L1)-W1-CPE1",
    "R0-p(p(R1,CPE1)-R2,C2)",
]


def _reference(circuit: str, params: np.ndarray) -> np.ndarray:
    stacked = wrapCircuit(circuit, {})(F, *params)
    return stacked[: F.size] + 1j * stacked[F.size :]


def _random_params(circuit: str, rng: np.random.Generator) -> np.ndarray:
    """Positive values over the ranges spectra have; exponents in (0.4, 1]."""
    out = []
    for _, unit in parameter_names(circuit):
        if unit == "":
            out.append(rng.uniform(0.4, 1.0))
        else:
            span = {"Ohm": (0, 4), "F": (-10, -3), "H": (-9, -5), "sec": (-4, 2)}.get(
                unit, (-8, -2)
            )
            out.append(10 ** rng.uniform(*span))
    return np.asarray(out)


@pytest.mark.parametrize("circuit", MODELLED)
def test_impedance_equals_impedance_py(circuit: str) -> None:
    model = compile_circuit(circuit)
    assert list(model.names) == [n for n, _ in parameter_names(circuit)]
    rng = np.random.default_rng(abs(hash(circuit)) % 2**32)
    for _ in range(20):
        p = _random_params(circuit, rng)
        ref = _reference(circuit, p)
        z = model.impedance(p, W)
        assert np.max(np.abs(z - ref) / np.abs(ref)) <= 1e-10
        assert np.max(np.abs(circuit_impedance(circuit, p, F) - ref) / np.abs(ref)) <= 1e-10


@pytest.mark.parametrize("circuit", MODELLED)
def test_jacobian_equals_central_differences(circuit: str) -> None:
    """p dZ/dp (what the log-parameter fit uses) against central differences in ln p, per point
    relative to |Z| (the fit's modulus weighting)."""
    model = compile_circuit(circuit)
    rng = np.random.default_rng(7)
    h = 1e-5
    for _ in range(5):
        p = _random_params(circuit, rng)
        z, d = model.jacobian(p, W)
        assert np.array_equal(z, model.impedance(p, W))
        for i in range(p.size):
            up, down = p.copy(), p.copy()
            up[i] *= np.exp(h)
            down[i] *= np.exp(-h)
            fd = (model.impedance(up, W) - model.impedance(down, W)) / (2 * h)
            assert np.max(np.abs(p[i] * d[:, i] - fd) / np.abs(z)) <= 1e-7, model.names[i]


def test_other_elements_fall_back_to_impedance_py() -> None:
    """An element the model lacks (Gerischer G) is evaluated and fitted by impedance.py, and the
    fit says so."""
    circuit = "R0-p(R1,C1)-G1"
    with pytest.raises(Unsupported, match="G1"):
        compile_circuit(circuit)
    true = [10.0, 100.0, 1e-6, 50.0, 0.1]
    f = np.logspace(5, -1, 40)
    z = circuit_impedance(circuit, true, f)
    fit = fit_circuit(f, z, circuit, initial_guess=[12.0, 80.0, 2e-6, 40.0, 0.2])
    assert fit.versions["evaluator"] == evaluator(circuit)
    assert fit.versions["evaluator"].startswith("impedance.py")
    for p, t in zip(fit.parameters, true, strict=True):
        assert p.value == pytest.approx(t, rel=1e-4)
    modelled = fit_circuit(f, z, "R0-p(R1,C1)")
    assert modelled.versions["evaluator"] == EVALUATOR
    assert modelled.versions["impedance"] and modelled.versions["scipy"]


@pytest.mark.parametrize("bad", ["R0-p(R1)", "R0-X1", "R0-p(R1,CPE1"])
def test_circuits_it_cannot_read_are_refused(bad: str) -> None:
    with pytest.raises(Unsupported):
        compile_circuit(bad)
