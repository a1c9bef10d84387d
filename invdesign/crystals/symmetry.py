"""Symmetry operations of a periodic cell as permutations of its atoms (spglib).

`site_operations` gives, for each operation (R, t) of the cell's space group in fractional
coordinates, the atom each atom goes to; orderings use them to tell equivalent arrangements apart,
the powder fit to build the displacements that keep the symmetry. `aflow_prototype` names the
structure type of a cell (AFLOW prototype label), e.g. to keep a held-out type out of training.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import spglib

if TYPE_CHECKING:
    from invdesign.core.structure import Structure


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


def aflow_prototype(cell: Structure, symprec: float = 0.1) -> str:
    """The cell's AFLOW-style prototype label, anonymous formula, Pearson symbol, space group and
    Wyckoff letters (e.g. 'AB_cF8_225_a_b' for every rock salt, 'AB2_cF12_225_a_c' for fluorite),
    from pymatgen's `get_protostructure_label_from_spglib` (spglib at `symprec`, then 1e-5) without
    the element part; '' when spglib finds no symmetry dataset."""
    # lazy: pymatgen's prototype module loads its AFLOW library tables
    from pymatgen.analysis.prototypes import (  # noqa: PLC0415
        get_protostructure_label_from_spglib,
        get_prototype_from_protostructure,
    )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen's own deprecation notices
        label = get_protostructure_label_from_spglib(cell.to_pymatgen(), raise_errors=False,
                                                     init_symprec=symprec)
        return get_prototype_from_protostructure(label) if label else ""
