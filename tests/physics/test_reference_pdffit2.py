"""Our forward simulator (DebyeCalculator through `MeasuredGridCalculator`) against an independent
one: PDFfit2 reference G(r) files in tests/references/pdffit2 (written by
`python tools/make_pdffit2_references.py`; PDFfit2 is not needed here).

PDFfit2 computes the PDF of the periodic crystal, multiplied by the shape function of a sphere of
diameter `spdiameter`; we simulate the discrete sphere of the same crystal (every atom within
spdiameter / 2 of a central metal) by the Debye equation, with the same qmax, qdamp and biso
(PDFfit2's Uiso = biso / 8 pi^2) on the same r grid. The two models differ at the surface (atoms
cut whole vs a continuous envelope), in the q range (PDFfit2 transforms 0..qmax of the crystal, we
QMIN..qmax of the particle, leaving out its small-angle scattering) and in the peak profile (our
peaks lie 0.002-0.004 Å higher, consistent with 2 Uiso / r: a Gaussian in r divided by r, as
PDFfit2's profile, peaks that much below one divided by r_ij, as the Debye equation's). So the
agreement is close, not exact: Rw after a least-squares scale (`metrics.pattern.rw`) is held below
tolerances set from the measured values, and the first three peak positions agree to 0.01 Å.
Neutrons for the oxides test geometry alone; with X-rays PDFfit2 weights pairs by f(0),
DebyeCalculator by f(q), so their Rw is larger (its own tolerances). Negative controls: a PDFfit2
crystal 1 % larger and our qdamp doubled must both fail the check.

DebyeCalculator's G(r) is half the usual G(r) = 4 pi r (rho - rho0) (its pair sum counts each pair
once: F(q) of a dimer at d is sin(q d) / 2d, not sin(q d) / d), so the fitted scale is 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import find_peaks

from invdesign.core import elements
from invdesign.core.structure import Structure
from invdesign.evaluators.metrics.pattern import rw
from invdesign.physics.calculator import Instrument, MeasuredGridCalculator
from invdesign.physics.cutter import cut_sphere
from invdesign.testing import read_pdffit2_reference

REFERENCES = Path(__file__).resolve().parents[1] / "references" / "pdffit2"
QMIN = 0.5  # Å^-1: below the first Bragg peak of all three crystals (2.2 Å^-1, ZnO (100))
QSTEP = 0.1  # Å^-1: fine enough for pairs up to pi / QSTEP = 31 Å, the sphere's longest
SHELL_TOL = 0.01  # Å, agreement of the first three peak positions (the task's requirement)

# Rw tolerances (r 1-20 Å), each from the value measured on 2026-12-02 (PDFfit2 1.5.1,
# DebyeCalculator 1.1, float32) with a margin of about 1.4x: the models differ at the surface, below
# QMIN and in the peak profile (module docstring).
GEOMETRY_RW_TOL = {
    "ni_sphere30_xray": 0.04,  # measured 0.0268 (one element: the form factor cancels)
    "mgo_sphere30_neutron": 0.045,  # measured 0.0297
    "zno_sphere30_neutron": 0.055,  # measured 0.0383
}
XRAY_RW_TOL = {  # and X-ray form factors f(q) (ours) vs f(0) (PDFfit2)
    "mgo_sphere30_xray": 0.13,  # measured 0.0948
    "zno_sphere30_xray": 0.18,  # measured 0.1288 (fitted scale 1.82: other pair weights)
}
# our 30 Å sphere vs PDFfit2's bulk crystal x gamma0(r; 30 Å), r < 10 Å (measured 0.0293, 0.0324,
# 0.0395), and a 40 Å Ni sphere vs bulk x gamma0(r; 40 Å) (measured 0.0278)
BULK_RW_TOL = {"ni_bulk_xray": 0.04, "mgo_bulk_neutron": 0.045, "zno_bulk_neutron": 0.055}


@dataclass(frozen=True)
class Reference:
    """One PDFfit2 file: its crystal (conventional cell), parameters and G(r) [n] on r [n] Å."""

    name: str
    cell: Structure
    radiation: str  # 'xray' | 'neutron'
    qmax: float
    qdamp: float
    biso: float
    spdiameter: float
    r: np.ndarray
    g: np.ndarray


@cache
def read_reference(name: str) -> Reference:
    """Parse tests/references/pdffit2/<name>.gr (header written by the tool)."""
    cell, fields, r, g = read_pdffit2_reference(REFERENCES / f"{name}.gr")
    return Reference(name, cell, {"X": "xray", "N": "neutron"}[fields["radiation"]],
                     float(fields["qmax"]), float(fields["qdamp"]), float(fields["biso"]),
                     float(fields["spdiameter"]), r, g)


def sphere(cell: Structure, diameter: float) -> Structure:
    """Every atom of the crystal within diameter / 2 Å of the metal atom nearest the centre of a
    supercell, centred on it (positions [n, 3] Å)."""
    radius = diameter / 2
    lengths = np.linalg.norm(cell.cell, axis=1)
    big = cell.to_ase().repeat([int(np.ceil(diameter / x)) + 2 for x in lengths])
    metal = np.isin(big.numbers, elements.cation_species(cell.species))
    centre = big.positions.mean(axis=0)
    origin = big.positions[np.argmin(np.where(metal, np.linalg.norm(big.positions - centre,
                                                                    axis=1), np.inf))]
    keep = np.linalg.norm(big.positions - origin, axis=1) <= radius + 1e-6
    return Structure(big.numbers[keep], big.positions[keep] - origin, None, "particle")


def shape_function(r: np.ndarray, diameter: float) -> np.ndarray:
    """[n] characteristic function gamma0(r) of a sphere of `diameter` Å (PDFfit2's spdiameter
    envelope): 1 - 3/2 x + 1/2 x^3 for x = r / diameter < 1, else 0."""
    x = np.asarray(r) / diameter
    return np.where(x < 1, 1 - 1.5 * x + 0.5 * x**3, 0.0)


@cache
def _simulated(name: str, diameter: float) -> tuple[MeasuredGridCalculator, torch.Tensor]:
    """Our calculator on the reference's grid and the raw F(q) [1, nq] of the sphere of
    `diameter` Å cut from the reference's crystal (one Debye sum, shared by the tests)."""
    ref = read_reference(name)
    instrument = Instrument("gr", ref.radiation, QMIN, ref.qmax, ref.qdamp, ref.biso, QSTEP)
    calc = MeasuredGridCalculator(instrument, ref.r)
    return calc, calc.raw([sphere(ref.cell, diameter)])


def simulate(name: str, diameter: float, qdamp: float | None = None) -> np.ndarray:
    """[n] our G(r) of the sphere on the reference's r grid."""
    calc, raw = _simulated(name, diameter)
    return calc.transform(raw, qdamp=qdamp)[0].double().numpy()


def rw_and_scale(obs: np.ndarray, calc: np.ndarray) -> tuple[float, float]:
    value, scale = rw(obs, calc)
    return float(value), float(scale)


def first_peaks(r: np.ndarray, g: np.ndarray, n: int = 3) -> np.ndarray:
    """[n] positions (Å) of the first n maxima of G(r) above r = 1.5 Å with a prominence of 10 %
    of max |G|, refined by a parabola through the three grid points around each."""
    idx, _ = find_peaks(g, prominence=0.1 * np.abs(g).max())
    idx = idx[r[idx] > 1.5][:n]
    y0, y1, y2 = g[idx - 1], g[idx], g[idx + 1]
    step = r[1] - r[0]
    return r[idx] + 0.5 * step * (y0 - y2) / (y0 - 2 * y1 + y2)


# ------------------------------------------------------------------------------------------------
# the references themselves


@pytest.mark.parametrize("crystal", ["ni_{}_xray", "mgo_{}_neutron", "zno_{}_neutron"])
def test_pdffit2_sphere_is_its_bulk_crystal_times_the_shape_function(crystal: str) -> None:
    """The files are read as written: PDFfit2's spdiameter envelope is gamma0(r) of the bulk G(r)
    (up to the qmax ripples it convolves after the envelope)."""
    bulk, sph = read_reference(crystal.format("bulk")), read_reference(crystal.format("sphere30"))
    assert sph.spdiameter == 30.0 and bulk.spdiameter == 0.0
    np.testing.assert_array_equal(bulk.r, sph.r)
    assert bulk.r[0] == 1.0 and bulk.r[-1] == 20.0 and len(bulk.r) == 1901
    value, scale = rw_and_scale(sph.g, bulk.g * shape_function(bulk.r, 30.0))
    assert value < 0.01 and abs(scale - 1) < 0.01


# ------------------------------------------------------------------------------------------------
# DebyeCalculator's discrete sphere against PDFfit2's attenuated crystal


@pytest.mark.parametrize("name", list(GEOMETRY_RW_TOL))
def test_sphere_matches_pdffit2(name: str) -> None:
    ref = read_reference(name)
    ours = simulate(name, ref.spdiameter)
    value, scale = rw_and_scale(ref.g, ours)
    assert value < GEOMETRY_RW_TOL[name], f"{name}: Rw {value:.4f}"
    assert abs(scale - 2.0) < 0.02, f"{name}: scale {scale:.4f} (DebyeCalculator's G is half)"


def test_project_cutter_ni_sphere_matches_pdffit2() -> None:
    """`physics.cutter.cut_sphere` cuts the same 1289-atom Ni sphere (measured Rw 0.0268). For the
    oxides it keeps every O bonded to a kept metal, out to a 34 Å particle, which a 30 Å envelope
    fits less well (measured Rw 0.066 MgO, 0.045 ZnO, neutrons): by design, so not asserted."""
    ref = read_reference("ni_sphere30_xray")
    particle = cut_sphere(ref.cell, ref.spdiameter / 2)
    assert particle is not None and particle.n_atoms == sphere(ref.cell, 30.0).n_atoms == 1289
    calc, _ = _simulated("ni_sphere30_xray", 30.0)
    value, _ = rw_and_scale(ref.g, calc.transform(calc.raw([particle]))[0].double().numpy())
    assert value < GEOMETRY_RW_TOL["ni_sphere30_xray"], f"Rw {value:.4f}"


@pytest.mark.parametrize("name", [*GEOMETRY_RW_TOL, *XRAY_RW_TOL])
def test_first_three_shells_at_the_same_distances(name: str) -> None:
    ref = read_reference(name)
    theirs = first_peaks(ref.r, ref.g)
    ours = first_peaks(ref.r, simulate(name, ref.spdiameter))
    assert len(theirs) == len(ours) == 3
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=SHELL_TOL, err_msg=name)


@pytest.mark.parametrize("name", list(XRAY_RW_TOL))
def test_xray_oxide_sphere_matches_pdffit2(name: str) -> None:
    ref = read_reference(name)
    value, _ = rw_and_scale(ref.g, simulate(name, ref.spdiameter))
    assert value < XRAY_RW_TOL[name], f"{name}: Rw {value:.4f}"


@pytest.mark.parametrize("name", list(BULK_RW_TOL))
def test_sphere_matches_bulk_crystal_times_shape_function(name: str) -> None:
    """Against the crystal without envelope (r < 10 Å): our sphere ~ gamma0(r) G_bulk(r)."""
    ref = read_reference(name)
    inside = ref.r <= 10.0
    ours = simulate(name.replace("bulk", "sphere30"), 30.0)[inside]  # same crystal and grid
    value, _ = rw_and_scale(ref.g[inside] * shape_function(ref.r[inside], 30.0), ours)
    assert value < BULK_RW_TOL[name], f"{name}: Rw {value:.4f}"


@pytest.mark.slow
def test_large_ni_sphere_matches_bulk_crystal_times_shape_function() -> None:
    """A 40 Å Ni sphere (3055 atoms) against the bulk crystal x gamma0(r; 40 Å), r < 10 Å."""
    ref = read_reference("ni_bulk_xray")
    inside = ref.r <= 10.0
    ours = simulate("ni_bulk_xray", 40.0)
    value, scale = rw_and_scale(ref.g[inside] * shape_function(ref.r[inside], 40.0), ours[inside])
    assert value < BULK_RW_TOL["ni_bulk_xray"], f"Rw {value:.4f}"
    assert abs(scale - 2.0) < 0.02
    shift = first_peaks(ref.r, ours) - first_peaks(ref.r, ref.g)
    assert np.abs(shift).max() < SHELL_TOL


# ------------------------------------------------------------------------------------------------
# negative controls: the check catches a wrong lattice or a wrong qdamp


def test_lattice_one_percent_off_fails_the_check() -> None:
    """PDFfit2's Ni crystal with a 1 % larger lattice against our correct sphere (measured Rw
    0.734, first peaks 0.022-0.041 Å apart)."""
    wrong = read_reference("ni_sphere30_xray_a101")
    np.testing.assert_allclose(wrong.cell.cell, 1.01 * read_reference("ni_sphere30_xray").cell.cell)
    ours = simulate("ni_sphere30_xray", 30.0)
    value, _ = rw_and_scale(wrong.g, ours)
    assert value > 5 * GEOMETRY_RW_TOL["ni_sphere30_xray"], f"Rw {value:.4f}"
    shift = first_peaks(wrong.r, wrong.g) - first_peaks(wrong.r, ours)
    assert np.all(shift > 2 * SHELL_TOL), shift


@pytest.mark.parametrize("name", list(GEOMETRY_RW_TOL))
def test_qdamp_doubled_fails_the_check(name: str) -> None:
    """Ours with qdamp 0.08 instead of the reference's 0.04 (measured Rw 0.138, 0.165, 0.141)."""
    ref = read_reference(name)
    assert ref.qdamp == 0.04
    value, _ = rw_and_scale(ref.g, simulate(name, ref.spdiameter, qdamp=0.08))
    assert value > 2 * GEOMETRY_RW_TOL[name], f"{name}: Rw {value:.4f}"
