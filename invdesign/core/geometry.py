"""Geometric sanity of a structure: nearest-neighbour and minimum distances, and validity.

A structure is valid when no two atoms are closer than `MIN_DISTANCE_FRACTION` x the sum of their
atomic (Slater) radii: coincident or overlapping atoms (a collapsed sample, three atoms on one
point) are never valid. `sample` reports it per candidate, `screen` refuses to rank such a file.
Particles use a k-d tree (O(n log n)); unit cells the minimum-image distance matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from invdesign.core import elements
from invdesign.core.structure import Structure

#: A candidate is valid when no two atoms are closer than this fraction of the sum of their
#: atomic (Slater) radii.
MIN_DISTANCE_FRACTION = 0.7


def nn_distance(structure: Structure) -> float:
    """Median nearest-neighbour distance in Å (inf for a single atom)."""
    if not structure.is_periodic:
        return _particle_geometry(structure)["nn_distance"]
    d = structure.distance_matrix()
    if d.shape[0] < 2:
        return float("inf")
    np.fill_diagonal(d, np.inf)
    d[d < 1e-8] = np.inf  # an atom's own images are not neighbours of another atom
    return float(np.median(d.min(axis=1)))


def is_valid(structure: Structure) -> bool:
    """No pair of atoms closer than `MIN_DISTANCE_FRACTION` x the sum of their atomic radii."""
    if not structure.is_periodic:
        return _particle_geometry(structure)["valid"]
    if structure.n_atoms < 2:
        return structure.n_atoms == 1
    d = structure.distance_matrix()
    limit = MIN_DISTANCE_FRACTION * _pair_radii(structure)
    np.fill_diagonal(d, np.inf)
    return bool(np.all(d >= limit))


def geometry(structure: Structure) -> dict[str, Any]:
    """nn_distance (Å, median), min_distance (Å) and valid of a structure, computed together."""
    if not structure.is_periodic:
        return _particle_geometry(structure)
    return {"nn_distance": nn_distance(structure), "min_distance": structure.min_distance(),
            "valid": is_valid(structure)}


def _radii(structure: Structure) -> np.ndarray:
    return np.array([elements.atomic_radius(int(z)) for z in structure.species], dtype=float)


def _pair_radii(structure: Structure) -> np.ndarray:
    radii = _radii(structure)
    return radii[:, None] + radii[None, :]


def _particle_geometry(structure: Structure) -> dict[str, Any]:
    """`geometry` of a finite particle with a k-d tree: O(n log n), so thousands of atoms (a bulk
    sample modelled as a 4000-atom sphere) take milliseconds, not the seconds of an n x n matrix."""
    n = structure.n_atoms
    if n < 2:
        return {"nn_distance": float("inf"), "min_distance": float("inf"), "valid": n == 1}
    pos = structure.positions
    if not np.isfinite(pos).all():
        return {"nn_distance": float("nan"), "min_distance": float("nan"), "valid": False}
    tree = cKDTree(pos)
    nearest = tree.query(pos, k=2)[0][:, 1]  # [n] distance to the closest other atom
    radii = _radii(structure)
    valid = not np.isnan(radii).any()  # an unknown radius fails every pair, as with a matrix
    if valid:
        pairs = tree.query_pairs(MIN_DISTANCE_FRACTION * 2 * float(radii.max()),
                                 output_type="ndarray")  # [m, 2] candidates for a clash
        if len(pairs):
            i, j = pairs[:, 0], pairs[:, 1]
            d = np.linalg.norm(pos[i] - pos[j], axis=1)
            valid = bool(np.all(d >= MIN_DISTANCE_FRACTION * (radii[i] + radii[j])))
    return {"nn_distance": float(np.median(nearest)), "min_distance": float(nearest.min()),
            "valid": bool(valid)}


def invalid_reason(structure: Structure, min_atoms: int = 1) -> str | None:
    """Why `structure` is not a valid candidate, in a few words; None when it is valid.

    Args:
        min_atoms: fewest atoms accepted (e.g. 2 for a particle whose bonds a model reads).
    """
    if structure.n_atoms < min_atoms:
        return (f"{structure.n_atoms} atom{'s' if structure.n_atoms != 1 else ''}; at least "
                f"{min_atoms} needed")
    if not np.isfinite(structure.positions).all():
        return "coordinates are not finite"
    shape = geometry(structure)
    if shape["valid"]:
        return None
    return (f"atoms overlap: minimum distance {shape['min_distance']:.3g} Å, below "
            f"{MIN_DISTANCE_FRACTION:g} x the sum of their atomic radii")
