"""Structure-type library: every type builds with its space group, placement keeps every element,
cells scale to a nearest-neighbour distance, user CIF folders extend the library."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from ase.data import covalent_radii
from ase.neighborlist import neighbor_list
from pymatgen.core import Composition, Element
from pymatgen.io.cif import CifWriter
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from invdesign.core.errors import DataFormatError, InvdesignError
from invdesign.crystals.library import (
    StructureType,
    builtin_types,
    composition_of,
    crystal_system,
    load_library,
    placements,
    radius_scale,
    typed_cells,
)

TYPES = builtin_types()
BY_NAME = {t.name: t for t in TYPES}


def test_library_has_at_least_sixty_unique_lower_case_types():
    names = [t.name for t in load_library()]
    assert len(names) >= 60
    assert len(set(names)) == len(names)
    assert all(n == n.lower() for n in names)


@pytest.mark.parametrize("stype", TYPES, ids=[t.name for t in TYPES])
def test_type_builds_with_its_space_group_and_formula_units(stype: StructureType):
    cell = stype.cell()
    assert cell.kind == "unit_cell"
    assert SpacegroupAnalyzer(cell.to_pymatgen(), symprec=0.01).get_space_group_number() \
        == stype.spacegroup
    assert stype.system == crystal_system(stype.spacegroup)
    per_role = Counter(cell.info["roles"])
    assert {r: per_role[r] / stype.z for r in stype.roles} == stype.roles
    per_site = Counter(cell.info["sites"])
    for k, site in enumerate(stype.sites):
        assert per_site[k] == int(re.match(r"\d+", site.wyckoff).group()), site
    # the example's composition (maghemite's Fe5O8 approximant within 0.02 of Fe2O3)
    built = Composition(dict(Counter(cell.symbols))).fractional_composition
    example = Composition(stype.example).fractional_composition
    assert max(abs(built[el] - example[el]) for el in example) < 0.02
    assert stype.species in placements(stype, dict(Counter(cell.species.tolist())))
    assert radius_scale(stype, stype.species) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("stype", TYPES, ids=[t.name for t in TYPES])
def test_type_has_no_contact_below_three_quarters_of_covalent_radii(stype: StructureType):
    atoms = stype.cell().to_ase()
    i, j, d = neighbor_list("ijd", atoms, 4.0)
    ratio = d / (covalent_radii[atoms.numbers[i]] + covalent_radii[atoms.numbers[j]])
    assert ratio.min() >= 0.7


def _symbols(assignments: list[dict[str, int]]) -> list[dict[str, str]]:
    return [{r: Element.from_Z(z).symbol for r, z in a.items()} for a in assignments]


def test_placements_put_the_anion_on_x_roles():
    cdse = composition_of("CdSe")
    assert _symbols(placements(BY_NAME["wurtzite"], cdse)) == [{"A": "Cd", "X": "Se"}]
    assert _symbols(placements(BY_NAME["zincblende"], composition_of("ZnO"))) == [
        {"A": "Zn", "X": "O"}]
    assert placements(BY_NAME["fluorite"], cdse) == []


def test_placements_return_every_cation_permutation_that_fits():
    cofe2o4 = composition_of("CoFe2O4")
    assert _symbols(placements(BY_NAME["spinel"], cofe2o4)) == [{"A": "Co", "B": "Fe", "X": "O"}]
    inverse = _symbols(placements(BY_NAME["inverse_spinel"], cofe2o4))
    assert sorted(inverse, key=str) == sorted([
        {"A": "Co", "B": "Fe", "C": "Fe", "X": "O"},
        {"A": "Fe", "B": "Co", "C": "Fe", "X": "O"},
        {"A": "Fe", "B": "Fe", "C": "Co", "X": "O"}], key=str)
    perovskite = _symbols(placements(BY_NAME["perovskite_cubic"], composition_of("BaTiO3")))
    assert sorted(perovskite, key=str) == [
        {"A": "Ba", "B": "Ti", "X": "O"}, {"A": "Ti", "B": "Ba", "X": "O"}]
    mullite = _symbols(placements(BY_NAME["mullite_bi2fe4o9"], composition_of("Bi2Fe4O9")))
    assert len(mullite) == 3
    assert {"A": "Bi", "B": "Fe", "C": "Fe", "X": "O"} in mullite


def test_intermetallic_and_element_compositions_take_only_metallic_types():
    cu3au = composition_of("Cu3Au")
    hits = {t.name for t in TYPES if placements(t, cu3au)}
    assert hits == {"l12", "a15", "d03", "heusler", "d019", "d022"}
    assert _symbols(placements(BY_NAME["l12"], cu3au)) == [{"A": "Cu", "B": "Au"}]
    ni = {t.name for t in TYPES if placements(t, composition_of("Ni"))}
    assert ni == {"fcc", "bcc", "hcp", "dhcp", "diamond", "simple_cubic", "beta_sn", "graphite"}


@pytest.mark.parametrize("formula", ["CdSe", "ZnO", "CoFe2O4", "BaTiO3", "Bi2Fe4O9", "Cu3Au", "Ni"])
def test_every_placement_keeps_every_element(formula: str):
    comp = composition_of(formula)
    found = [a for t in TYPES for a in placements(t, comp)]
    assert found
    assert all(set(a.values()) == set(comp) for a in found)


def test_typed_cells_scale_to_the_nearest_neighbour_distance():
    cells = typed_cells(composition_of("ZnO"), nn=2.5)
    assert "wurtzite" in {c.structure_type for c in cells}
    for typed in cells:
        assert typed.source == "library"
        assert typed.cell.min_distance() == pytest.approx(2.5, abs=1e-6)
        assert sorted(set(typed.cell.species.tolist())) == [8, 30]


def test_typed_cells_without_nn_scale_by_radius_sums():
    rocksalt = BY_NAME["rocksalt"]  # MgO example, a = 4.213 Å
    (typed,) = [c for c in typed_cells(composition_of("NiO")) if c.structure_type == "rocksalt"]
    ni, mg, o = Element("Ni"), Element("Mg"), Element("O")
    factor = (ni.average_cationic_radius + o.average_anionic_radius) / (
        mg.average_cationic_radius + o.average_anionic_radius)
    assert typed.cell.cell_parameters()[0] == pytest.approx(rocksalt.lattice[0] * factor, 1e-9)


def test_cif_folder_round_trip(tmp_path):
    spinel = BY_NAME["spinel"].cell()  # MgAl2O4
    CifWriter(spinel.to_pymatgen()).write_file(tmp_path / "MyOxide.cif")
    library = load_library(tmp_path)
    assert len(library) == len(TYPES) + 1
    user = library[-1]
    assert (user.name, user.source, user.spacegroup, user.system) == (
        "myoxide", "user_cif", 227, "cubic")
    assert user.roles == {"A": 1.0, "B": 2.0, "X": 4.0}
    cell = user.cell()
    assert SpacegroupAnalyzer(cell.to_pymatgen(), symprec=0.01).get_space_group_number() == 227
    (assignment,) = placements(user, composition_of("CoFe2O4"))
    assert _symbols([assignment]) == [{"A": "Co", "B": "Fe", "X": "O"}]
    assert user.cell(assignment).formula == "Co8Fe16O32"
    typed = [c for c in typed_cells(composition_of("CoFe2O4"), nn=2.5, library=library)
             if c.source == "user_cif"]
    assert [c.structure_type for c in typed] == ["myoxide"]
    assert typed[0].cell.min_distance() == pytest.approx(2.5, abs=1e-6)


def test_bad_library_folders_and_cifs_raise_one_line_errors(tmp_path):
    with pytest.raises(DataFormatError, match="not found") as missing:
        load_library(tmp_path / "nowhere")
    assert "nowhere" in str(missing.value)
    with pytest.raises(DataFormatError, match="no .cif"):
        load_library(tmp_path)
    (tmp_path / "broken.cif").write_text("data_broken\n_cell_length_a five\nloop_\n")
    with pytest.raises(DataFormatError) as bad:
        load_library(tmp_path)
    assert "broken.cif" in str(bad.value) and "\n" not in str(bad.value)
    (tmp_path / "broken.cif").unlink()
    disordered = BY_NAME["cscl"].cell().to_pymatgen()
    disordered.replace(0, {"Cs": 0.5, "K": 0.5})
    CifWriter(disordered).write_file(tmp_path / "mixed.cif")
    with pytest.raises(DataFormatError, match="partially occupied"):
        load_library(tmp_path)
    (tmp_path / "mixed.cif").unlink()
    CifWriter(BY_NAME["rocksalt"].cell().to_pymatgen()).write_file(tmp_path / "spinel.cif")
    with pytest.raises(DataFormatError, match="taken"):
        load_library(tmp_path)


def test_cell_needs_an_element_for_every_role():
    with pytest.raises(InvdesignError, match="no element for roles"):
        BY_NAME["spinel"].cell({"A": 27, "X": 8})


def test_crystal_system_of_space_group_numbers():
    assert [crystal_system(n) for n in (1, 14, 62, 136, 166, 194, 227)] == [
        "triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic"]
