"""CHILI graph edges: i, j bonded when d_ij < 1.25 (r_i + r_j), r the Slater atomic radius.

If no pair qualifies, the fallback bonds every pair with d_ij < 1.1 x the smallest distance (CHILI
Appendix A.3). Unit cells are periodic: a bond to a periodic image of j is an edge i -> j (one per
image, so a small cell can hold several edges between the same two atoms, and an atom can bond to
its own image). Pairs come from ASE's neighbour list for periodic cells and from a scipy k-d tree
for finite particles.
"""

from __future__ import annotations

import numpy as np
from ase.neighborlist import neighbor_list
from scipy.spatial import cKDTree

from invdesign.core import elements
from invdesign.core.structure import Structure
from invdesign.data.layout import GraphArrays

BOND_SCALE = 1.25
FALLBACK_SCALE = 1.1


def _pairs(
    structure: Structure, cutoffs: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Directed pairs (i, j, d) with d < c_i + c_j (per-atom cutoffs) or d < cutoff (a scalar)."""
    cut = np.broadcast_to(np.asarray(cutoffs, dtype=float), (structure.n_atoms,))
    if structure.is_periodic:

        return neighbor_list(
            "ijd", structure.to_ase(), np.ascontiguousarray(cut), self_interaction=False
        )

    pos = structure.positions
    pairs = cKDTree(pos).query_pairs(2.0 * float(cut.max()), output_type="ndarray").reshape(-1, 2)
    i = np.concatenate([pairs[:, 0], pairs[:, 1]])
    j = np.concatenate([pairs[:, 1], pairs[:, 0]])
    d = np.linalg.norm(pos[i] - pos[j], axis=1)
    keep = d < cut[i] + cut[j]
    return i[keep], j[keep], d[keep]


def _min_distance(structure: Structure) -> float:
    """Smallest interatomic distance in Å (minimum image for cells; k-d tree for particles)."""
    if structure.is_periodic:
        return structure.min_distance()
    if structure.n_atoms < 2:
        return float("inf")

    d, _ = cKDTree(structure.positions).query(structure.positions, k=2)
    return float(d[:, 1].min())


def bond_edges(structure: Structure) -> tuple[np.ndarray, np.ndarray]:
    """Edges of `structure` by the CHILI rule.

    Returns:
        edge_index: [2, m] int64, both directions, sorted by (source, target, distance).
        edge_attr: [m] float64, bond length in Å.
    """
    if structure.n_atoms == 0:
        return np.zeros((2, 0), dtype=np.int64), np.zeros(0)
    radii = elements.atomic_radius(structure.species)  # Å
    # neighbor_list with per-atom cutoffs c_i pairs atoms with d < c_i + c_j
    i, j, d = _pairs(structure, BOND_SCALE * radii)
    keep = d < BOND_SCALE * (radii[i] + radii[j])
    i, j, d = i[keep], j[keep], d[keep]
    if i.size == 0:
        d_min = _min_distance(structure)
        if not np.isfinite(d_min):
            return np.zeros((2, 0), dtype=np.int64), np.zeros(0)
        i, j, d = _pairs(structure, FALLBACK_SCALE * d_min)
        keep = d < FALLBACK_SCALE * d_min
        i, j, d = i[keep], j[keep], d[keep]
    order = np.lexsort((np.round(d, 6), j, i))
    return np.stack([i[order], j[order]]).astype(np.int64), d[order]


def graph_arrays(structure: Structure, parent_cell: np.ndarray | None = None) -> GraphArrays:
    """The CHILI graph of a structure: node features, edges, absolute and fractional positions.

    Args:
        structure: a unit cell or a particle; positions [n, 3] Å.
        parent_cell: [3, 3] rows Å, the cell fractional coordinates refer to (a particle's parent
        unit cell);
            defaults to the structure's own cell. Without either, `pos_frac` is zeros.
    """
    edge_index, edge_attr = bond_edges(structure)
    cell = structure.cell if parent_cell is None else np.asarray(parent_cell, dtype=float)
    if cell is None:
        frac = np.zeros_like(structure.positions)
    else:
        frac = np.linalg.solve(cell.T, structure.positions.T).T
    return GraphArrays(
        node_features=elements.node_features(structure.species),
        edge_index=edge_index,
        edge_attr=edge_attr.astype(np.float32),
        pos_frac=frac.astype(np.float32),
        pos_abs=structure.positions.astype(np.float32),
    )
