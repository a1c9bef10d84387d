"""`physics.crystal_pdf.CrystalPDF` (PDFfit2's attenuated-crystal model in torch) against PDFfit2
itself: the reference files in tests/references/pdffit2 (written by
`python tools/make_pdffit2_references.py`, PDFfit2 1.5.1; headers give the full structure and
parameters), and against a discrete 3 nm sphere by DebyeCalculator where both models apply.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from invdesign.core import elements
from invdesign.core.structure import Structure
from invdesign.evaluators.metrics.pattern import rw
from invdesign.physics.calculator import Instrument, MeasuredGridCalculator
from invdesign.physics.crystal_pdf import CrystalPDF, shape_function
from invdesign.physics.cutter import cut_sphere
from invdesign.testing import read_pdffit2_reference

REFERENCES = Path(__file__).resolve().parents[1] / "references" / "pdffit2"

# Rw over the file's whole grid (r 1-20 Å), measured 2026-12-02 (ours float64, fine step 0.005 Å)
# with a margin of about 1.25x. Most of the misfit sits at r 1.0-1.2 Å, within a termination
# period of PDFfit2's lower grid end (its edge ripple); over r >= 1.5 Å all are below 0.0064.
RW_TOL = {
    "ni_bulk_xray": 0.0075,  # measured 0.00591
    "ni_sphere30_xray": 0.0088,  # measured 0.00695
    "mgo_bulk_neutron": 0.0092,  # measured 0.00732
    "mgo_sphere30_neutron": 0.0112,  # measured 0.00897
    "mgo_sphere30_xray": 0.0111,  # measured 0.00889
    "zno_bulk_neutron": 0.0102,  # measured 0.00812
    "zno_sphere30_neutron": 0.0131,  # measured 0.01049
    "zno_sphere30_xray": 0.0115,  # measured 0.00920
}
# PDFgui's absolute scale: the fitted scale is 1 within 1 % (measured |s - 1| < 3e-4)
SCALE_TOL = 0.01
# our 30 Å sphere envelope vs DebyeCalculator's discrete 1289-atom Ni sphere (X-rays, one element),
# r 1.5-20 Å: measured 0.0256 (fitted scale 0.4988), close to DebyeCalculator vs PDFfit2 itself
# (0.0268, see test_reference_pdffit2.py: surface atoms cut whole vs a continuous envelope, the
# q range, the peak profile)
CUT_RW_TOL = 0.033


def read_reference(name: str) -> tuple[Structure, dict[str, str], np.ndarray, np.ndarray]:
    """(cell, header fields, r [n] Å, G [n] Å^-2) of tests/references/pdffit2/<name>.gr."""
    return read_pdffit2_reference(REFERENCES / f"{name}.gr")


def ours(cell: Structure, fields: dict[str, str], r: np.ndarray, **change) -> np.ndarray:
    """[n] our G(r) with the reference's parameters (overridden by `change`)."""
    model = CrystalPDF(cell, r, radiation={"X": "xray", "N": "neutron"}[fields["radiation"]],
                       qmax=float(fields["qmax"]))
    args = dict(lattice=model.default_lattice(), uiso=torch.tensor(float(fields["Uiso"])),
                qdamp=float(fields["qdamp"]), spdiameter=float(fields["spdiameter"]))
    args.update(change)
    with torch.no_grad():
        return model(**args).numpy()


@pytest.mark.parametrize("name", list(RW_TOL))
def test_matches_pdffit2(name: str) -> None:
    cell, fields, r, g = read_reference(name)
    value, scale = rw(g, ours(cell, fields, r))
    assert float(value) < RW_TOL[name], f"{name}: Rw {float(value):.5f}"
    assert abs(float(scale) - 1) < SCALE_TOL, f"{name}: scale {float(scale):.5f}"


def test_one_percent_larger_lattice_fails() -> None:
    """Negative control: PDFfit2's Ni sphere with a 1 % larger lattice against ours at 3.524 Å."""
    cell, fields, r, _ = read_reference("ni_sphere30_xray")
    _, _, _, g_large = read_reference("ni_sphere30_xray_a101")
    value, _ = rw(g_large, ours(cell, fields, r))
    assert float(value) > 10 * RW_TOL["ni_sphere30_xray"]


def test_sphere_is_bulk_times_shape_function_before_band_limit() -> None:
    """spdiameter 0 or None is the bulk crystal; a sphere of 1000 km is the bulk crystal too."""
    cell, fields, r, _ = read_reference("mgo_bulk_neutron")
    bulk = ours(cell, fields, r, spdiameter=None)
    np.testing.assert_array_equal(bulk, ours(cell, fields, r, spdiameter=0.0))
    np.testing.assert_allclose(ours(cell, fields, r, spdiameter=1e13), bulk, atol=1e-9)
    x = torch.tensor([0.0, 15.0, 30.0, 45.0])
    np.testing.assert_allclose(shape_function(x, torch.tensor(30.0)).numpy(),
                               [1.0, 1 - 0.75 + 0.0625, 0.0, 0.0])


def test_gradients_match_finite_differences() -> None:
    """d sum(G^2) / d(a, uiso, delta2, qdamp, spdiameter) by autograd vs central differences.
    G is piecewise linear in each pair distance between the nodes of the pair histogram (step
    0.005 Å), so the steps are tiny and `a` puts no pair on a node; its slope there is the secant
    of each Gaussian over one histogram step (within a few % of the continuous model's).)"""
    cell, _, _, _ = read_reference("mgo_sphere30_neutron")
    r = np.arange(1.5, 12.0, 0.01)
    model = CrystalPDF(cell, r, radiation="neutron", qmax=25.0)
    base = {"a": 4.2461, "uiso": 0.005, "delta2": 1.5, "qdamp": 0.03, "spdiameter": 25.0}

    def loss(p: dict[str, torch.Tensor]) -> torch.Tensor:
        a = p["a"]
        lattice = torch.stack([a, a, a, *torch.tensor([90.0, 90.0, 90.0], dtype=a.dtype)])
        g = model(lattice=lattice, uiso=p["uiso"], delta2=p["delta2"], qdamp=p["qdamp"],
                  spdiameter=p["spdiameter"])
        return (g * g).sum()

    params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in base.items()}
    loss(params).backward()
    for key, v in base.items():
        h = 1e-7 * v
        up = {k: torch.tensor(x + (h if k == key else 0.0), dtype=torch.float64)
              for k, x in base.items()}
        down = {k: torch.tensor(x - (h if k == key else 0.0), dtype=torch.float64)
                for k, x in base.items()}
        with torch.no_grad():
            numeric = float((loss(up) - loss(down)) / (2 * h))
        assert float(params[key].grad) == pytest.approx(numeric, rel=1e-3), key


def test_matches_a_discrete_3nm_sphere() -> None:
    """Where both models apply (a 3 nm fcc Ni particle): our attenuated crystal with spdiameter 30
    against DebyeCalculator's G(r) of the 1289-atom sphere cut by `physics.cutter.cut_sphere`,
    same qmax, qdamp and Uiso. DebyeCalculator's G(r) is half PDFgui's, so the scale is 1/2."""
    cell, fields, r, _ = read_reference("ni_sphere30_xray")
    keep = r >= 1.5
    particle = cut_sphere(cell, 15.0)
    assert particle is not None and particle.n_atoms == 1289
    instrument = Instrument("gr", "xray", 0.5, 25.0, 0.04, float(fields["biso"]), 0.1)
    calc = MeasuredGridCalculator(instrument, r)
    debye = calc.transform(calc.raw([particle]))[0].double().numpy()
    value, scale = rw(debye[keep], ours(cell, fields, r)[keep])
    assert float(value) < CUT_RW_TOL, f"Rw {float(value):.4f}"
    assert float(scale) == pytest.approx(0.5, abs=0.01)


def test_delta2_matches_pdffit2() -> None:
    """delta2 (not in the reference files) against PDFfit2 run here (the optional extra): ZnO, a
    40 Å sphere, X-rays, Uiso Zn 0.006 / O 0.01, qdamp 0.03, PDFfit2's grid r 1.5-30 Å, compared
    over r >= 1.6 Å. Measured 2026-12-02: Rw 0.0050, scale 0.9996 (with delta2 0 the same
    comparison from a grid starting at 1 Å gives 0.0019; the width of the 1/r^2 bands and
    PDFfit2's lower-end ripple make the rest)."""
    import io

    pdffit2 = pytest.importorskip("diffpy.pdffit2")
    from diffpy.structure import Atom, Lattice
    from diffpy.structure import Structure as DiffpyStructure

    cell, _, _, _ = read_reference("zno_sphere30_xray")
    uiso = [0.01 if z == 8 else 0.006 for z in cell.species]
    atoms = [Atom(elements.symbol(int(z)), xyz, Uisoequiv=u)
             for z, xyz, u in zip(cell.species, cell.frac_positions, uiso, strict=True)]
    pdffit2.redirect_stdout(io.StringIO())
    fit = pdffit2.PdfFit()
    fit.add_structure(DiffpyStructure(atoms, lattice=Lattice(*cell.cell_parameters())))
    fit.alloc("X", 25.0, 0.03, 1.5, 30.0, 2851)
    fit.setvar(fit.spdiameter, 40.0)
    fit.setvar(fit.delta2, 1.5)
    fit.calc()
    r, theirs = np.asarray(fit.getR()), np.asarray(fit.getpdf_fit())
    model = CrystalPDF(cell, r, radiation="xray", qmax=25.0)
    with torch.no_grad():
        g = model(lattice=model.default_lattice(), uiso=torch.tensor(uiso, dtype=torch.float64),
                  delta2=1.5, qdamp=0.03, spdiameter=40.0).numpy()
    value, scale = rw(theirs[r >= 1.6], g[r >= 1.6])
    assert float(value) < 0.0065, f"Rw {float(value):.4f}"
    assert abs(float(scale) - 1) < SCALE_TOL


def test_an_absurd_uiso_costs_one_grid_not_an_exabyte() -> None:
    """An optimiser's trial Uiso of 1e12 Å^2 once asked for an FFT of ~1e16 points (the padding
    was 6 sigma, so the call died allocating memory): the padding is capped at the grid's length
    and the call returns a finite G(r) on the grid."""
    cell, fields, r, _ = read_reference("mgo_bulk_neutron")
    smeared = ours(cell, fields, r, uiso=torch.tensor(1e12))
    assert smeared.shape == r.shape and np.all(np.isfinite(smeared))


def test_a_lattice_no_cell_can_have_is_not_an_index_error() -> None:
    """An optimiser's trial angles alpha = beta = gamma = 150 deg have no real metric (the
    distances come out NaN); the NaN pair bins once indexed out of the histogram (IndexError,
    which killed a whole polish run). The call now returns a curve a least-squares fit can reject
    (NaN: no cell has this volume), as it rejects any other non-finite trial step."""
    cell, fields, r, _ = read_reference("mgo_bulk_neutron")
    lattice = torch.tensor([4.2, 4.2, 4.2, 150.0, 150.0, 150.0], dtype=torch.float64)
    curve = ours(cell, fields, r, lattice=lattice)
    assert curve.shape == r.shape
