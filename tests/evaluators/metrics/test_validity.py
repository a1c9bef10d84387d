"""Validity of candidates: distance rule (periodic for cells), missing elements, stoichiometry."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from invdesign.core.structure import Structure
from invdesign.evaluators.metrics.validity import Validity, check_validity, min_distance, radii

NA, CL, ZN, OX, CD, SE = 11, 17, 30, 8, 48, 34


def _cell(atoms) -> Structure:
    return Structure.from_ase(atoms, kind="unit_cell")


def test_radii_are_the_slater_radii_with_covalent_fallback():
    assert radii(np.array([NA, CL, ZN, OX])).tolist() == [1.8, 1.0, 1.35, 0.6]
    assert radii(np.array([54])).tolist() == [1.40]  # Xe: no Slater radius, ASE's covalent one


def test_rocksalt_nacl_is_valid():
    v = check_validity(_cell(bulk("NaCl", "rocksalt", a=5.64, cubic=True)), {NA: 1, CL: 1})
    assert v == Validity(valid=True, min_distance=pytest.approx(2.82), stoichiometry_error=0.0,
                         missing=(), reason="")


def test_two_atoms_one_angstrom_apart_are_invalid():
    s = Structure.from_fractional([NA, CL], [[0.0, 0.0, 0.0], [1.0 / 6.0, 0.0, 0.0]],
                                  np.eye(3) * 6.0)
    v = check_validity(s, {NA: 1, CL: 1})
    assert v.valid is False
    assert v.min_distance == pytest.approx(1.0)
    assert v.stoichiometry_error == 0.0
    assert v.reason == "atoms too close: Na-Cl 1.00 Å < 1.96 Å (0.7 x sum of radii)"


def test_contact_across_the_cell_boundary_is_found():
    """Atoms at x = 0.02 and x = 0.98 of a 10 Å cell are 0.4 Å apart through the boundary."""
    s = Structure.from_fractional([NA, CL], [[0.02, 0.5, 0.5], [0.98, 0.5, 0.5]],
                                  np.eye(3) * 10.0)
    v = check_validity(s, None)
    assert v.min_distance == pytest.approx(0.4)
    assert v.reason == "atoms too close: Na-Cl 0.40 Å < 1.96 Å (0.7 x sum of radii)"


def test_atom_too_close_to_its_own_image_is_invalid():
    s = Structure.from_fractional([ZN], [[0.0, 0.0, 0.0]], np.diag([1.5, 6.0, 6.0]))
    v = check_validity(s, None)
    assert v.min_distance == pytest.approx(1.5)
    assert v.reason == "atoms too close: Zn-Zn 1.50 Å < 1.89 Å (0.7 x sum of radii)"


def test_zn_only_particle_for_zno_lists_o_missing():
    s = Structure([ZN] * 4, [[0, 0, 0], [2.6, 0, 0], [0, 2.6, 0], [0, 0, 2.6]])
    v = check_validity(s, {ZN: 1, OX: 1})
    assert v.valid is False
    assert v.missing == ("O",)
    assert v.stoichiometry_error == pytest.approx(0.5)
    assert v.min_distance == pytest.approx(2.6)
    assert v.reason == ("missing element O; stoichiometry off by 0.500 in atomic fraction "
                        "(tolerance 0.1)")


def test_zno_particle_at_1_to_2_4_is_invalid_at_default_tolerance():
    """5 Zn and 12 O (1:2.4) on a widely spaced line: only the stoichiometry fails."""
    s = Structure([ZN] * 5 + [OX] * 12, np.arange(17)[:, None] * [3.0, 0.0, 0.0])
    v = check_validity(s, {ZN: 1, OX: 1})
    assert v.valid is False
    assert v.missing == ()
    assert v.stoichiometry_error == pytest.approx(12 / 17 - 0.5)
    assert v.reason == "stoichiometry off by 0.206 in atomic fraction (tolerance 0.1)"
    assert check_validity(s, {ZN: 1, OX: 1}, tol=0.21).valid is True


def test_composition_amounts_need_no_normalisation():
    s = _cell(bulk("ZnO", "wurtzite", a=3.25, c=5.21))
    assert check_validity(s, {ZN: 144, OX: 144}).stoichiometry_error == 0.0
    assert check_validity(s, {ZN: 0.5, OX: 0.5}).valid is True


def test_wurtzite_cdse_shrunk_to_1_14_angstrom_contacts_is_invalid():
    atoms = bulk("CdSe", "wurtzite", a=4.30, c=7.01)
    cell = _cell(atoms)
    assert check_validity(cell, {CD: 1, SE: 1}).valid is True
    shrunk = Structure(cell.species, cell.positions * (1.14 / min_distance(cell)),
                       cell.cell * (1.14 / min_distance(cell)), "unit_cell")
    v = check_validity(shrunk, {CD: 1, SE: 1})
    assert v.valid is False
    assert v.min_distance == pytest.approx(1.14)
    assert v.stoichiometry_error == 0.0
    assert v.reason == "atoms too close: Se-Cd 1.14 Å < 1.89 Å (0.7 x sum of radii)"


def test_no_composition_checks_distances_only():
    s = Structure([ZN] * 3, [[0, 0, 0], [2.6, 0, 0], [0, 2.6, 0]])
    assert check_validity(s, None) == Validity(True, pytest.approx(2.6), 0.0, (), "")


def test_extra_element_counts_in_the_stoichiometry_error():
    s = Structure([ZN, OX, CL, CL], np.arange(4)[:, None] * [3.0, 0.0, 0.0])
    v = check_validity(s, {ZN: 1, OX: 1})
    assert v.stoichiometry_error == pytest.approx(0.5)
    assert v.missing == ()


def test_single_atom_particle_is_valid_without_composition():
    v = check_validity(Structure([ZN], [[0.0, 0.0, 0.0]]), None)
    assert v == Validity(True, float("inf"), 0.0, (), "")
