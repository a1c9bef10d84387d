"""Ground-truth voxelisation -> segmentation round trip, scored by a periodic Hungarian match.

Used by the unit tests and by `benchmarks/watershed_roundtrip.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from invdesign.core.structure import Structure
from invdesign.generators.vae.segmentation import Segmentation, segment
from invdesign.generators.vae.voxels import DEFAULT_SHAPE, VoxelGrid, radius_voxels, voxelise


@dataclass(frozen=True)
class RoundTrip:
    """How well segmentation recovers a voxelised cell.

    Attributes:
        n_true, n_found: atom counts of the cell and of the segmentation.
        errors_vox: [m] matched position errors in voxel units (m = min(n_true, n_found)).
        species_ok: [m] bool, matched atoms whose species agree.
    """

    n_true: int
    n_found: int
    errors_vox: np.ndarray
    species_ok: np.ndarray

    @property
    def count_ok(self) -> bool:
        return self.n_true == self.n_found


def match_periodic(frac_true: np.ndarray, frac_found: np.ndarray,
                   shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hungarian match of two fractional point sets under periodic minimum image, in voxel units.

    Args:
        frac_true: [n, 3], frac_found: [m, 3] fractional coordinates.
        shape: the grid (N0, N1, N2); distances are measured in voxel index units.

    Returns:
        (rows into frac_true, columns into frac_found, [min(n, m)] distances in voxels).
    """
    delta = frac_true[:, None, :] - frac_found[None, :, :]
    delta -= np.round(delta)
    dist = np.linalg.norm(delta * np.asarray(shape, dtype=float), axis=-1)  # [n, m] voxels
    rows, cols = linear_sum_assignment(dist)
    return rows, cols, dist[rows, cols]


def segment_grid(grid: VoxelGrid, **kwargs) -> Segmentation:
    """Segment a periodic voxel grid, the periodic margin set from the species present in it."""
    radius = radius_voxels(grid.cell, grid.shape, grid.species)
    return segment(grid.species, radius_vox=radius, **kwargs)


def roundtrip(structure: Structure, shape: tuple[int, int, int] = DEFAULT_SHAPE,
              label_frac: float = 1.0, **kwargs) -> RoundTrip:
    """Voxelise `structure`, segment its species matrix, match the atoms found to the true ones."""
    grid = voxelise(structure, shape, label_frac=label_frac, with_density=False)
    seg = segment_grid(grid, **kwargs)
    frac = np.mod(structure.frac_positions, 1.0)
    rows, cols, err = match_periodic(frac, seg.frac_positions, shape)
    ok = structure.species[rows] == seg.species[cols]
    return RoundTrip(structure.n_atoms, seg.n_atoms, err, ok)
