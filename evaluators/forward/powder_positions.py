"""Atomic positions of a powder fit, refined within the cell's space group.

The displacements that keep a cell's symmetry form a linear subspace: the range of the projector
P = (1/|G|) sum_g D(g), D(g) moving atom i's displacement to atom g(i) rotated by g (fractional
coordinates, operations from spglib, `crystals.symmetry`). Its basis, less the uniform translations
(they change no intensity), has one vector per free Wyckoff coordinate combination: 0 for rock
salt, 1 for the oxygen z of K2NiF4, 12 for a P2_1/n double perovskite. A fit refines one
coefficient per basis vector; orbits stay orbits, so the Laue-orbit reflections of
`powder_pattern` keep their meaning.
"""

from __future__ import annotations

import numpy as np
from pymatgen.core import Structure as PmgStructure
from scipy.linalg import orth

from invdesign.crystals.symmetry import site_operations

#: Largest displacement of any atom per unit coefficient is 1 (fractional); coefficients are
#: bounded by this (fractional coordinate units).
MAX_SHIFT = 0.06
#: Cells with more free coordinates than this are fitted with fixed positions.
MAX_FREE = 30


def displacement_basis(conv: PmgStructure, symprec: float = 0.01) -> np.ndarray:
    """[3n, k] symmetry-allowed displacement directions (fractional, atom-major x, y, z), each
    scaled so that its largest component is 1; k = 0 when every atom sits on a fixed site."""
    n = len(conv)
    ops = site_operations(conv.lattice.matrix, conv.frac_coords,
                          np.array([site.specie.Z for site in conv]), symprec)
    total = np.zeros((3 * n, 3 * n))
    for op in ops:
        for i, j in enumerate(op.image):
            total[3 * j:3 * j + 3, 3 * i:3 * i + 3] += op.rotation
    projector = total / len(ops)
    shifts = np.kron(np.ones((n, 1)), np.eye(3)) / np.sqrt(n)  # uniform translations
    projector -= shifts @ (shifts.T @ projector)
    basis = orth(projector, rcond=1e-8)
    if basis.size == 0:
        return np.zeros((3 * n, 0))
    return basis / np.abs(basis).max(axis=0)


def moved(frac: np.ndarray, basis: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """[n, 3] fractional coordinates after the displacement `basis @ coefficients`."""
    if basis.shape[1] == 0:
        return frac
    return frac + (basis @ coefficients).reshape(-1, 3)
