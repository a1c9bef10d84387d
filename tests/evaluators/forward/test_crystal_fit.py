"""`evaluators.forward.crystal_fit`: screen and refinement of attenuated crystals, on patterns
simulated by `CrystalPDF` itself (known truth) and on a PDFfit2 reference file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from invdesign.core.structure import Structure
from invdesign.evaluators.forward import crystal_fit
from invdesign.evaluators.forward.crystal_fit import (
    CrystalFit,
    crystal_curve,
    refine_crystal,
    screen_crystal,
)
from invdesign.evaluators.metrics.pattern import rw
from invdesign.io.measured import MeasuredPattern
from invdesign.physics.crystal_pdf import CrystalPDF
from invdesign.testing import read_pdffit2_reference

REFERENCES = Path(__file__).resolve().parents[2] / "references" / "pdffit2"
FIT = (1.5, 20.0)  # Å
A_MGO = 4.213  # Å


def mgo() -> Structure:
    """Rock-salt MgO, conventional cell (8 atoms)."""
    frac = [[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0],
            [.5, .5, .5], [.5, 0, 0], [0, .5, 0], [0, 0, .5]]
    return Structure.from_cell_parameters(np.array([12] * 4 + [8] * 4), np.array(frac, float),
                                          np.array([A_MGO] * 3 + [90.0] * 3))


def pattern(r: np.ndarray, g: np.ndarray, radiation: str = "xray", qdamp: float = 0.04,
            qdamp_source: str = "header") -> MeasuredPattern:
    return MeasuredPattern(Path("sim.gr"), "pdf", r, g, None, 1.0, 25.0, qdamp, 0.5, radiation,
                           None, None, r, "r_A", {"qdamp": qdamp_source})


TRUE = {"strain": 1.02, "spdiameter": 40.0, "uiso_Mg": 0.006, "uiso_O": 0.011, "delta2": 1.0,
        "qdamp": 0.035}


def simulated() -> MeasuredPattern:
    """MgO strained by +2 %, a 40 Å sphere, known Uiso per element, delta2 and qdamp (X-rays)."""
    cell = mgo()
    r = np.arange(1.0, 20.0, 0.01)
    # on the fit's own internal grid, so the truth is exactly representable
    model = CrystalPDF(cell, r, radiation="xray", qmax=25.0, fine_step=crystal_fit.FINE_STEP)
    lattice = model.default_lattice().clone()
    lattice[:3] *= TRUE["strain"]
    uiso = torch.tensor([TRUE["uiso_Mg"]] * 4 + [TRUE["uiso_O"]] * 4, dtype=torch.float64)
    with torch.no_grad():
        g = model(lattice=lattice, uiso=uiso, delta2=TRUE["delta2"], qdamp=TRUE["qdamp"],
                  spdiameter=TRUE["spdiameter"]).numpy()
    return pattern(r, g, qdamp_source="default")


def test_screen_picks_the_lattice_scale_within_the_grid_step() -> None:
    fit = screen_crystal(mgo(), simulated(), fit_range=FIT, diameter=40.0, fit_qdamp=True)
    step = crystal_fit.SCALES[1] - crystal_fit.SCALES[0]
    assert abs(fit.params["a"] / A_MGO - TRUE["strain"]) <= step / 2 + 1e-9
    assert fit.params["spdiameter"] in (24.0, 40.0, 64.0, 0.0)
    assert fit.cell.cell_parameters()[0] == pytest.approx(fit.params["a"])
    r, calc = crystal_curve(fit, simulated(), FIT)
    keep = (simulated().x >= FIT[0]) & (simulated().x <= FIT[1])
    np.testing.assert_array_equal(r, simulated().x[keep])
    value, scale = rw(simulated().y[keep], calc, scale=1.0)
    # the curve is the full model on the fitted cell (its lattice parameters rounded anew)
    assert float(value) == pytest.approx(fit.rw, abs=1e-7)


@pytest.mark.slow
def test_refinement_recovers_the_simulated_parameters() -> None:
    """The start is the screen's grid point (Rw 0.119); the refinement (no positions) recovers
    the truth to rounding: measured 2026-12-02 Rw 8e-10, every parameter within 1e-6 relative,
    in 49 model evaluations. Tolerances: a margin far above that, far below the grid step."""
    measured = simulated()
    start = screen_crystal(mgo(), measured, fit_range=FIT, diameter=40.0, fit_qdamp=True)
    fit = refine_crystal(mgo(), measured, fit_range=FIT, start=start, fit_qdamp=True,
                         max_seconds=90.0, positions=False)
    assert start.rw > 0.1
    assert fit.rw < 1e-3
    assert fit.params["a"] == pytest.approx(A_MGO * TRUE["strain"], abs=1e-4)
    assert fit.params["b"] == fit.params["a"] == fit.params["c"]
    assert fit.params["alpha"] == pytest.approx(90.0)
    assert fit.params["spdiameter"] == pytest.approx(TRUE["spdiameter"], rel=0.01)
    assert fit.params["uiso_Mg"] == pytest.approx(TRUE["uiso_Mg"], rel=0.01)
    assert fit.params["uiso_O"] == pytest.approx(TRUE["uiso_O"], rel=0.01)
    assert fit.params["qdamp"] == pytest.approx(TRUE["qdamp"], abs=1e-4)
    assert fit.params["delta2"] == pytest.approx(TRUE["delta2"], abs=0.01)
    assert fit.scale == pytest.approx(1.0, abs=1e-3)


def test_refinement_never_returns_worse_than_its_start() -> None:
    measured = simulated()
    start = screen_crystal(mgo(), measured, fit_range=FIT, diameter=40.0, fit_qdamp=False)
    fit = refine_crystal(mgo(), measured, fit_range=FIT, start=start, fit_qdamp=False,
                         max_seconds=0.0)
    assert isinstance(fit, CrystalFit)
    assert fit.rw == start.rw and fit.params == start.params


def read_reference(name: str) -> tuple[Structure, MeasuredPattern]:
    """The cell and G(r) of tests/references/pdffit2/<name>.gr as a measured pattern."""
    cell, fields, r, g = read_pdffit2_reference(REFERENCES / f"{name}.gr")
    radiation = {"X": "xray", "N": "neutron"}[fields["radiation"]]
    return cell, pattern(r, g, radiation, float(fields["qdamp"]))


@pytest.mark.slow
def test_refinement_fits_a_pdffit2_reference() -> None:
    """ZnO wurtzite, 30 Å sphere, neutrons (PDFfit2 1.5.1), from the cell 1.5 % too large and
    no start (so a screen first). Measured 2026-12-02: Rw 0.0064 (PDFfit2's own parameters give
    0.0064 over this range in our model, tests/physics/test_crystal_pdf.py), a 3.25001,
    c 5.20698 Å, spdiameter 30.013 Å, Uiso 0.00378 (Zn) / 0.00382 (O) (true 0.00380), scale
    1.0002."""
    cell, measured = read_reference("zno_sphere30_neutron")
    big = Structure(cell.species, cell.positions * 1.015, cell.cell * 1.015, "unit_cell")
    fit = refine_crystal(big, measured, fit_range=FIT, start=None, fit_qdamp=False,
                         max_seconds=60.0)
    assert fit.rw < 0.009
    assert fit.params["a"] == pytest.approx(3.25, rel=2e-4)
    assert fit.params["c"] == pytest.approx(5.207, rel=2e-4)
    assert fit.params["gamma"] == pytest.approx(120.0)
    assert fit.params["spdiameter"] == pytest.approx(30.0, abs=0.5)
    assert fit.params["uiso_Zn"] == pytest.approx(0.0038, rel=0.03)
    assert fit.params["uiso_O"] == pytest.approx(0.0038, rel=0.03)
    assert fit.scale == pytest.approx(1.0, abs=0.01)
