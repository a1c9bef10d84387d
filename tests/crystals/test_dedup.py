"""Deduplication: one structure in another frame merges, a different structure does not."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.cluster import Icosahedron
from scipy.spatial.transform import Rotation

from invdesign.core.structure import Structure
from invdesign.crystals.dedup import (
    FP_TOL,
    deduplicate,
    fingerprint,
    fingerprint_distance,
    same_structure,
)


def _cell(atoms) -> Structure:
    return Structure.from_ase(atoms, kind="unit_cell")


@pytest.fixture(scope="module")
def rocksalt() -> Structure:
    return _cell(bulk("NaCl", "rocksalt", a=5.64, cubic=True))  # conventional, 8 atoms


@pytest.fixture(scope="module")
def wurtzite():
    return bulk("ZnO", "wurtzite", a=3.25, c=5.21)


def _shifted(s: Structure, shift) -> Structure:
    return Structure.from_fractional(s.species, (s.frac_positions + shift) % 1.0, s.cell)


def _setting(atoms, m) -> Structure:
    """The same crystal with lattice rows m @ cell (an integer matrix of determinant +-1)."""
    m = np.asarray(m, dtype=float)
    frac = (atoms.get_scaled_positions() @ np.linalg.inv(m)) % 1.0
    return Structure.from_fractional(atoms.numbers, frac, m @ atoms.cell[:])


def test_cell_other_origin_merges(rocksalt):
    assert same_structure(rocksalt, _shifted(rocksalt, [0.13, 0.27, 0.41]))


def test_cell_primitive_vs_conventional_merges(rocksalt):
    primitive = _cell(bulk("NaCl", "rocksalt", a=5.64))  # rhombohedral, 2 atoms
    assert primitive.n_atoms == 2
    assert same_structure(rocksalt, primitive)


def test_cell_supercell_merges(rocksalt):
    assert same_structure(rocksalt, _cell(bulk("NaCl", "rocksalt", a=5.64, cubic=True)
                                          .repeat((2, 1, 1))))


def test_wurtzite_other_hexagonal_settings_merge(wurtzite):
    ref = _cell(wurtzite)
    swapped = _setting(wurtzite, [[0, 1, 0], [1, 0, 0], [0, 0, 1]])  # a and b swapped
    rotated = _setting(wurtzite, [[0, 1, 0], [-1, -1, 0], [0, 0, 1]])  # a' = b, b' = -(a + b)
    assert same_structure(ref, swapped)
    assert same_structure(ref, _shifted(rotated, [0.5, 0.2, 0.3]))


def test_rocksalt_and_zincblende_differ(rocksalt):
    zincblende = _cell(bulk("NaCl", "zincblende", a=5.64, cubic=True))
    assert same_structure(rocksalt, zincblende) is False


def test_lattices_five_percent_apart_differ(rocksalt):
    assert same_structure(rocksalt, _cell(bulk("NaCl", "rocksalt", a=5.64 * 1.05, cubic=True)))\
        is False


def test_lattices_one_and_a_half_percent_apart_merge(rocksalt):
    """Within CELL_LTOL (2 %): the same candidate, its lattice scale is refined later."""
    assert same_structure(rocksalt, _cell(bulk("NaCl", "rocksalt", a=5.64 * 1.015, cubic=True)))


def test_cell_and_particle_never_same(rocksalt):
    particle = Structure(rocksalt.species, rocksalt.positions)
    assert same_structure(rocksalt, particle) is False


def test_deduplicate_keeps_first_and_maps_merges(rocksalt, wurtzite):
    zincblende = _cell(bulk("NaCl", "zincblende", a=5.64, cubic=True))
    items = [
        rocksalt,                                            # 0 kept
        zincblende,                                          # 1 kept
        _cell(bulk("NaCl", "rocksalt", a=5.64)),             # 2 -> 0
        _cell(bulk("NaCl", "rocksalt", a=5.92, cubic=True)),  # 3 kept (5 % larger)
        _shifted(rocksalt, [0.1, 0.2, 0.3]),                 # 4 -> 0
        _cell(wurtzite),                                     # 5 kept
        _setting(wurtzite, [[0, 1, 0], [1, 0, 0], [0, 0, 1]]),  # 6 -> 5
        _shifted(zincblende, [0.5, 0.0, 0.25]),              # 7 -> 1
    ]
    kept, merged = deduplicate(items)
    assert kept == [0, 1, 3, 5]
    assert merged == [0, 1, 0, 3, 0, 5, 5, 1]


# ---------------------------------------------------------------- particles
@pytest.fixture(scope="module")
def cluster() -> Structure:
    """A 55-atom Pt icosahedron with 13 Au atoms (two species)."""
    atoms = Icosahedron("Pt", 3)
    z = atoms.numbers.copy()
    z[:13] = 79
    return Structure(z, atoms.positions)


def _moved(s: Structure, rng: np.random.Generator) -> Structure:
    """`s` rotated, translated and with its atoms permuted."""
    rotation = Rotation.random(random_state=3).as_matrix()
    perm = rng.permutation(s.n_atoms)
    return Structure(s.species[perm], s.positions[perm] @ rotation.T + [3.0, -7.0, 11.0])


def test_fingerprint_layout(cluster):
    fp = fingerprint(cluster)
    assert fp[:5].tolist() == [2.0, 78.0, 79.0, 42.0, 13.0]
    assert fp.shape == (5 + 3 * 1200,)
    # the histogram integrates to the pairs per atom within 12 Å: all 55 * 54 / 2 pairs here
    assert fp[5:].sum() * 0.01 == pytest.approx(27.0, abs=1e-9)


def test_rotated_permuted_translated_particle_merges(cluster):
    copy = _moved(cluster, np.random.default_rng(0))
    assert fingerprint_distance(fingerprint(cluster), fingerprint(copy)) < 1e-9
    assert same_structure(cluster, copy)


def test_particle_with_one_atom_moved_half_angstrom_differs(cluster):
    positions = cluster.positions.copy()
    positions[30] += [0.5, 0.0, 0.0]
    moved = Structure(cluster.species, positions)
    assert fingerprint_distance(fingerprint(cluster), fingerprint(moved)) > 3 * FP_TOL
    assert same_structure(cluster, moved) is False


def test_particles_with_other_species_counts_never_same(cluster):
    z = cluster.species.copy()
    z[13] = 79  # one more Au, same geometry
    assert same_structure(cluster, Structure(z, cluster.positions)) is False
    assert same_structure(cluster, Structure(cluster.species[1:], cluster.positions[1:])) is False


def test_deduplicate_particles_and_cells_together(cluster, rocksalt):
    rng = np.random.default_rng(1)
    positions = cluster.positions.copy()
    positions[0] += [0.0, 0.5, 0.0]
    items = [cluster, rocksalt, _moved(cluster, rng), Structure(cluster.species, positions),
             Structure(rocksalt.species, rocksalt.positions), _moved(cluster, rng)]
    kept, merged = deduplicate(items)
    assert kept == [0, 1, 3, 4]
    assert merged == [0, 1, 0, 3, 4, 0]


def test_deduplicate_empty_and_single():
    assert deduplicate([]) == ([], [])
    one = Structure([78], [[0.0, 0.0, 0.0]])
    assert deduplicate([one]) == ([0], [0])
