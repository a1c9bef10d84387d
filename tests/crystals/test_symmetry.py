"""`crystals.symmetry`: atom permutations of the space-group operations, AFLOW prototype labels."""

from __future__ import annotations

import numpy as np

from invdesign.core.structure import Structure
from invdesign.crystals.symmetry import aflow_prototype, site_operations
from invdesign.testing import caesium_chloride_cell, rock_salt_cell

FCC = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
TETRA = np.array([[x, y, z] for x in (0.25, 0.75) for y in (0.25, 0.75) for z in (0.25, 0.75)])


def _fluorite(a: float, metal: int, anion: int, anti: bool = False) -> Structure:
    """Metal on the fcc sites and anion in every tetrahedral hole (anti: the other way round)."""
    fcc_z, hole_z = (anion, metal) if anti else (metal, anion)
    return Structure.from_fractional([fcc_z] * 4 + [hole_z] * 8, np.vstack([FCC, TETRA]),
                                     np.eye(3) * a)


def test_a_type_has_one_label_whatever_its_elements_and_lattice() -> None:
    assert aflow_prototype(rock_salt_cell(4.2, 12, 8)) == "AB_cF8_225_a_b"
    assert aflow_prototype(rock_salt_cell(5.7, 20, 16)) == "AB_cF8_225_a_b"
    assert aflow_prototype(caesium_chloride_cell(3.2, 12, 8)) == "AB_cP2_221_a_b"
    # fluorite CaF2 and anti-fluorite Li2O are one structure with the roles swapped
    fluorite = aflow_prototype(_fluorite(5.46, 20, 9))
    assert fluorite == aflow_prototype(_fluorite(4.61, 8, 3, anti=True)) == "AB2_cF12_225_a_c"


def test_a_distorted_cell_keeps_its_label_within_symprec_and_loses_it_beyond() -> None:
    cell = rock_salt_cell(4.2, 12, 8)
    frac = cell.frac_positions.copy()
    frac[0, 0] += 0.004  # one atom 0.017 Å off its site
    shaken = Structure.from_fractional(cell.species, frac, cell.cell)
    assert aflow_prototype(shaken, symprec=0.1) == "AB_cF8_225_a_b"
    assert aflow_prototype(shaken, symprec=1e-3) != "AB_cF8_225_a_b"


def test_site_operations_permute_the_atoms() -> None:
    cell = rock_salt_cell(4.2, 12, 8)
    ops = site_operations(cell.cell, cell.frac_positions, cell.species, 1e-3)
    assert len(ops) == 192  # Fm-3m on the conventional cell: 48 x 4 centring translations
    for op in ops:
        assert sorted(op.image.tolist()) == list(range(8))
        assert np.array_equal(cell.species[op.image], cell.species)
