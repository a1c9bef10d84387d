"""Anti-types: binary structure types with the anion on the other role's sites."""

from __future__ import annotations

import numpy as np
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice
from pymatgen.core import Structure as PmgStructure

from invdesign.core import elements
from invdesign.crystals.aflow import aflow_types
from invdesign.crystals.anti import role_swaps
from invdesign.crystals.dedup import same_structure
from invdesign.crystals.library import builtin_types, composition_of, typed_cells
from invdesign.pipeline.xrd import crystal_cells

MATCHER = StructureMatcher(ltol=0.3, stol=0.5, angle_tol=10)


def _types(names: set[str]):
    return [t for t in builtin_types() if t.name in names]


def test_nias_gives_anti_nias_with_the_anion_on_the_octahedral_sites():
    (nias,) = _types({"nias"})
    (anti,) = role_swaps([nias])
    assert anti.name == "nias:anti" and anti.spacegroup == nias.spacegroup
    assert set(anti.roles) == set(nias.roles) and not anti.metallic
    cells = {t.structure_type: t.cell for t in typed_cells(composition_of("FeS"), None,
                                                           [nias, anti])}
    normal, swapped = cells["nias"], cells["nias:anti"]
    fe, s = elements.atomic_number("Fe"), elements.atomic_number("S")

    def on_origin(cell) -> int:  # the element on 2a (0, 0, 0), NiAs's octahedral site
        frac = cell.to_pymatgen().frac_coords
        return int(cell.species[np.argmin(np.linalg.norm(frac, axis=1))])

    assert on_origin(normal) == fe and on_origin(swapped) == s
    assert not same_structure(normal, swapped)


def test_symmetric_binary_types_give_themselves_again():
    rocksalt, cscl = _types({"rocksalt"}), _types({"cscl"})
    for stype in rocksalt + cscl:
        (anti,) = role_swaps([stype])
        a, b = (t.cell for t in typed_cells(composition_of("MgO"), None, [stype, anti]))
        assert same_structure(a, b)


def test_an_intermetallic_prototype_hosts_an_ionic_compound_either_way():
    """Ni2In (In on 2c, Ni on 2a and 2d) with S on the In sites is anti-Ni2In Rb2S."""
    (ni2in,) = [t for t in aflow_types() if t.name.startswith("aflow_ab2_hp6_194_c_ad")]
    variants = role_swaps([ni2in])
    assert sorted(v.name.split(":")[1] for v in variants) == ["X=A", "X=B"]
    anti = PmgStructure.from_spacegroup("P6_3/mmc", Lattice.hexagonal(5.5, 7.5),
                                        ["S", "Rb", "Rb"],
                                        [[1 / 3, 2 / 3, 1 / 4], [0, 0, 0], [1 / 3, 2 / 3, 3 / 4]])
    placed = typed_cells(composition_of("Rb2S"), None, variants)
    assert len(placed) == 1 and MATCHER.fit(placed[0].cell.to_pymatgen(), anti)
    assert typed_cells(composition_of("Rb2S"), None, [ni2in]) == []  # the prototype alone: none


def test_ternary_types_are_not_swapped_and_metals_take_no_variant():
    ternary = _types({"perovskite_cubic", "spinel"})
    assert role_swaps(ternary) == []
    variants = role_swaps(_types({"nias", "cscl"}))
    assert typed_cells(composition_of("NiAl"), None, variants) == []


def test_the_xrd_pool_offers_anti_types():
    names = [c.info["structure_type"] for c in crystal_cells(composition_of("FeS"), None)]
    assert "nias" in names and "nias:anti" in names
