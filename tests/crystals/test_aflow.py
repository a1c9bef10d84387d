"""The AFLOW prototypes pymatgen ships as structure types (`invdesign.crystals.aflow`)."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice
from pymatgen.core import Structure as PmgStructure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from invdesign.crystals.aflow import aflow_types, prototype_entries
from invdesign.crystals.library import composition_of, typed_cells


def test_every_prototype_is_a_type_with_its_labelled_space_group() -> None:
    entries = prototype_entries()
    types = aflow_types()
    assert len(types) == len(entries) == 288
    assert len({t.name for t in types}) == len(types)
    other_group = set()
    for entry, stype in zip(entries, types, strict=True):
        # AFLOW labels read '<stoichiometry>_<Pearson>_<space group>_<Wyckoff letters>'
        if stype.spacegroup != int(entry["tags"]["aflow"].split("_")[2]):
            other_group.add(stype.name)
        assert stype.source == "aflow" and entry["tags"]["aflow"] in stype.note
        cell = stype.cell()
        assert cell.n_atoms == len(entry["snl"]["sites"])
    # pymatgen's copies of these three hold coordinates on which spglib (symprec 0.01) finds
    # another group than the label's: D0_c U3Si P4/mmm for I4/mcm, modderite and an oC12 Cmcm
    assert other_group == {"aflow_ab3_ti16_140_b_ah", "aflow_ab_op8_33_a_a",
                           "aflow_a2b_oc12_38_de_ab"}


def test_the_minority_anion_prototype_hosts_the_anti_type() -> None:
    """Rb2S (anti-cotunnite in nature) is offered on Co2Si (C37), S on the Si sites; cotunnite
    itself (PbCl2, C23) takes a 1:2 cation:anion compound such as EuI2, not Rb2S."""
    names = {t.structure_type: t.cell for t in typed_cells(composition_of("Rb2S"), None,
                                                           list(aflow_types()))}
    c37 = names["aflow_a2b_op12_62_2c_c"]
    assert sorted(np.unique(c37.species, return_counts=True)[1].tolist()) == [4, 8]
    assert SpacegroupAnalyzer(c37.to_pymatgen(), symprec=0.01).get_space_group_number() == 62
    assert "aflow_a2b_op12_62_2c_c_c23" not in names
    eui2 = {t.structure_type for t in typed_cells(composition_of("EuI2"), None,
                                                  list(aflow_types()))}
    assert "aflow_a2b_op12_62_2c_c_c23" in eui2


def test_a_placed_prototype_matches_the_compound_built_by_hand() -> None:
    """CsCl placed as TlBr (B2) is the B2 cell of TlBr: one type among 288, the right one."""
    placed = [t for t in typed_cells(composition_of("TlBr"), None, list(aflow_types()))
              if t.structure_type.startswith("aflow_ab_cp2_221")]
    assert len(placed) == 1
    b2 = PmgStructure(Lattice.cubic(3.98), ["Tl", "Br"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert StructureMatcher().fit(placed[0].cell.to_pymatgen(), b2)
    assert placed[0].cell.cell[0, 0] == pytest.approx(3.98, rel=0.15)  # radius-scaled lattice
