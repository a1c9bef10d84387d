"""Ordered variants of a library type with one role shared by two elements: the enumeration finds
every symmetry-distinct arrangement once (checked against StructureMatcher on all arrangements),
known ordered compounds come out with their space group, and placements respect sizes and the
composition."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from invdesign.core.structure import Structure
from invdesign.crystals.library import (
    builtin_types,
    composition_of,
    ordered_cells,
    placements,
    typed_cells,
)
from invdesign.crystals.orderings import Split, orderings, split_placements

BY_NAME = {t.name: t for t in builtin_types()}


def _all_arrangements(cell: Structure, split: Split) -> list[Structure]:
    idx = np.flatnonzero(np.asarray(cell.info["roles"]) == split.role)
    out = []
    for combo in itertools.combinations(idx, split.n_first):
        species = cell.species.copy()
        species[idx] = split.second
        species[list(combo)] = split.first
        out.append(Structure(species, cell.positions, cell.cell, "unit_cell"))
    return out


def _classes(cells: list[Structure]) -> int:
    matcher = StructureMatcher(ltol=0.01, stol=0.01, angle_tol=0.1, primitive_cell=False,
                               scale=False)
    return len(matcher.group_structures([c.to_pymatgen() for c in cells]))


@pytest.mark.parametrize(("name", "formula"), [
    ("rocksalt", "LiFeO2"), ("perovskite_orthorhombic", "Sr2YbNbO6"), ("k2nif4", "KLaTiO4"),
])
def test_orderings_are_the_symmetry_distinct_arrangements(name, formula):
    stype = BY_NAME[name]
    comp = composition_of(formula)
    target = {z: v / sum(comp.values()) for z, v in comp.items()}
    roles = np.asarray(stype.cell().info["roles"])
    sites = {r: int(np.sum(roles == r)) for r in stype.roles}
    from invdesign.crystals.library import _candidates  # noqa: PLC0415 - the placement rule

    splits = split_placements(stype.roles, sites, _candidates(stype, sorted(target)), target, 0.02)
    assert splits, f"{formula} should fit {name} with one role split"
    for split in splits:
        parent = stype.cell(split.assignment)
        found = orderings(parent, split, max_orderings=100, min_symmetry=0.0)
        assert len(found) == _classes(_all_arrangements(parent, split))
        assert _classes(found) == len(found)  # no two of them equivalent
        for cell in found:
            assert Structure(cell.species, cell.positions, cell.cell, "unit_cell").formula \
                == _all_arrangements(parent, split)[0].formula


def test_known_ordered_compounds_come_out_with_their_space_group():
    def groups(formula: str, type_name: str) -> set[int]:
        cells = ordered_cells(BY_NAME[type_name], composition_of(formula))
        return {SpacegroupAnalyzer(c.cell.to_pymatgen(), 1e-3).get_space_group_number()
                for c in cells}

    assert 161 in groups("LiNbO3", "corundum")  # LiNbO3, R3c
    assert 148 in groups("FeTiO3", "corundum")  # ilmenite, R-3
    assert 14 in groups("Sr2YbNbO6", "perovskite_orthorhombic")  # B-site rock salt, P2_1/n
    assert 129 in groups("NaLaTiO4", "k2nif4")  # layered A sites, P4/nmm


def test_orderings_that_lose_most_of_the_symmetry_are_dropped():
    cells = ordered_cells(BY_NAME["perovskite_r3c"], composition_of("Na2LiAlF6"))
    assert [c.cell.info["ordering"] for c in cells] == ["R3"]
    split = cells[0].cell.info["split"]
    parent = BY_NAME["perovskite_r3c"].cell({"A": 11, "B": 3, "X": 9})
    every = orderings(parent, Split({"A": 11, "B": 3, "X": 9}, split["role"], 3, 13, 3, 6),
                      max_orderings=100, min_symmetry=0.0)
    assert "P3" in [c.info["ordering"] for c in every]  # the enumeration has them


def test_split_keeps_the_parent_size_order_and_the_composition():
    cells = ordered_cells(BY_NAME["perovskite_orthorhombic"], composition_of("Sr2YbNbO6"))
    assert cells
    for typed in cells:
        info = typed.cell.info
        assert info["split"]["role"] == "B"  # Sr (large) never moves to the B site
        comp = composition_of(typed.cell.formula)
        assert comp[38] / comp[8] == pytest.approx(2 / 6)
        assert typed.structure_type.startswith("perovskite_orthorhombic:")


def test_no_split_when_counts_do_not_fit_the_cell_or_a_plain_placement_exists():
    # the 4 cation sites of the rock-salt cell cannot hold Li:Fe = 1:7 (0 or 1 Li of 4)
    assert not ordered_cells(BY_NAME["rocksalt"], composition_of("LiFe7O8"))
    assert ordered_cells(BY_NAME["rocksalt"], composition_of("LiFe3O4"))  # 1 of 4
    # BaTiO3 places plainly on the perovskite types: no ordered variant of them is added
    assert placements(BY_NAME["perovskite_orthorhombic"], composition_of("BaTiO3"))
    names = [t.structure_type for t in typed_cells(composition_of("BaTiO3"))]
    assert not any(n.startswith("perovskite_orthorhombic:") for n in names)


def test_ordered_cells_scale_to_a_given_nearest_neighbour_distance():
    from ase.neighborlist import neighbor_list  # noqa: PLC0415

    for typed in ordered_cells(BY_NAME["k2nif4"], composition_of("KLaTiO4"), nn=2.0):
        assert neighbor_list("d", typed.cell.to_ase(), 3.0).min() == pytest.approx(2.0)
