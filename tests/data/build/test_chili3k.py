"""CHILI-3K builder: crystal types, lattice fit, particle cutting, records and patterns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import spglib

from invdesign.core import elements
from invdesign.core.errors import InvdesignError
from invdesign.core.patterns import PATTERNS
from invdesign.crystals.crystal_types import (
    CHILI3K_METALS,
    CHILI100K_METALS,
    CRYSTAL_TYPES,
    estimate_lengths,
    formula_radius_sum,
    lattice_fit,
    radius_pm,
    unit_cell,
)
from invdesign.data.build.chili3k import Chili3kSource, build_chili3k, chili3k_sources
from invdesign.data.build.record import space_group
from invdesign.data.hdf5_io import read_chili_file
from invdesign.physics.cutter import cut_particles
from invdesign.testing import make_tiny_chili3k, skip_unless_ci

SPEC = Path(__file__).resolve().parents[4] / "shared" / "spec"


def test_chili3k_metals_rule_gives_53() -> None:
    assert len(CHILI3K_METALS) == 53
    assert set(CHILI3K_METALS) <= set(CHILI100K_METALS)
    table = elements._table()["metallic_radius"]
    for symbol in CHILI100K_METALS:
        has_radius = not np.isnan(table[elements.atomic_number(symbol) - 1])
        assert (symbol in CHILI3K_METALS) == has_radius


# The space group column of CHILI.md's crystal-type table, independent of our table.
SPEC_SPACE_GROUPS = {
    "RockSalt": 225,
    "ZincBlende": 216,
    "Fluorite": 225,
    "AntiFluorite": 225,
    "Wurtzite": 186,
    "NickelArsenide": 194,
    "CaesiumChloride": 221,
    "Rutile": 136,
    "CadmiumIodide": 164,
    "CadmiumChloride": 166,
    "Perovskite": 221,
    "RheniumTrioxide": 221,
}


@pytest.mark.parametrize("name", list(SPEC_SPACE_GROUPS))
@pytest.mark.parametrize("metal", ["Zn", "Ba"])
def test_unit_cell_space_group(name: str, metal: str) -> None:
    assert list(CRYSTAL_TYPES) == list(SPEC_SPACE_GROUPS)
    cell = unit_cell(name, metal)
    data = spglib.get_symmetry_dataset((cell.cell, cell.frac_positions, cell.species), symprec=1e-3)
    assert data.number == SPEC_SPACE_GROUPS[name] == CRYSTAL_TYPES[name].space_group
    assert space_group(cell)[0] == SPEC_SPACE_GROUPS[name]
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


# Textbook compounds (CHILI.md) whose CHILI lattice estimate misses by more than 5 %, with the
# measured relative error in % of each fitted length (a, or a and c) and why one straight line
# through the type's radius sums cannot reach them. Every other listed compound must be within 5 %.
# The method is CHILI's (Appendix A.1), not tuned to this list; the errors are pinned to +-0.3
# percentage points so that a change of the radii, the references or the fit fails here.
ALLOWED_MISSES: dict[tuple[str, str], tuple[tuple[float, ...], str]] = {
    ("RockSalt", "MgO"): ((7.3,), "alkaline-earth and 3d oxides are on different lines: MnO "
                          "has a smaller radius sum (178 pm) but a larger cell than MgO (196 pm)"),
    ("RockSalt", "CaO"): ((6.1,), "same as MgO: MgO and CaO lie below the line of the others"),
    ("Fluorite", "BaF2"): ((-8.7,), "fluorides vs oxides: BaF2 (298 pm) has a = 6.20 Å, CeO2 "
                           "(305 pm, Ce without metallic radius) 5.41 Å"),
    ("Fluorite", "CeO2"): ((5.6,), "same as BaF2 (Ce gets its atomic radius, 185 pm)"),
    ("AntiFluorite", "Li2O"): ((7.0,), "oxides and sulfides: Li2O..Rb2O give about 0.011 Å/pm, "
                               "Li2O -> Li2S needs 0.025 Å/pm"),
    ("AntiFluorite", "Li2S"): ((-5.5,), "same as Li2O"),
    ("AntiFluorite", "Na2S"): ((-6.5,), "same as Li2O"),
    ("Wurtzite", "AlN"): ((5.1, 6.3), "AlN and GaN have the same radius sum (190 pm) but different "
                          "cells; the oxides/sulfides set the line"),
    ("NickelArsenide", "NiAs"): ((2.1, 8.2), "c does not follow the radius sum (FeS 5.88 Å and NiS "
                                 "5.35 Å at 221 and 219 pm): the c line is flat at 5.42 Å"),
    ("NickelArsenide", "FeS"): ((-0.7, -7.8), "same as NiAs (c)"),
    ("NickelArsenide", "CoS"): ((0.9, 5.1), "same as NiAs (c)"),
    ("CaesiumChloride", "TlCl"): ((-15.5,), "halides and intermetallics: TlCl, CuZn, AlNi have "
                                  "radius sums 244, 239, 240 pm but a = 3.83, 2.95, 2.88 Å"),
    ("CaesiumChloride", "CuZn"): ((8.3,), "same as TlCl"),
    ("CaesiumChloride", "AlNi"): ((11.1,), "same as TlCl"),
    ("CadmiumIodide", "Mg(OH)2"): ((0.3, -5.3), "hydroxide layers (H: 25 pm) stack differently "
                                   "from iodide layers: c of the hydroxides is off the line"),
    ("CadmiumIodide", "Ca(OH)2"): ((-1.2, 8.0), "same as Mg(OH)2 (c)"),
    ("RheniumTrioxide", "ReO3"): ((5.1,), "the oxide lies above the fluorides' line (ReO3: "
                                  "308 pm, 3.73 Å; NbF3: 284 pm, 3.90 Å)"),
}


def _estimate_errors() -> dict[tuple[str, str], np.ndarray]:
    """Relative error in % of the CHILI estimate for every textbook compound of every type."""
    out = {}
    for name, ctype in CRYSTAL_TYPES.items():
        for formula, lengths in ctype.references:
            estimate = estimate_lengths(name, formula_radius_sum(formula))
            out[name, formula] = 100 * (estimate - np.asarray(lengths)) / np.asarray(lengths)
    return out


def test_lattice_estimates_within_5_percent_except_the_documented_misses() -> None:
    errors = _estimate_errors()
    assert len(errors) == 75 and set(ALLOWED_MISSES) <= set(errors)
    for key, err in errors.items():
        if key in ALLOWED_MISSES:
            measured, _ = ALLOWED_MISSES[key]
            assert np.abs(err).max() > 5, f"{key} is within 5 % now: drop it from ALLOWED_MISSES"
            np.testing.assert_allclose(err, measured, atol=0.3, err_msg=str(key))
        else:
            assert np.all(np.abs(err) <= 5), f"{key}: estimate off by {np.round(err, 1)} %"
    # the types whose textbook compounds follow one line: no miss at all
    clean = {n for n in CRYSTAL_TYPES if not any(t == n for t, _ in ALLOWED_MISSES)}
    assert clean == {"ZincBlende", "Rutile", "CadmiumChloride", "Perovskite"}


def test_radius_sum_uses_metallic_else_atomic_radius_from_mendeleev() -> None:
    """CHILI.md: the metallic radius, else the atomic radius, in pm, from `mendeleev`, for every
    atom of every textbook compound (non-metals with a tabulated metallic radius, S Se P As Sb Te,
    take it; O F Cl Br I N H take their atomic radius)."""
    fetch = pytest.importorskip("mendeleev.fetch", reason="mendeleev is the radius source")
    from pymatgen.core import Composition

    table = fetch.fetch_table("elements").set_index("symbol")
    used = {
        el.symbol
        for ctype in CRYSTAL_TYPES.values()
        for formula, _ in ctype.references
        for el in Composition(formula)
    }
    for symbol in sorted(used):
        row = table.loc[symbol]
        expected = row.atomic_radius if np.isnan(row.metallic_radius) else row.metallic_radius
        assert radius_pm(symbol) == pytest.approx(expected), symbol
    assert radius_pm("O") == pytest.approx(table.loc["O"].atomic_radius)  # no metallic radius
    assert np.isnan(table.loc["O"].metallic_radius)


def test_textbook_compounds_are_the_ones_chili_md_lists() -> None:
    spec = SPEC / "CHILI.md"
    if not spec.is_file():
        skip_unless_ci(f"{spec} is absent (CI places ../shared beside the checkout)")
    block = spec.read_text().split("A few textbook values (Å):")[1].split("Every metal")[0]
    listed: dict[str, list] = {}
    for line in block.strip().splitlines():
        name, rest = line.split(" ", 1)
        for item in rest.replace("(a, c) ", "").rstrip(";.").split(", "):
            formula, values = item.split()
            listed.setdefault(name, []).append(
                (formula, tuple(float(v) for v in values.split("/")))
            )
    assert listed == {name: list(t.references) for name, t in CRYSTAL_TYPES.items()}


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


def test_table6_parameters() -> None:
    # CHILI.md / Table 6: (function, radiation, qmin, qmax, qstep, rmin, rmax, rstep), biso 0.3
    table6 = {
        "saxs": ("iq", "xray", 0.0, 3.0, 0.01, None, None, None),
        "sans": ("iq", "neutron", 0.0, 3.0, 0.01, None, None, None),
        "xrd": ("iq", "xray", 1.0, 30.0, 0.05, None, None, None),
        "nd": ("iq", "neutron", 1.0, 30.0, 0.05, None, None, None),
        "xPDF": ("gr", "xray", 1.0, 30.0, 0.05, 0.0, 60.0, 0.01),
        "nPDF": ("gr", "neutron", 1.0, 30.0, 0.05, 0.0, 60.0, 0.01),
    }
    assert list(PATTERNS) == list(table6)
    for name, spec in PATTERNS.items():
        got = (spec.function, spec.radiation, spec.qmin, spec.qmax, spec.qstep)
        assert got + (spec.rmin, spec.rmax, spec.rstep) == table6[name] and spec.biso == 0.3


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
