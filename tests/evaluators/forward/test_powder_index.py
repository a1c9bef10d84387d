"""Indexing a candidate's cell on the peak positions of a powder pattern, and the ranking that
refines candidates from their indexed cells."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pymatgen.analysis.diffraction.xrd import XRDCalculator

from invdesign.core.structure import Structure
from invdesign.crystals.library import composition_of, typed_cells
from invdesign.evaluators.forward.powder_fit import powder_data
from invdesign.evaluators.forward.powder_index import allowed, index_cell
from invdesign.evaluators.forward.powder_pattern import reflections
from invdesign.evaluators.forward.powder_rank import pattern_lines, rank_powder
from invdesign.io.measured import MeasuredPattern

CU = 1.5406
#: Far enough off along single axes that the screen's scans (isotropic, then per axis) miss it.
STRETCH = (1.2, 0.84, 1.0)


def _cell(formula: str, name: str) -> Structure:
    return next(t.cell for t in typed_cells(composition_of(formula)) if t.structure_type == name)


def test_space_group_extinctions_are_dropped_and_the_rest_kept():
    refl = reflections(_cell("MgO", "rocksalt"), dmin=1.0)
    ok = {tuple(sorted(np.abs(h))): bool(a) for h, a in zip(refl.hkl, allowed(refl), strict=True)}
    assert ok[(1, 1, 1)] and ok[(0, 0, 2)] and ok[(0, 2, 2)] and ok[(1, 1, 3)]
    assert not ok[(0, 0, 1)] and not ok[(0, 1, 1)] and not ok[(1, 1, 2)]


def test_observed_lines_are_the_simulated_reflections(simulate_powder):
    cell = _cell("TiO2", "columbite_tio2")
    measured, _ = simulate_powder(cell, (1.0, 1.0, 1.0))
    lines = pattern_lines(powder_data(measured))
    sticks = XRDCalculator(wavelength=CU).get_pattern(cell.to_pymatgen(), scaled=False,
                                                      two_theta_range=(20, 90))
    tth = np.degrees(2 * np.arcsin(np.sqrt(lines.q2) * CU / 2))
    assert lines.size == 20
    assert np.all(np.diff(tth) > 0)
    nearest = np.abs(tth[:, None] - np.asarray(sticks.x)[None, :]).min(axis=1)
    assert np.all(nearest < 0.08)  # an unresolved pair peaks between its reflections
    assert np.sum(nearest < 0.03) >= 15


def test_normalised_intensities_without_uncertainties_give_the_same_lines(simulate_powder):
    """Intensities scaled to a maximum of 1 get uniform weights: the noise is then read off the
    data, so the same peaks pass the noise threshold as with the counts' weights."""
    measured, _ = simulate_powder(_cell("TiO2", "columbite_tio2"), (1.0, 1.0, 1.0))
    counts = powder_data(measured)
    scaled = powder_data(replace(measured, y=measured.y / measured.y.max()))
    assert np.ptp(scaled.weight) == 0 and np.ptp(counts.weight) > 0
    a, b = pattern_lines(counts), pattern_lines(scaled)
    assert b.size == a.size == 20
    assert np.abs(a.q2 - b.q2).max() < 1e-9


def test_a_pattern_without_peaks_has_no_lines_and_still_ranks():
    tth = np.arange(20.0, 90.0, 0.02)
    y = np.random.default_rng(0).poisson(500 + 2 * tth).astype(float)
    q = 4 * np.pi * np.sin(np.radians(tth / 2)) / CU
    flat = MeasuredPattern(path=Path("flat.xy"), kind="xrd", x=q, y=y, dy=None, qmin=q[0],
                           qmax=q[-1], qdamp=0.0, biso=0.3, radiation="xray", wavelength=CU,
                           composition=None, x_raw=tth, x_unit="2theta_deg")
    assert pattern_lines(powder_data(flat)).size <= 2  # noise alone: 4 σ is rarely crossed
    cells = [_cell("TiO2", "rutile"), _cell("TiO2", "anatase")]
    ranked = rank_powder(cells, flat, refine_top=1)
    assert sorted(i for i, _ in ranked) == [0, 1]


def test_a_cell_far_off_along_single_axes_is_indexed_to_the_pattern(simulate_powder):
    cell = _cell("TiO2", "columbite_tio2")
    measured, abc = simulate_powder(cell, STRETCH)
    lines = pattern_lines(powder_data(measured))
    found = index_cell(reflections(cell, dmin=0.7), lines)
    assert found is not None
    assert sorted(found.lattice[:3]) == pytest.approx(sorted(abc), rel=2e-3)  # standard axes
    assert found.indexed >= 18
    assert found.significance > 10
    assert abs(found.zero) < 0.02
    # a cubic cell of the same composition explains these lines no better than chance would
    wrong = index_cell(reflections(_cell("TiO2", "fluorite"), dmin=0.7), lines)
    assert wrong is None or wrong.significance < found.significance / 2


def test_triclinic_cells_and_too_few_lines_are_not_indexed(simulate_powder):
    cell = _cell("TiO2", "columbite_tio2")
    measured, _ = simulate_powder(cell, (1.0, 1.0, 1.0))
    lines = pattern_lines(powder_data(measured))
    p1 = Structure.from_cell_parameters(np.array([22, 8]), np.array([[0, 0, 0], [0.3, 0.2, 0.1]]),
                                        np.array([3.1, 4.2, 5.3, 81.0, 95.0, 103.0]))
    assert reflections(p1, dmin=1.0).system == "triclinic"
    assert index_cell(reflections(p1, dmin=1.0), lines) is None
    assert index_cell(reflections(cell, dmin=1.0), lines.head(4)) is None


def test_the_indexed_cell_is_refined_when_its_screen_misses_it(simulate_powder):
    names = ("rutile", "anatase", "columbite_tio2", "brookite")
    cells = [_cell("TiO2", name) for name in names]
    measured, abc = simulate_powder(cells[2], STRETCH)
    without = rank_powder(cells, measured, refine_top=1, index_top=0)
    assert names[without[0][0]] != "columbite_tio2" or without[0][1].rwp > 0.2
    ranked = rank_powder(cells, measured, refine_top=1, index_top=1)
    assert names[ranked[0][0]] == "columbite_tio2"
    assert ranked[0][1].stage == "refined"
    assert ranked[0][1].rwp < 0.1
    assert sorted(ranked[0][1].params[k] for k in "abc") == pytest.approx(sorted(abc), rel=1e-3)
    assert math.isfinite(ranked[-1][1].rwp)
