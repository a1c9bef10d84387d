"""CHILI-3K builder: crystal types, lattice fit, particle cutting, records and patterns."""

from __future__ import annotations

import numpy as np
import pytest
import spglib

from invdesign import elements
from invdesign.build.chili3k import Chili3kSource, build_chili3k, chili3k_sources
from invdesign.build.crystal_types import (
    CHILI3K_METALS,
    CHILI100K_METALS,
    CRYSTAL_TYPES,
    estimate_lengths,
    formula_radius_sum,
    lattice_fit,
    unit_cell,
)
from invdesign.build.record import space_group
from invdesign.data.hdf5_io import read_chili_file
from invdesign.data.patterns import PATTERNS
from invdesign.debye.cutter import cut_particles
from invdesign.errors import InvdesignError
from invdesign.testing import make_tiny_chili3k


def test_chili3k_metals_rule_gives_53() -> None:
    assert len(CHILI3K_METALS) == 53
    assert set(CHILI3K_METALS) <= set(CHILI100K_METALS)
    table = elements._table()["metallic_radius"]
    for symbol in CHILI100K_METALS:
        has_radius = not np.isnan(table[elements.atomic_number(symbol) - 1])
        assert (symbol in CHILI3K_METALS) == has_radius


@pytest.mark.parametrize("name", list(CRYSTAL_TYPES))
@pytest.mark.parametrize("metal", ["Zn", "Ba"])
def test_unit_cell_space_group(name: str, metal: str) -> None:
    cell = unit_cell(name, metal)
    data = spglib.get_symmetry_dataset((cell.cell, cell.frac_positions, cell.species), symprec=1e-3)
    assert data.number == CRYSTAL_TYPES[name].space_group
    assert space_group(cell)[0] == CRYSTAL_TYPES[name].space_group
    ctype = CRYSTAL_TYPES[name]
    n_metal = int((cell.species == elements.atomic_number(metal)).sum())
    assert n_metal * ctype.n_oxygen == int((cell.species == 8).sum()) * ctype.n_metal


def test_lattice_fit_is_a_straight_line_through_the_textbook_values() -> None:
    # The fit is least squares on (radius sum, length): compare with the closed form for RockSalt.
    refs = CRYSTAL_TYPES["RockSalt"].references
    x = np.array([formula_radius_sum(f) for f, _ in refs])
    y = np.array([v[0] for _, v in refs])
    slope = np.sum((x - x.mean()) * (y - y.mean())) / np.sum((x - x.mean()) ** 2)
    assert lattice_fit("RockSalt")[0, 0] == pytest.approx(slope)
    assert formula_radius_sum("Mg(OH)2") == pytest.approx(
        sum(
            100 * float(elements.metallic_radius(elements.atomic_number(s)))
            for s in ("Mg", "O", "O", "H", "H")
        )
    )


@pytest.mark.parametrize("name", ["ZincBlende", "Rutile", "CadmiumChloride", "Perovskite"])
def test_lattice_estimates_within_5_percent(name: str) -> None:
    # Types whose textbook compounds follow one line: every estimate within 5 %.
    for formula, lengths in CRYSTAL_TYPES[name].references:
        estimate = estimate_lengths(name, formula_radius_sum(formula))
        np.testing.assert_allclose(estimate, lengths, rtol=0.05, err_msg=formula)


def test_lattice_estimates_mean_error_below_5_percent() -> None:
    # Over all textbook compounds the mean relative error of the CHILI fit stays below 5 %; single
    # compounds of the mixed families cannot all be (CsCl type: TlCl and CuZn have radius sums
    # 244 and 239 pm but a = 3.83 and 2.95 Å).
    errors = []
    for name, ctype in CRYSTAL_TYPES.items():
        for formula, lengths in ctype.references:
            est = estimate_lengths(name, formula_radius_sum(formula))
            errors.extend(np.abs(est - lengths) / np.asarray(lengths))
    assert len(errors) > 74 and np.mean(errors) < 0.05


def test_unknown_inputs_raise() -> None:
    with pytest.raises(InvdesignError, match="unknown crystal type"):
        unit_cell("Spinel", "Zn")
    with pytest.raises(InvdesignError, match="unknown CHILI-3K metal"):
        unit_cell("RockSalt", "Xx")
    with pytest.raises(InvdesignError, match="radii"):
        chili3k_sources(["Zn"], radii=[-5])
    assert Chili3kSource("AntiFluorite", "Li").name == "AntiFluorite_Li2O"
    assert Chili3kSource("Perovskite", "Sr").name == "Perovskite_SrSrO3"


def test_particles_grow_with_radius_and_centre_on_metal() -> None:
    cell = unit_cell("Fluorite", "Zr")
    particles = cut_particles(cell, [3.0, 6.0, 9.0], metals=[40], ligands=[8])
    sizes = [p.n_atoms for p in particles]
    diameters = [p.info["np_size"] for p in particles]
    assert sizes == sorted(sizes) and len(set(sizes)) == 3
    assert diameters == sorted(diameters)
    for particle, radius in zip(particles, (3.0, 6.0, 9.0), strict=True):
        r = np.linalg.norm(particle.positions, axis=1)
        centre = np.argmin(r)
        assert r[centre] < 1e-5 and particle.species[centre] == 40
        assert np.all(r[particle.species == 40] <= radius + 1e-4)
        assert particle.info["np_size"] == pytest.approx(2 * r.max())


def test_cut_rejects_bad_radii() -> None:
    with pytest.raises(InvdesignError, match="positive"):
        cut_particles(unit_cell("RockSalt", "Zn"), [0.0], metals=[30])


def test_tiny_build_record(tmp_path) -> None:
    folder = make_tiny_chili3k(tmp_path, metals=["Zn"], crystal_types=["RockSalt", "Wurtzite"])
    files = sorted(p.name for p in folder.glob("*.h5"))
    assert files == ["RockSalt_ZnO.h5", "Wurtzite_ZnO.h5"]
    record = read_chili_file(folder / "Wurtzite_ZnO.h5")
    assert record.space_group_number == 186 and record.crystal_system == "Hexagonal"
    assert record.crystal_type == "Wurtzite" and record.elements_present.tolist() == [8, 30]
    assert len(record.particles) == 2
    for entry in record.particles:
        assert set(entry.patterns) == set(PATTERNS)
        for name, spec in PATTERNS.items():
            values = entry.patterns[name]
            assert values.shape == (2, spec.n_points)
            np.testing.assert_allclose(values[0], spec.grid(), atol=1e-5)
            assert np.all(np.isfinite(values[1]))
        g = entry.graph
        assert g.edge_index.max() < g.n_atoms and g.edge_attr.shape == (g.n_edges,)
        d = np.linalg.norm(g.pos_abs[g.edge_index[0]] - g.pos_abs[g.edge_index[1]], axis=1)
        np.testing.assert_allclose(d, g.edge_attr, atol=1e-4)
        np.testing.assert_allclose(
            g.pos_frac @ unit_cell("Wurtzite", "Zn").cell, g.pos_abs, atol=1e-4
        )


def test_table6_grid_sizes() -> None:
    assert {n: s.n_points for n, s in PATTERNS.items()} == {
        "saxs": 300,
        "sans": 300,
        "xrd": 580,
        "nd": 580,
        "xPDF": 6000,
        "nPDF": 6000,
    }
    np.testing.assert_allclose(PATTERNS["xrd"].grid()[[0, -1]], [1.0, 29.95])
    np.testing.assert_allclose(PATTERNS["saxs"].grid()[[0, -1]], [0.0, 2.99])
    np.testing.assert_allclose(PATTERNS["xPDF"].grid()[[0, -1]], [0.0, 59.99])


def test_build_rejects_bad_metal() -> None:
    with pytest.raises(InvdesignError, match="Xx"):
        build_chili3k("/nonexistent/never", metals=["Xx"])
