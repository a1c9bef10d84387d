"""Periodic voxelisation of unit cells (generators/vae/voxels.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.generators.vae.voxels import FALLBACK_RADIUS, labelling_radius, voxelise


def _triclinic_cell(seed: int = 0) -> Structure:
    """A generic (triclinic) Mg-O-Ti cell with random positions: no symmetry to hide errors."""
    rng = np.random.default_rng(seed)
    frac = rng.random((5, 3))
    params = [4.1, 4.6, 5.3, 84.0, 97.0, 103.0]
    return Structure.from_cell_parameters([12, 8, 8, 22, 8], frac, params)


def test_labelling_radius_is_the_mean_shannon_ionic_radius() -> None:
    assert labelling_radius(8) == pytest.approx(1.26)  # O2-, the only tabulated state
    assert labelling_radius(22) == pytest.approx((1.0 + 0.81 + 0.745) / 3)  # Ti 2+, 3+, 4+
    assert labelling_radius(2) == pytest.approx(FALLBACK_RADIUS)  # He: no ionic radius
    with pytest.raises(InvdesignError, match="out of range"):
        labelling_radius(0)


def test_translation_by_whole_voxels_is_np_roll() -> None:
    shape = (12, 16, 20)
    cell = _triclinic_cell()
    steps = np.array([1, 2, -3])
    moved = Structure.from_cell_parameters(
        cell.species, cell.frac_positions + steps / np.asarray(shape), cell.cell_parameters()
    )
    a, b = voxelise(cell, shape), voxelise(moved, shape)
    np.testing.assert_array_equal(b.species, np.roll(a.species, steps, axis=(0, 1, 2)))
    np.testing.assert_allclose(b.density, np.roll(a.density, steps, axis=(0, 1, 2)), rtol=1e-5,
                               atol=1e-6)


def test_lattice_translation_gives_the_same_grid() -> None:
    cell = _triclinic_cell(1)
    shifted = Structure.from_cell_parameters(
        cell.species, cell.frac_positions + np.array([1.0, -2.0, 3.0]), cell.cell_parameters()
    )
    a, b = voxelise(cell, (16, 16, 16)), voxelise(shifted, (16, 16, 16))
    np.testing.assert_array_equal(a.species, b.species)
    np.testing.assert_allclose(a.density, b.density, rtol=1e-5, atol=1e-6)


def test_single_atom_labels_exactly_the_voxels_within_its_radius() -> None:
    # cubic 8 Å cell, 16 voxels per axis (0.5 Å), one O at a voxel site: labelled voxels are the
    # integer offsets with 0.5 * |(i, j, k)| < 1.26 Å, wrapped periodically
    cell = Structure.from_fractional([8], [[0.25, 0.5, 0.0]], np.eye(3) * 8.0)
    grid = voxelise(cell, (16, 16, 16))
    expected = np.zeros((16, 16, 16), dtype=np.int16)
    for i, j, k in itertools.product(range(-3, 4), repeat=3):
        if 0.5 * np.sqrt(i * i + j * j + k * k) < 1.26:
            expected[(4 + i) % 16, (8 + j) % 16, k % 16] = 8
    np.testing.assert_array_equal(grid.species, expected)
    # the density integrates to the electron count (Gaussian truncated at 3.5 sigma: > 99 %)
    electrons = grid.density.sum() * abs(np.linalg.det(grid.cell)) / grid.density.size
    assert 0.99 * 8 < electrons <= 8.0 + 1e-6


def test_overlapping_voxels_go_to_the_deepest_site() -> None:
    # Mg (r 0.86 Å) and O (r 1.26 Å) 1.5 Å apart on the x axis of a 10 Å cubic cell
    cell = Structure.from_fractional([12, 8], [[0.0, 0.0, 0.0], [0.15, 0.0, 0.0]], np.eye(3) * 10)
    grid = voxelise(cell, (40, 40, 40))  # 0.25 Å voxels; voxel (i, 0, 0) sits at x = 0.25 i Å
    line = grid.species[:, 0, 0]
    for i, z in enumerate(line[:10]):
        x = 0.25 * i
        d_mg, d_o = x - 0.86, abs(x - 1.5) - 1.26
        assert z == (12 if d_mg < min(d_o, 0.0) else 8 if d_o < 0 else 0)
    assert set(np.unique(grid.species)) == {0, 8, 12}


def test_cell_and_shape_are_kept_beside_the_grid() -> None:
    cell = _triclinic_cell(2)
    grid = voxelise(cell, (8, 10, 12))
    assert grid.shape == (8, 10, 12) and grid.density.shape == (8, 10, 12)
    np.testing.assert_allclose(grid.cell_parameters(), cell.cell_parameters())
    assert grid.binary.dtype == bool and grid.binary.sum() == (grid.species > 0).sum()


def test_bad_inputs_raise_invdesign_error() -> None:
    particle = Structure([8], [[0.0, 0.0, 0.0]])
    with pytest.raises(InvdesignError, match="unit cell"):
        voxelise(particle)
    cell = _triclinic_cell()
    with pytest.raises(InvdesignError, match="shape"):
        voxelise(cell, (1, 8, 8))
    with pytest.raises(InvdesignError, match="positive"):
        voxelise(cell, (8, 8, 8), label_frac=0.0)
