"""Forward simulation on a measured grid: equal to direct DebyeCalculator calls; Rw; gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.cluster import Octahedron

from invdesign.core.errors import InvdesignError
from invdesign.core.patterns import PatternSpec
from invdesign.core.structure import Structure
from invdesign.evaluators.base import evaluator_class
from invdesign.evaluators.forward import ForwardEvaluator, fit_scale, pearson, rw
from invdesign.io import read_pattern
from invdesign.physics.calculator import simulate


def pt38() -> Structure:
    return Structure.from_ase(Octahedron("Pt", 4, 1, latticeconstant=3.924))


def write_pdf(path, r, g, qmin=1.0, qmax=20.0, qdamp=0.04):
    header = (f"[PDF]\nmode = xray\ncomposition = Pt\nqmin = {qmin}\nqmax = {qmax}\n"
              f"qdamp = {qdamp}\n")
    # full precision: DebyeCalculator's r grid is float32 arange values (1.07 -> 1.0700000524...)
    rows = "\n".join(f"{a!r} {b!r}" for a, b in zip(r.tolist(), g.tolist(), strict=True))
    path.write_text(header + "#### start data\n#L r G\n" + rows + "\n")
    return path


@pytest.mark.parametrize("radiation", ["xray", "neutron"])
def test_pdf_on_a_measured_grid_equals_a_direct_debyecalculator_call(tmp_path, shared_data,
                                                                      radiation):
    from debyecalculator import DebyeCalculator

    structure = pt38()
    ni = read_pattern(shared_data / "measured" / "Ni-xray.gr")  # r = 0.01..20 Å, qmax 40
    calc = DebyeCalculator(qmin=ni.qmin, qmax=ni.qmax, qstep=0.05, qdamp=0.04, biso=0.3,
                           rmin=0.0, rmax=20.0, rstep=0.01, radiation_type=radiation,
                           dtype=torch.float64)
    r, g = calc.gr((structure.symbols, torch.as_tensor(structure.positions)))
    r, g = np.asarray(r, dtype=np.float64), np.asarray(g, dtype=np.float64)
    np.testing.assert_allclose(r[1:], ni.x[:-1], atol=1e-6)  # the measured grid
    path = tmp_path / "pt.gr"
    rows = "\n".join(f"{a!r} {b!r}" for a, b in zip(r.tolist(), g.tolist(), strict=True))
    path.write_text(f"[PDF]\nmode = {radiation}\nqmin = {ni.qmin}\nqmax = {ni.qmax}\n"
                    f"qdamp = 0.04\n#### start data\n{rows}\n")
    measured = read_pattern(path)
    assert measured.radiation == radiation
    ev = ForwardEvaluator(measured, fit_range=(1.5, 19.0), dtype=torch.float64, qstep=0.05)
    mask = (r >= 1.5) & (r <= 19.0)
    np.testing.assert_allclose(ev.simulate([structure])[0].numpy(), g[mask], rtol=1e-8,
                               atol=1e-10)
    (record,) = ev.evaluate([structure])
    assert record["rw"] < 1e-8 and record["scale"] == pytest.approx(1.0, abs=1e-8)


def test_pdf_on_measured_grid_equals_the_simulate_adapter(tmp_path):
    structure = pt38()
    # the project's adapter around DebyeCalculator.gr (qdamp 0.04 is DebyeCalculator's default)
    spec = PatternSpec("t", "t", "gr", "xray", 1.0, 20.0, 0.05, 0.0, 12.0, 0.01, biso=0.3)
    r, g = simulate(structure, spec, dtype=torch.float64)
    measured = read_pattern(write_pdf(tmp_path / "pt.gr", r, g))
    ev = ForwardEvaluator(measured, fit_range=(1.5, 10.0), dtype=torch.float64, qstep=0.05)
    mask = (r >= 1.5) & (r <= 10.0)
    np.testing.assert_allclose(ev.x, r[mask], atol=1e-12)
    calc = ev.simulate([structure])[0].numpy()
    np.testing.assert_allclose(calc, g[mask], rtol=1e-8, atol=1e-10)
    (record,) = ev.evaluate([structure])
    assert record["rw"] < 1e-8 and record["scale"] == pytest.approx(1.0, abs=1e-8)
    assert record["pearson"] == pytest.approx(1.0) and (record["fit_min"], record["fit_max"]) == (
        1.5, 10.0)


def test_xrd_on_measured_grid_equals_direct_debyecalculator(tmp_path):
    structure = pt38()
    spec = PatternSpec("x", "x", "iq", "xray", 1.0, 8.0, 0.005, biso=0.3)
    q, i = simulate(structure, spec, dtype=torch.float64)
    q, i = q[20:-20:7], i[20:-20:7]  # a coarser measured grid inside the range
    path = tmp_path / "x.xy"
    rows = "\n".join(f"{a!r} {b!r}" for a, b in zip(q.tolist(), i.tolist(), strict=True))
    path.write_text("# q_A^-1 I\n" + rows)
    measured = read_pattern(path, kind="xrd")
    ev = ForwardEvaluator(measured, dtype=torch.float64)
    np.testing.assert_allclose(ev.simulate([structure])[0].numpy(), i, rtol=1e-6)
    (record,) = ev.evaluate([structure])
    assert record["rw"] < 1e-6 and record["pearson"] == pytest.approx(1.0)


def test_batched_simulation_matches_single_calls(tmp_path):
    a, b = pt38(), Structure.from_ase(Octahedron("Pt", 3, 0, latticeconstant=3.924))
    r = np.round(np.arange(0.5, 12.0, 0.02), 4)
    measured = read_pattern(write_pdf(tmp_path / "g.gr", r, np.sin(r)))
    ev = ForwardEvaluator(measured, dtype=torch.float64)
    both = ev.simulate([a, b])
    assert both.shape == (2, ev.x.size)
    torch.testing.assert_close(both[1], ev.simulate([b])[0])
    records = ev.evaluate([a, b])
    assert [rec["n_atoms"] for rec in records] == [a.n_atoms, b.n_atoms] == [38, 19]
    assert ev.fit_range == (1.5, 11.98)


def test_metrics_on_hand_made_curves():
    obs = np.array([1.0, 2.0, 3.0])
    value, scale = rw(obs, 2 * obs)
    assert float(scale) == pytest.approx(0.5) and float(value) == pytest.approx(0.0, abs=1e-12)
    calc = np.array([1.0, 0.0, 0.0])
    value, scale = rw(obs, calc)  # s = 1, residual (0, 2, 3)
    assert float(scale) == 1.0 and float(value) == pytest.approx(np.sqrt(13 / 14))
    assert float(fit_scale(obs, np.zeros(3))) == 0.0
    assert float(pearson(obs, -3 * obs + 1)) == pytest.approx(-1.0)


def test_gradients_reach_positions_and_biso(tmp_path):
    structure = pt38()
    r = np.round(np.arange(1.0, 10.0, 0.01), 4)
    measured = read_pattern(write_pdf(tmp_path / "g.gr", r, np.exp(-r) * np.sin(4 * r)))
    ev = ForwardEvaluator(measured, dtype=torch.float64)
    xyz = torch.tensor(structure.positions, requires_grad=True)
    biso = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    value, _ = rw(ev.obs, ev.calculator([(structure.symbols, xyz)], biso=biso)[0])
    value.backward()
    assert torch.isfinite(xyz.grad).all() and xyz.grad.abs().sum() > 0
    h = 1e-5  # central finite difference of Rw in biso
    plus = rw(ev.obs, ev.simulate([structure], biso=0.4 + h)[0])[0]
    minus = rw(ev.obs, ev.simulate([structure], biso=0.4 - h)[0])[0]
    assert float(biso.grad) == pytest.approx(float(plus - minus) / (2 * h), rel=1e-5)


def test_registry_periodic_and_fit_range_refusals(tmp_path):
    assert evaluator_class("forward") is ForwardEvaluator
    r = np.round(np.arange(0.5, 5.0, 0.01), 4)
    measured = read_pattern(write_pdf(tmp_path / "g.gr", r, np.sin(r)))
    cell = Structure.from_fractional([78], [[0, 0, 0]], np.eye(3) * 2.8)
    with pytest.raises(InvdesignError, match="periodic unit cell"):
        ForwardEvaluator(measured).evaluate([cell])
    with pytest.raises(InvdesignError, match="fewer than 10 points") as info:
        ForwardEvaluator(measured, fit_range=(6.0, 30.0))
    assert str(info.value).startswith(str(tmp_path / "g.gr"))
