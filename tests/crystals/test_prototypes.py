"""Crystal prototypes: the library read from cells, labels, and the lattice fit by forward
simulation (real DebyeCalculator patterns of real cuts)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from invdesign.core import elements
from invdesign.core.patterns import pattern_spec
from invdesign.core.structure import Structure
from invdesign.core.tasks import TaskSpec
from invdesign.crystals import prototypes as P
from invdesign.crystals.cuts import sphere_cuts
from invdesign.data.datamodule import load_task_data
from invdesign.data.dataset import ChiliDataset
from invdesign.physics.calculator import simulate
from invdesign.physics.cutter import default_metals
from invdesign.testing import CellRows, caesium_chloride_cell, make_tiny_chili3k, rock_salt_cell


def test_cation_species_are_the_metals_else_all_but_the_most_electronegative() -> None:
    assert elements.cation_species([8, 12, 8]) == [12]
    assert elements.cation_species([8, 14]) == [14]  # SiO2: Si is no metal but the cation
    assert elements.cation_species([8, 52, 8]) == [52]  # TeO2
    assert elements.cation_species([6]) == [6]
    assert elements.cation_species([22, 8, 38]) == [22, 38]
    assert elements.electronegativity(8) == pytest.approx(3.44)
    # cuts of a metal-free cell keep the anion as the ligand, as CHILI-3K's build cut SiO2
    assert default_metals(caesium_chloride_cell(metal=14)) == [14]
    assert default_metals(rock_salt_cell(metal=30)) == [30]


def test_library_groups_cells_of_one_type_whatever_their_metal_and_scale() -> None:
    cells = [rock_salt_cell(4.0, 12), rock_salt_cell(4.6, 30), rock_salt_cell(4.3, 20),
             rock_salt_cell(4.3, 20),  # the same cell twice (two particles of it) counts once
             caesium_chloride_cell(3.2, 12), caesium_chloride_cell(3.2, 14)]  # Si: the cation
    library = P.prototype_library(CellRows(cells))
    assert [(p.n_atoms, p.n_cells) for p in library] == [(8, 3), (2, 2)]
    salt = library[0]
    assert salt.lo == pytest.approx(4.0) and salt.hi == pytest.approx(4.6)
    np.testing.assert_allclose(salt.lengths, [4.3] * 3, atol=1e-6)
    np.testing.assert_allclose(salt.angles, [90, 90, 90])
    assert salt.cation.tolist() == [True] * 4 + [False] * 4
    built = P.build_crystal(salt, 26, 8, 4.1 / 4.3)
    np.testing.assert_allclose(built.cell_parameters(), [4.1, 4.1, 4.1, 90, 90, 90], atol=1e-9)
    assert sorted(built.species.tolist()) == [8] * 4 + [26] * 4
    again = [P.Prototype.from_dict(json.loads(json.dumps(p.to_dict()))) for p in library]
    for a, b in zip(again, library, strict=True):
        np.testing.assert_allclose(a.frac, b.frac)
        assert a.cation.tolist() == b.cation.tolist() and a.n_cells == b.n_cells


def test_common_anion_counts_distinct_cells_not_rows_or_electronegativity() -> None:
    oxides = [rock_salt_cell(4.0, 12, 8), rock_salt_cell(4.4, 30, 8), caesium_chloride_cell(3.1)]
    fluorides = [rock_salt_cell(4.2, 12, 9)] * 5  # one cell as five rows counts once
    assert P.common_anion(CellRows([*oxides, *fluorides])) == 8
    assert P.common_anion(CellRows([*fluorides, rock_salt_cell(4.3, 20, 9)])) == 9
    assert P.common_anion(CellRows([rock_salt_cell(4.0, 12, 16), rock_salt_cell(4.0, 20, 8)])) == 8
    metals = Structure.from_fractional([29, 29], [[0, 0, 0], [0.5, 0.5, 0.5]], np.eye(3) * 3.0)
    assert P.common_anion(CellRows([metals])) is None


def test_labels_name_each_cells_prototype_in_any_atom_order() -> None:
    library = P.prototype_library(CellRows([rock_salt_cell(4.0), caesium_chloride_cell()]))
    shifted = rock_salt_cell(5.0, 56)
    flipped = Structure.from_fractional([8, 12], [[0, 0, 0], [0.5, 0.5, 0.5]], np.eye(3) * 3.0)
    wurtzite_like = Structure.from_cell_parameters(
        np.array([30, 30, 8, 8]),
        np.array([[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, 0.375],
                  [2 / 3, 1 / 3, 0.875]]), np.array([3.2, 3.2, 5.2, 90, 90, 120]))
    labels = P.prototype_labels(CellRows([shifted, caesium_chloride_cell(2.9, 30), flipped,
                                       wurtzite_like]), library)
    # CsCl with the anion at the origin is another prototype (the sites differ by role)
    assert labels.tolist() == [0, 1, -1, -1]


def test_misfit_is_zero_for_an_affine_copy_and_high_for_an_unrelated_curve() -> None:
    x = np.linspace(0, 10, 500)
    curve = np.sin(3 * x) * np.exp(-x / 4)
    assert P.misfit(0.3 * curve + 2.0, curve) < 1e-9
    assert P.misfit(curve, np.cos(7.3 * x)) > 0.9
    assert P.misfit(np.ones_like(x), curve) == 1.0


@pytest.mark.parametrize("a_true", [4.05, 4.47])
def test_fit_lattice_recovers_the_lattice_constant_of_a_particles_pattern(a_true: float) -> None:
    spec = pattern_spec("xPDF")
    library = P.prototype_library(CellRows([rock_salt_cell(4.0), rock_salt_cell(4.6),
                                         caesium_chloride_cell(3.0), caesium_chloride_cell(3.4)]))
    particle = sphere_cuts(rock_salt_cell(a_true), np.array([7.0]))[0]
    target = simulate(particle, spec)[1]
    target = (target - target.min()) / (target.max() - target.min())
    salt, cscl = library
    scale, value = P.fit_lattice(salt, 12, 8, target, spec)
    assert scale * salt.lengths[0] == pytest.approx(a_true, rel=0.006)
    assert value < 0.3
    assert P.fit_lattice(cscl, 12, 8, target, spec)[1] > value + 0.2


def test_library_of_chili3k_cells_has_one_prototype_per_crystal_type(tmp_path) -> None:
    folder = make_tiny_chili3k(tmp_path, metals=("Zn", "Ti", "Si"),
                               crystal_types=("RockSalt", "Fluorite"), radii=(3.0,))
    data = load_task_data(ChiliDataset(folder), TaskSpec.parse("xPDF->unit_cell_pos_frac"))
    library = P.prototype_library(data)
    sources = {m["source"] for m in data.meta}  # e.g. RockSalt_SiO (the build may reject some)
    per_type = sorted(sum(s.startswith(t) for s in sources) for t in ("RockSalt", "Fluorite"))
    assert sorted(p.n_cells for p in library) == per_type and min(per_type) >= 2
    labels = P.prototype_labels(data, library)
    for row, meta in enumerate(data.meta):  # each cell is labelled with its own type
        assert library[labels[row]].n_atoms == (8 if meta["source"].startswith("RockSalt") else 12)
