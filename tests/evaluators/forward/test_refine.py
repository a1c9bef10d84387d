"""Refinement through DebyeCalculator lowers Rw on a perturbed known structure."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.cluster import Octahedron

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.evaluators.forward import ForwardEvaluator, refine
from invdesign.io import read_pattern


@pytest.fixture
def target(tmp_path):
    """A 38-atom Pt octahedron and its G(r) (biso 0.5 Å^2, qdamp 0.04) as a measured file."""
    truth = Structure.from_ase(Octahedron("Pt", 4, 1, latticeconstant=3.924))
    r = np.round(np.arange(0.5, 14.0, 0.02), 4)
    path = tmp_path / "pt38.gr"
    path.write_text("[PDF]\nmode = xray\nqmin = 1.0\nqmax = 20.0\nqdamp = 0.04\n"
                    "#### start data\n" + "\n".join(f"{a} 1" for a in r))
    blank = read_pattern(path)  # only its grid and instrument are used (an all-zero G is refused)
    ev = ForwardEvaluator(blank, fit_range=(0.5, 14.0), dtype=torch.float64)
    g = ev.simulate([truth], biso=0.5)[0].numpy()
    path.write_text(path.read_text().split("#### start data")[0] + "#### start data\n"
                    + "\n".join(f"{a!r} {b!r}" for a, b in zip(r.tolist(), g.tolist(),
                                                               strict=True)))
    return truth, read_pattern(path)


def test_refinement_recovers_lattice_and_lowers_rw(target):
    truth, measured = target
    rng = np.random.default_rng(0)
    perturbed = Structure(truth.species, 1.025 * truth.positions
                          + rng.normal(0.0, 0.04, truth.positions.shape), None, "particle")
    result = refine(perturbed, measured, fit_range=(1.5, 14.0), steps=12, lr=0.01,
                    lattice_points=5)
    assert result.rw_before > 0.3
    assert result.rw_after < 0.5 * result.rw_before
    assert result.lattice_scale == pytest.approx(1 / 1.025, abs=0.01)
    assert result.biso == pytest.approx(0.5, abs=0.3)
    assert result.history[0] < result.rw_before  # the lattice scan alone already helps
    assert result.steps == 12 and len(result.history) == 13
    # the guard: no pair closer than 0.9 x its (scaled) starting distance or 0.8 x radii sum
    start = result.lattice_scale * perturbed.min_distance()
    assert result.min_distance >= min(0.9 * start, 0.8 * 2 * 1.35) - 1e-6
    d = result.structure.distance_matrix()
    first_shell = d[(d > 2.3) & (d < 3.2)]  # the perturbation moved it to 1.025 x 2.775 Å
    assert first_shell.mean() == pytest.approx(3.924 / np.sqrt(2), rel=0.005)
    assert set(result.params) == {"scale", "lattice_scale", "biso", "qdamp"}
    assert result.structure.n_atoms == truth.n_atoms and result.structure.kind == "particle"


def test_refinement_with_fixed_positions_only_scales(target):
    truth, measured = target
    result = refine(Structure(truth.species, 1.02 * truth.positions), measured, steps=3,
                    positions=False, biso=False, fit_range=(1.5, 14.0), lattice_points=5)
    ratio = result.structure.distance_matrix()[0, 1:] / (1.02 * truth.distance_matrix()[0, 1:])
    np.testing.assert_allclose(ratio, result.lattice_scale, rtol=1e-9)
    assert result.biso == measured.biso and result.rw_after < result.rw_before


def test_refine_refuses_unit_cells(target):
    _, measured = target
    cell = Structure.from_fractional([78], [[0, 0, 0]], np.eye(3) * 2.8)
    with pytest.raises(InvdesignError, match="periodic"):
        refine(cell, measured)


def test_guard_pairs_match_the_dense_penalty_for_moves_within_reach():
    from invdesign.core import elements
    from invdesign.evaluators.forward.refine import _guard_pairs, _reach, _violation

    rng = np.random.default_rng(1)
    start = Structure.from_ase(Octahedron("Pt", 5, 1, latticeconstant=3.924))  # 79 atoms
    steps, lr = 20, 0.005
    pairs, limits = _guard_pairs(start, 0.8, 1.0, _reach(steps, lr))
    assert 0 < len(pairs) < start.n_atoms * (start.n_atoms - 1) // 2  # a true subset
    d0 = start.distance_matrix()
    radius = float(elements.atomic_radius(78))
    dense_limit = np.minimum(0.8 * 2 * radius, 0.9 * d0)
    # every move an Adam run of `steps` steps can make: up to 3.2 lr per coordinate and step
    move = rng.uniform(-1, 1, start.positions.shape) * 3.2 * lr * steps
    xyz = torch.as_tensor(start.positions + move)
    d = torch.cdist(xyz, xyz).numpy()
    iu = np.triu_indices(start.n_atoms, 1)
    dense = float((np.maximum(dense_limit[iu] - d[iu], 0.0) ** 2).sum())
    assert dense > 0  # the moves do violate the guard somewhere
    assert float(_violation(xyz, pairs, limits)) == pytest.approx(dense, rel=1e-12)
