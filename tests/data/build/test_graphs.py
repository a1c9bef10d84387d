"""Edge rule d < 1.25 (r_i + r_j) (Slater radii) and its 1.1 x smallest-distance fallback, on hand-
made inputs."""

from __future__ import annotations

import numpy as np
import pytest

from invdesign.core import elements
from invdesign.core.structure import Structure
from invdesign.data.build.graphs import bond_edges, graph_arrays
from invdesign.testing import chain, dimer, rock_salt_cell, simple_cubic_cell

R_O = float(elements.atomic_radius(8))  # 0.60 Å
CUT_OO = 1.25 * 2 * R_O  # 1.5 Å


def test_dimer_bonded_below_and_not_at_threshold() -> None:
    edges, dist = bond_edges(dimer(CUT_OO - 0.01))
    assert edges.tolist() == [[0, 1], [1, 0]]
    np.testing.assert_allclose(dist, [CUT_OO - 0.01] * 2)


def test_rule_uses_both_radii() -> None:
    # Zn (1.35 Å) - O (0.60 Å): bonded below 1.25 * 1.95 = 2.4375 Å; O-O at the same spacing is not.
    cut = 1.25 * (float(elements.atomic_radius(30)) + R_O)
    three = Structure([30, 8, 8], [[0, 0, 0], [cut - 0.05, 0, 0], [-(cut - 0.05), 0, 0]])
    edges, _ = bond_edges(three)
    assert sorted(map(tuple, edges.T.tolist())) == [(0, 1), (0, 2), (1, 0), (2, 0)]


def test_fallback_uses_smallest_distance() -> None:
    # No pair within 1.5 Å: bonds are the pairs below 1.1 x the smallest distance (2.0 Å -> 2.2 Å).
    atoms = chain([2.0, 2.1, 2.5])
    edges, dist = bond_edges(atoms)
    assert sorted(map(tuple, edges.T.tolist())) == [(0, 1), (1, 0), (1, 2), (2, 1)]
    assert dist.max() == pytest.approx(2.1)


def test_fallback_not_used_when_some_pair_qualifies() -> None:
    edges, _ = bond_edges(chain([1.4, 3.0]))
    assert sorted(map(tuple, edges.T.tolist())) == [(0, 1), (1, 0)]


def test_periodic_cell_bonds_to_images() -> None:
    # One Cu in a 3 Å cubic cell: 3 Å < 1.25 * 2 * 1.35 = 3.375 Å bonds it to its six images.
    edges, dist = bond_edges(simple_cubic_cell(3.0, 29))
    assert edges.shape == (2, 6) and np.all(edges == 0)
    np.testing.assert_allclose(dist, 3.0)
    # At 4 Å nothing qualifies: the fallback keeps the six images at the smallest distance.
    edges, dist = bond_edges(simple_cubic_cell(4.0, 29))
    assert edges.shape == (2, 6)
    np.testing.assert_allclose(dist, 4.0)


def test_rock_salt_mgo_edges() -> None:
    # MgO, a = 4.2: Mg-O 2.1 Å < 1.25 (1.5 + 0.6) = 2.625 -> 6 each; O-O 2.97 > 1.5;
    # Mg-Mg 2.97 < 3.75 -> 12 each.
    edges, dist = bond_edges(rock_salt_cell(4.2, 12, 8))
    species = np.array([12] * 4 + [8] * 4)
    pairs = species[edges[0]] * 100 + species[edges[1]]
    assert (pairs == 1208).sum() == 24 and (pairs == 812).sum() == 24
    assert (pairs == 1212).sum() == 48 and (pairs == 808).sum() == 0
    np.testing.assert_allclose(dist[pairs == 1208], 2.1)


def test_edges_symmetric_and_permutation_invariant() -> None:
    rng = np.random.default_rng(0)
    pos = rng.uniform(0, 6, size=(30, 3))
    species = rng.choice([8, 26], size=30)
    base = Structure(species, pos)
    edges, dist = bond_edges(base)
    as_set = {(i, j, round(d, 6)) for (i, j), d in zip(edges.T.tolist(), dist, strict=True)}
    assert as_set == {(j, i, d) for i, j, d in as_set}
    perm = rng.permutation(30)
    e2, d2 = bond_edges(Structure(species[perm], pos[perm]))
    mapped = {
        (int(perm[i]), int(perm[j]), round(d, 6))
        for (i, j), d in zip(e2.T.tolist(), d2, strict=True)
    }
    assert mapped == as_set


def test_graph_arrays_fractional_against_parent_cell() -> None:
    cell = rock_salt_cell(4.2)
    particle = Structure(cell.species[:2], cell.positions[:2] + [[4.2, 0, 0]])
    g = graph_arrays(particle, cell.cell)
    np.testing.assert_allclose(g.pos_frac, cell.frac_positions[:2] + [[1, 0, 0]], atol=1e-6)
    assert g.node_features.shape == (2, 4) and g.node_features[0, 0] == 12
