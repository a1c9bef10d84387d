"""PDFfit2, the PDF community's reference engine, as used by the benchmarks and tools.

Two jobs, both on PDFfit2's attenuated-crystal model (the periodic crystal's G(r), with Gaussian
peaks of width sigma_ij^2 = U_i + U_j sharpened by delta2 / r^2, termination ripples of the q
range 0..qmax and the damping exp(-(r qdamp)^2 / 2), times the shape function of a sphere of
diameter `spdiameter` in Å; 0 = bulk):

- `simulate`: G(r) (Å^-2) of a known cell with given Uiso per element, delta2, qdamp and diameter,
  optionally with the low-q cut of a measurement (`qmin`: the F(Q) below qmin removed, as a
  PDFgetX3 transform of data measured from qmin does);
- `fit`: refine a known cell against a G(r) as an expert does in PDFgui: scale, lattice by crystal
  system (a = b = c for cubic, a and c for hexagonal, trigonal and tetragonal, ...), delta2, one
  Uiso per element, spdiameter for particles, qdamp only when the data's header does not give it;
  atom positions fixed. Several starts of the diameter (an expert tries a few); the best Rw wins.

PDFfit2 needs a uniform r grid (`read_data_lists` with a non-uniform one fails with "Singular
matrix"), so `fit` resamples the data first. Rw is PDFfit2's own, unweighted (no dG passed), which
is `invdesign.evaluators.metrics.pattern.rw` at the refined scale.

Needs the optional extra: `pip install -e '.[reference]'` (diffpy.pdffit2 < 1.5.2,
diffpy.structure).
"""

from __future__ import annotations

import contextlib
import io
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import diffpy.pdffit2
import numpy as np
from diffpy.pdffit2 import PdfFit, redirect_stdout
from diffpy.structure import Atom, Lattice, loadStructure
from diffpy.structure import Structure as DiffpyStructure
from pymatgen.core import Lattice as PmgLattice
from pymatgen.core import Structure as PmgStructure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

SCAN = tuple(np.round(np.arange(0.95, 1.0501, 0.0025), 4))  # isotropic lattice factors tried
SYSTEMS = ("cubic", "hexagonal", "trigonal", "tetragonal", "orthorhombic", "monoclinic",
           "triclinic")


@dataclass(frozen=True)
class Cell:
    """A known crystal: every atom of the cell.

    Attributes:
        symbols: [n] element symbols.
        frac: [n, 3] fractional coordinates.
        cellpar: a, b, c (Å), alpha, beta, gamma (degrees).
        system: crystal system (one of `SYSTEMS`); decides which lattice parameters are refined.
        name: a label (structure type or file).
    """

    symbols: tuple[str, ...]
    frac: np.ndarray
    cellpar: tuple[float, float, float, float, float, float]
    system: str
    name: str = ""

    @property
    def elements(self) -> list[str]:
        """The distinct elements, in order of first appearance."""
        return list(dict.fromkeys(self.symbols))


@dataclass
class FitResult:
    """A PDFfit2 refinement.

    Attributes:
        rw: PDFfit2's Rw (unweighted) over the fit range.
        params: scale, a, b, c, alpha, beta, gamma (Å, deg), delta2 (Å^2), qdamp (Å^-1),
            spdiameter (Å, 0 = bulk), uiso_<Symbol> (Å^2).
        seconds: wall time of all starts.
        r: [m] fit grid (Å); observed, calculated: [m] G(r) (Å^-2) there.
        starts: Rw of each start.
    """

    rw: float
    params: dict[str, float]
    seconds: float
    r: np.ndarray
    observed: np.ndarray
    calculated: np.ndarray
    starts: list[float] = field(default_factory=list)


def version() -> str:
    """diffpy.pdffit2's version."""
    return diffpy.pdffit2.__version__


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Send PDFfit2's banner and progress output (its own stream) nowhere."""
    redirect_stdout(io.StringIO())
    try:
        yield
    finally:
        redirect_stdout(sys.stdout)


def crystal_system(symbols: Sequence[str], frac: np.ndarray, cellpar: Sequence[float],
                   symprec: float = 0.01) -> str:
    """The crystal system of a cell (spglib through pymatgen)."""
    pmg = PmgStructure(PmgLattice.from_parameters(*cellpar), list(symbols), np.asarray(frac))
    return SpacegroupAnalyzer(pmg, symprec=symprec).get_crystal_system()


def cell_from_arrays(symbols: Sequence[str], frac: np.ndarray, cellpar: Sequence[float],
                     system: str | None = None, name: str = "") -> Cell:
    """A `Cell`; the system is found by spglib when not given."""
    frac = np.asarray(frac, dtype=float).reshape(-1, 3)
    system = system or crystal_system(symbols, frac, cellpar)
    if system not in SYSTEMS:
        raise ValueError(f"unknown crystal system {system!r}")
    return Cell(tuple(symbols), frac, tuple(float(v) for v in cellpar), system, name)


def cell_from_lattice_rows(symbols: Sequence[str], positions: np.ndarray, rows: np.ndarray,
                           system: str | None = None, name: str = "") -> Cell:
    """A `Cell` from Cartesian positions [n, 3] Å and lattice rows [3, 3] Å (the `Structure`
    record's layout)."""
    lattice = PmgLattice(np.asarray(rows, dtype=float))
    frac = lattice.get_fractional_coords(np.asarray(positions, dtype=float))
    return cell_from_arrays(symbols, frac % 1.0, lattice.parameters, system, name)


def cell_from_file(path: str, system: str | None = None) -> Cell:
    """A `Cell` from a structure file diffpy.structure reads (.stru, .cif, ...)."""
    s = loadStructure(str(path))
    lat = s.lattice
    symbols = [_symbol(a.element) for a in s]
    return cell_from_arrays(symbols, s.xyz, (lat.a, lat.b, lat.c, lat.alpha, lat.beta, lat.gamma),
                            system, name=str(path))


def _symbol(element: str) -> str:
    """'NI' -> 'Ni', 'O2-' -> 'O' (PDFfit2 and .stru files write upper case or ions)."""
    letters = "".join(ch for ch in element if ch.isalpha())
    return letters[:1].upper() + letters[1:2].lower()


def _diffpy(cell: Cell, uiso: dict[str, float]) -> DiffpyStructure:
    lattice = Lattice(*cell.cellpar)
    atoms = [Atom(s, xyz, lattice=lattice, Uisoequiv=uiso[s])
             for s, xyz in zip(cell.symbols, cell.frac, strict=True)]
    return DiffpyStructure(atoms, lattice=lattice)


def _grid(rmin: float, rmax: float, rstep: float) -> tuple[float, float, int]:
    n = int(round((rmax - rmin) / rstep)) + 1
    return rmin, rmin + (n - 1) * rstep, n


def simulate(cell: Cell, uiso: dict[str, float], *, radiation: str, qmax: float, qdamp: float,
             rmin: float, rmax: float, rstep: float = 0.01, delta2: float = 0.0,
             spdiameter: float = 0.0, qmin: float = 0.0,
             qbroad: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(r [m] Å, G [m] Å^-2) of `cell` by PDFfit2 on rmin..rmax step rstep.

    radiation 'X' or 'N'; uiso: element -> Å^2. With qmin > 0 (needs spdiameter > 0, so G(r)
    ends at r = spdiameter) the F(Q) below qmin is removed, as in a transform of data measured
    from qmin: G is computed out to spdiameter, its sine transform over 0..qmin subtracted.
    """
    if qmin > 0 and spdiameter <= 0:
        raise ValueError("qmin > 0 needs a finite particle (spdiameter > 0)")
    lo, hi, n = _grid(rstep if qmin > 0 else rmin,
                      max(rmax, spdiameter + 1.0) if qmin > 0 else rmax, rstep)
    with quiet():
        pf = PdfFit()
        pf.add_structure(_diffpy(cell, uiso))
        pf.alloc(radiation, qmax, qdamp, lo, hi, n)
        pf.setvar(pf.spdiameter, spdiameter)
        pf.setvar(pf.delta1, 0.0)
        pf.setvar(pf.delta2, delta2)
        pf.setvar(pf.qbroad, qbroad)
        pf.calc()
        r, g = np.asarray(pf.getR()), np.asarray(pf.getpdf_fit())
    if qmin > 0:
        g = g - low_q_part(r, g, qmin)
    keep = (r >= rmin - rstep / 2) & (r <= rmax + rstep / 2)
    return r[keep], g[keep]


def low_q_part(r: np.ndarray, g: np.ndarray, qmin: float) -> np.ndarray:
    """[m] the part of G(r) [m] (uniform r from ~0 to where G ends, Å) carried by F(Q), Q < qmin:
    (2 / pi) int_0^qmin F(Q) sin(Q r) dQ with F(Q) = int G(r) sin(Q r) dr."""
    dr = float(r[1] - r[0])
    dq = math.pi / (4 * float(r[-1]))
    q = np.arange(0.5 * dq, qmin, dq)
    kernel = np.sin(np.outer(q, r))  # [nq, m]
    fq = kernel @ g * dr
    return (2 / math.pi) * (fq @ kernel) * dq


def lattice_constraints(cell: Cell) -> tuple[list[list[int]], list[int]]:
    """(groups of lattice indices 1..6 tied to one refined parameter, indices held fixed) for the
    cell's crystal system in its standard setting."""
    a, b, c, al, be, ga = cell.cellpar
    s = cell.system
    if s == "cubic":
        return [[1, 2, 3]], [4, 5, 6]
    if s in ("hexagonal", "tetragonal") or (s == "trigonal" and abs(ga - 120) < 0.5):
        return [[1, 2], [3]], [4, 5, 6]
    if s == "trigonal":  # rhombohedral axes: a = b = c, alpha = beta = gamma
        return [[1, 2, 3], [4, 5, 6]], []
    if s == "orthorhombic":
        return [[1], [2], [3]], [4, 5, 6]
    if s == "monoclinic":
        free = [i for i, v in zip((4, 5, 6), (al, be, ga), strict=True) if abs(v - 90) > 0.01]
        return [[1], [2], [3]] + [[i] for i in free], [i for i in (4, 5, 6) if i not in free]
    return [[1], [2], [3], [4], [5], [6]], []


def _iso_factors(cellpar: Sequence[float]) -> tuple[float, float, float]:
    """cos(alpha*), cos(beta*), cos(gamma*): U12 = Uiso cos(gamma*), U13 = Uiso cos(beta*),
    U23 = Uiso cos(alpha*) for an isotropic ADP in PDFfit2's crystal-axes convention."""
    rec = PmgLattice.from_parameters(*cellpar).reciprocal_lattice
    return tuple(math.cos(math.radians(x)) for x in rec.angles)  # type: ignore[return-value]


def resample(r: np.ndarray, g: np.ndarray, fit_range: tuple[float, float],
             rstep: float) -> tuple[np.ndarray, np.ndarray]:
    """G on the uniform grid fit_range[0]..fit_range[1] step rstep (linear interpolation)."""
    lo, hi, n = _grid(fit_range[0], min(fit_range[1], float(r[-1])), rstep)
    grid = lo + rstep * np.arange(n)
    return grid, np.interp(grid, r, g)


def fit(cell: Cell, r: np.ndarray, g: np.ndarray, *, radiation: str, qmax: float,
        qdamp: float | None, fit_range: tuple[float, float], particle: bool,
        diameters: Sequence[float] = (30.0, 60.0), rstep: float = 0.01,
        start_uiso: float = 0.005, start_delta2: float = 1.0, toler: float = 1e-6,
        scan: Sequence[float] = SCAN) -> FitResult:
    """Refine `cell` against G(r) (r [n] Å, g [n] Å^-2) as an expert does in PDFgui.

    qdamp None: refined (start 0.04 Å^-1), else fixed. particle: spdiameter refined from each of
    `diameters` (Å); else bulk (0). The best start's values are returned. Before refining, the
    lattice is scaled by the factor of `scan` that fits best (as an expert first lines up the
    peaks by eye: least squares alone stalls in a false minimum when the lattice is off by a few
    percent).
    """
    t0 = time.perf_counter()
    grid, obs = resample(np.asarray(r, float), np.asarray(g, float), fit_range, rstep)
    best: FitResult | None = None
    rws = []
    for d in diameters if particle else (0.0,):
        res = _fit_once(cell, grid, obs, radiation, qmax, qdamp, fit_range, d, start_uiso,
                        start_delta2, toler, scan)
        rws.append(res.rw)
        if best is None or res.rw < best.rw:
            best = res
    assert best is not None
    best.starts = rws
    best.seconds = time.perf_counter() - t0
    return best


def _fit_once(cell: Cell, grid: np.ndarray, obs: np.ndarray, radiation: str, qmax: float,
              qdamp: float | None, fit_range: tuple[float, float], diameter: float,
              start_uiso: float, start_delta2: float, toler: float,
              scan: Sequence[float]) -> FitResult:
    elements = cell.elements
    with quiet():
        pf = PdfFit()
        pf.add_structure(_diffpy(cell, dict.fromkeys(elements, start_uiso)))
        pf.read_data_lists(radiation, qmax, 0.04 if qdamp is None else qdamp, list(grid),
                           list(obs))
        pf.pdfrange(1, fit_range[0], float(grid[-1]))
        k = 1
        pf.constrain(pf.dscale, f"@{k}")
        pf.setpar(k, 1.0)
        groups, _fixed = lattice_constraints(cell)
        for group in groups:
            k += 1
            for i in group:
                pf.constrain(pf.lat(i), f"@{k}")
            pf.setpar(k, cell.cellpar[group[0] - 1])
        k += 1
        pf.constrain(pf.delta2, f"@{k}")
        pf.setpar(k, start_delta2)
        names = {"scale": 1, "delta2": k}
        if qdamp is None:
            k += 1
            pf.constrain(pf.qdamp, f"@{k}")
            pf.setpar(k, 0.04)
            names["qdamp"] = k
        if diameter > 0:
            k += 1
            pf.constrain(pf.spdiameter, f"@{k}")
            pf.setpar(k, diameter)
            names["spdiameter"] = k
        ca, cb, cg = _iso_factors(cell.cellpar)
        for element in elements:
            k += 1
            names[f"uiso_{element}"] = k
            pf.setpar(k, start_uiso)
            for i, s in enumerate(cell.symbols, start=1):
                if s != element:
                    continue
                for var in (pf.u11(i), pf.u22(i), pf.u33(i)):
                    pf.constrain(var, f"@{k}")
                for var, cos in ((pf.u12(i), cg), (pf.u13(i), cb), (pf.u23(i), ca)):
                    if abs(cos) > 1e-9:
                        pf.constrain(var, f"@{k}*{cos:.12g}")
        _scan_lattice(pf, cell, groups, obs, scan)
        try:
            pf.refine(toler)
            rw = float(pf.getrw())
        except Exception:  # PDFfit2 raises its own errors on a diverged refinement
            return FitResult(math.inf, {}, 0.0, grid, obs, np.zeros_like(obs))
        params = {name: float(pf.getpar(i)) for name, i in names.items()}
        lat = [float(pf.getvar(pf.lat(i))) for i in range(1, 7)]
        params.update(zip(("a", "b", "c", "alpha", "beta", "gamma"), lat, strict=True))
        params.setdefault("qdamp", float(pf.getvar(pf.qdamp)))
        params.setdefault("spdiameter", float(pf.getvar(pf.spdiameter)))
        r_fit = np.asarray(pf.getR())
        calc = np.asarray(pf.getpdf_fit())
        observed = np.asarray(pf.getpdf_obs())
    if len(observed) != len(r_fit):  # getpdf_obs covers the data, getR the fit range
        observed = np.interp(r_fit, grid, obs)
    return FitResult(rw, params, 0.0, r_fit, observed, calc)


def _scan_lattice(pf: PdfFit, cell: Cell, groups: list[list[int]], obs: np.ndarray,
                  factors: Sequence[float]) -> None:
    """Set the lattice lengths (PDFfit2 parameters 2..) to the cell's times the factors whose G(r),
    at a least-squares scale, fits `obs` best: one isotropic factor from `factors`, then each
    independent length alone within +-3 % of it."""
    keys = [k for k, group in enumerate(groups, start=2) if group[0] <= 3]
    start = {k: cell.cellpar[groups[k - 2][0] - 1] for k in keys}

    def cost(f: dict[int, float]) -> float:
        for k in keys:  # calc() applies the constraints, so the parameters are set
            pf.setpar(k, start[k] * f[k])
        pf.calc()
        calc = np.asarray(pf.getpdf_fit())
        o = obs[-len(calc):]
        scale = float(calc @ o) / max(float(calc @ calc), 1e-30)
        return float(np.sum((o - scale * calc) ** 2))

    iso = min(factors, key=lambda f: cost(dict.fromkeys(keys, f)))
    best = dict.fromkeys(keys, iso)
    if len(keys) > 1:
        for k in keys:
            best[k] = min((iso * (1 + d) for d in np.arange(-0.03, 0.0301, 0.0025)),
                          key=lambda f, k=k: cost({**best, k: f}))
    for k in keys:
        pf.setpar(k, start[k] * best[k])
