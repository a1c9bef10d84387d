"""Polish (issue 27 item 1): any generator's samples refined against the pattern they should
explain; particles through DebyeCalculator, unit cells as attenuated crystals."""

from __future__ import annotations

import numpy as np
import pytest

from invdesign.core.conditions import minmax
from invdesign.core.errors import InvdesignError
from invdesign.core.patterns import pattern_spec
from invdesign.core.structure import Structure
from invdesign.evaluators.forward.polish import chili_pattern, polish
from invdesign.evaluators.metrics.pattern import rw
from invdesign.physics.calculator import simulate
from invdesign.physics.cutter import cut_sphere
from invdesign.testing import rock_salt_cell

XPDF = pattern_spec("xPDF")


def _cuboctahedron(nn: float = 2.55) -> Structure:
    v = np.array([[1, 1, 0], [1, -1, 0], [-1, 1, 0], [-1, -1, 0], [1, 0, 1], [1, 0, -1],
                  [-1, 0, 1], [-1, 0, -1], [0, 1, 1], [0, 1, -1], [0, -1, 1], [0, -1, -1]], float)
    return Structure(np.full(13, 29), np.vstack([[0, 0, 0], v / np.sqrt(2) * nn]), None,
                     "particle", {})


def test_chili_pattern_undoes_the_min_max_offset() -> None:
    truth = _cuboctahedron()
    stored = simulate(truth, XPDF)
    measured = chili_pattern(stored[0], minmax(stored[1]), XPDF)
    assert measured.y[0] == 0.0
    span = stored[1].max() - stored[1].min()
    np.testing.assert_allclose(measured.y * span, stored[1], atol=1e-9)
    assert (measured.kind, measured.qmin, measured.qmax, measured.qdamp, measured.biso) == (
        "pdf", 1.0, 30.0, 0.04, 0.3)
    assert chili_pattern(np.arange(1.0, 2.0, 0.05), np.ones(20), pattern_spec("xrd")).kind == "xrd"
    assert chili_pattern(np.arange(0.0, 1.0, 0.05), np.ones(20),
                         pattern_spec("saxs")).kind == "saxs"


def test_a_shaken_particle_is_polished_towards_its_pattern() -> None:
    truth = _cuboctahedron()
    stored = simulate(truth, XPDF)
    measured = chili_pattern(stored[0], minmax(stored[1]), XPDF)
    shaken = Structure(truth.species, truth.positions + np.random.default_rng(0).normal(
        0, 0.1, truth.positions.shape), None, "particle", {})
    (done,) = polish([shaken], measured, steps=30)
    assert done.structure.n_atoms == 13
    np.testing.assert_array_equal(done.structure.species, truth.species)
    # 0.1 Å noise per coordinate: Rw 0.272; 30 Adam steps bring it below a quarter of that
    assert done.rw_before == pytest.approx(0.272, abs=0.005)
    assert done.rw_after < 0.25 * done.rw_before
    # the reported Rw is the structure's own: recomputed independently over the fit range
    calc = simulate(done.structure, XPDF)[1]
    keep = (stored[0] >= 1.5) & (stored[0] <= 30.0)
    independent = float(rw(measured.y[keep], calc[keep])[0])
    assert independent < 0.25 * done.rw_before


@pytest.mark.slow
def test_a_strained_unit_cell_is_polished_towards_the_particle_it_was_cut_as() -> None:
    truth = rock_salt_cell(a=4.2)
    particle = cut_sphere(truth, 5.0)
    assert particle is not None
    stored = simulate(particle, XPDF)
    measured = chili_pattern(stored[0], minmax(stored[1]), XPDF)
    strained = rock_salt_cell(a=4.35)
    (done,) = polish([strained], measured, fit_range=(1.5, 12.0), max_seconds=10.0)
    assert done.structure.is_periodic
    np.testing.assert_array_equal(np.sort(done.structure.species), np.sort(truth.species))
    assert done.rw_after <= done.rw_before
    assert done.structure.cell_parameters()[0] == pytest.approx(4.2, abs=0.05)


def test_unit_cells_need_a_pdf() -> None:
    measured = chili_pattern(np.arange(1.0, 2.0, 0.05), np.ones(20), pattern_spec("xrd"))
    with pytest.raises(InvdesignError, match="polishing unit cells needs a PDF; got a xrd"):
        polish([rock_salt_cell()], measured)
