"""Symmetry operations of a periodic cell as permutations of its atoms (spglib).

`site_operations` gives, for each operation (R, t) of the cell's space group in fractional
coordinates, the atom each atom goes to; orderings use them to tell equivalent arrangements apart,
the powder fit to build the displacements that keep the symmetry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import spglib


@dataclass(frozen=True)
class SiteOperation:
    """One operation: frac -> rotation @ frac + translation; atom i goes to atom `image[i]`."""

    rotation: np.ndarray
    translation: np.ndarray
    image: np.ndarray


def site_operations(lattice: np.ndarray, frac: np.ndarray, numbers: np.ndarray,
                    symprec: float) -> list[SiteOperation]:
    """The operations spglib finds for (lattice [3, 3] rows, frac [n, 3], numbers [n]) that map
    the atoms onto atoms within 10 `symprec` Å, each once; only the identity when none does."""
    frac = np.asarray(frac, float) % 1.0
    n = frac.shape[0]
    ops = spglib.get_symmetry((lattice, frac, numbers), symprec=symprec) or {
        "rotations": [], "translations": []}
    out = []
    for rot, trans in zip(ops["rotations"], ops["translations"], strict=True):
        moved = (frac @ rot.T + trans) % 1.0
        diff = moved[:, None, :] - frac[None, :, :]
        diff -= np.round(diff)
        dist = np.linalg.norm(diff @ lattice, axis=-1)
        image = dist.argmin(axis=1)
        if np.unique(image).size == n and dist[np.arange(n), image].max() < 10 * symprec + 1e-6:
            out.append(SiteOperation(rot, trans, image))
    return out or [SiteOperation(np.eye(3, dtype=int), np.zeros(3), np.arange(n))]
