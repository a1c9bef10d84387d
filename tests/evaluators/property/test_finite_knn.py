"""`finite_knn` (k-d tree) against a brute-force neighbour list: same neighbours, same order."""

from __future__ import annotations

import numpy as np
import pytest
from ase.cluster import Icosahedron, Octahedron

from invdesign.evaluators.property.graphs import finite_knn


def brute_force(pos: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair distance (n x n): nearest first, distances equal to 1e-6 Å tied, ties by the
    lower neighbour index, the atom itself never its own neighbour."""
    n = len(pos)
    k_eff = min(k, n - 1)
    dist = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)
    key = np.round(dist * 1e6).astype(np.int64) * (n + 1) + np.arange(n)[None, :]
    np.fill_diagonal(key, np.iinfo(np.int64).max)
    nbr = np.argsort(key, axis=1)[:, :k_eff]
    return nbr.reshape(-1), np.repeat(np.arange(n), k_eff)


def cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        # lattice shells: 12 neighbours at one distance, ties decided by index
        "octahedron": Octahedron("Pt", 7, 2).positions,
        "icosahedron": Icosahedron("Pt", 4).positions,
        "random": rng.normal(size=(300, 3)) * 5.0,
        # integer grid: long tie runs past the tree's margin
        "grid": np.round(rng.normal(size=(200, 3)) * 3.0),
        # every atom twice: distance-0 neighbours besides the atom itself
        "doubled": np.concatenate([Octahedron("Pt", 5, 1).positions] * 2),
        "one_point": np.zeros((5, 3)),
        "pair": rng.normal(size=(2, 3)),
    }


@pytest.mark.parametrize("name", list(cases()))
@pytest.mark.parametrize("k", [1, 4, 12, 30])
def test_kd_tree_neighbours_equal_the_brute_force_ones(name, k):
    pos = cases()[name]
    src, dst, shift = finite_knn(pos, k)
    want_src, want_dst = brute_force(pos, k)
    np.testing.assert_array_equal(src, want_src)
    np.testing.assert_array_equal(dst, want_dst)
    assert shift.shape == (src.size, 3) and not shift.any()


def test_a_single_atom_has_no_neighbours():
    src, dst, shift = finite_knn(np.zeros((1, 3)), 12)
    assert src.size == dst.size == 0 and shift.shape == (0, 3)
