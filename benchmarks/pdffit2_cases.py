"""The cases of `benchmarks/measured_vs_pdffit2.py`: a simulated set made by PDFfit2 and the
measured files with known structures.

Simulated set: nanoparticles of the structure-type library (`invdesign.crystals.library`), each
type's example compound (real elements, real lattice) strained by a few percent per free lattice
length, as attenuated crystals (PDFfit2: periodic G(r) times a sphere's shape function), with one
Uiso per element, delta2, qdamp, the low-q cut of the measurement (qmin) and Gaussian noise. Every
value is drawn from `SimCase.draw` by the seed, so the set is reproducible. Files are written in
the layout of PDFgetX3 (`[PDF]` block with mode, composition, qmin, qmax, qdamp and the r grid,
then `#### start data`), named by case number only (the structure type is not in the file).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pdffit2_engine as engine
from ase.spacegroup import crystal
from pymatgen.core import Composition

from invdesign.core.structure import Structure

RMIN, RMAX, RSTEP = 0.5, 30.0, 0.01  # Å, the r grid of the simulated files
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "measured"

# ranges of the drawn values
DIAMETER = (20.0, 100.0)  # Å (2-10 nm)
UISO = (0.003, 0.01)  # Å^2, per element
DELTA2 = (0.0, 2.0)  # Å^2
QMIN = (0.5, 1.0)  # Å^-1
QMAX = (18.0, 25.0)  # Å^-1
QDAMP = (0.02, 0.05)  # Å^-1
STRAIN = 0.03  # each free lattice length x U(1 - STRAIN, 1 + STRAIN)
NOISE = (0.01, 0.02)  # Gaussian sigma / max |G| over the file's r range
NEUTRON_FRACTION = 0.25


@dataclass(frozen=True)
class SimCase:
    """One simulated file: the truth and the measurement settings.

    Attributes:
        name: 'sim_<index>', also the file stem.
        structure_type: the library type (the answer); composition: its example's formula.
        radiation: 'xray' or 'neutron'; qmin, qmax, qdamp (Å^-1); spdiameter (Å); delta2 (Å^2);
        uiso: element -> Å^2; cellpar: the strained lattice (Å, deg); noise: sigma / max |G|;
        seed: the noise seed.
    """

    name: str
    structure_type: str
    composition: str
    system: str
    radiation: str
    qmin: float
    qmax: float
    qdamp: float
    spdiameter: float
    delta2: float
    uiso: dict[str, float]
    cellpar: tuple[float, ...]
    noise: float
    seed: int


@dataclass(frozen=True)
class KnownType:
    """A structure type with its example cell (the truth of the simulated cases)."""

    name: str
    cell: engine.Cell
    composition: str


@cache
def library_types() -> list[KnownType]:
    """Every type of the structure-type library with its example compound's cell."""
    from invdesign.crystals.library import load_library  # lazy: the library is still being built

    types = []
    for stype in load_library():
        s: Structure = stype.cell(None)
        cell = engine.cell_from_lattice_rows(s.symbols, s.positions, s.cell, stype.system,
                                             stype.name)
        types.append(KnownType(stype.name, cell, _formula(cell.symbols)))
    return types


def _formula(symbols: tuple[str, ...]) -> str:
    """Reduced formula, e.g. 'Li2O'."""
    return Composition(" ".join(symbols)).reduced_formula


def draw(types: list[KnownType], n_cases: int, seed: int) -> list[SimCase]:
    """`n_cases` cases; types are taken in a seeded order, round robin, so any prefix of the set
    covers as many types as it can."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(types))
    cases = []
    for i in range(n_cases):
        t = types[int(order[i % len(types)])]
        cell = t.cell
        groups, _ = engine.lattice_constraints(cell)
        par = list(cell.cellpar)
        for group in groups:
            if group[0] <= 3:  # lengths only; angles keep their values
                f = rng.uniform(1 - STRAIN, 1 + STRAIN)
                for j in group:
                    par[j - 1] *= f
        cases.append(SimCase(
            name=f"sim_{i:03d}", structure_type=t.name, composition=t.composition,
            system=cell.system,
            radiation="neutron" if rng.random() < NEUTRON_FRACTION else "xray",
            qmin=round(rng.uniform(*QMIN), 3), qmax=round(rng.uniform(*QMAX), 2),
            qdamp=round(rng.uniform(*QDAMP), 4), spdiameter=round(rng.uniform(*DIAMETER), 1),
            delta2=round(rng.uniform(*DELTA2), 3),
            uiso={e: round(rng.uniform(*UISO), 5) for e in cell.elements},
            cellpar=tuple(round(v, 5) for v in par), noise=round(rng.uniform(*NOISE), 4),
            seed=int(rng.integers(2**31)),
        ))
    return cases


def true_cell(case: SimCase, types: dict[str, KnownType]) -> engine.Cell:
    """The case's cell: its type's example with the strained lattice."""
    cell = types[case.structure_type].cell
    return engine.Cell(cell.symbols, cell.frac, case.cellpar, cell.system, cell.name)


def clean_curve(case: SimCase, cell: engine.Cell) -> tuple[np.ndarray, np.ndarray]:
    """(r [m] Å, G [m] Å^-2): the case's G(r) before noise, on the file's grid."""
    return engine.simulate(cell, case.uiso, radiation="N" if case.radiation == "neutron" else "X",
                           qmax=case.qmax, qdamp=case.qdamp, rmin=RMIN, rmax=RMAX, rstep=RSTEP,
                           delta2=case.delta2, spdiameter=case.spdiameter, qmin=case.qmin)


def floor_rw(case: SimCase, cell: engine.Cell, r: np.ndarray, g: np.ndarray,
             fit_range: tuple[float, float]) -> float:
    """Rw (least-squares scale) of the noise-free truth against the file's G(r) over fit_range:
    the noise floor no fit can beat except by fitting noise."""
    r0, g0 = clean_curve(case, cell)
    keep = (r0 >= fit_range[0] - 1e-9) & (r0 <= fit_range[1] + 1e-9)
    obs = np.interp(r0[keep], r, g)
    calc = g0[keep]
    scale = float(calc @ obs) / float(calc @ calc)
    return float(np.sqrt(np.sum((obs - scale * calc) ** 2) / np.sum(obs**2)))


def write_case(case: SimCase, cell: engine.Cell, folder: Path) -> Path:
    """Simulate `case` with PDFfit2, add its noise and write `<folder>/<name>.gr`."""
    r, g = clean_curve(case, cell)
    rng = np.random.default_rng(case.seed)
    g = g + rng.normal(0.0, case.noise * float(np.abs(g).max()), g.shape)
    header = [
        "# PDFgetX3-style file written by benchmarks/pdffit2_cases.py (simulated by PDFfit2)",
        "[PDF]",
        f"mode = {case.radiation}",
        f"composition = {case.composition}",
        f"qmin = {case.qmin:g}",
        f"qmax = {case.qmax:g}",
        f"qdamp = {case.qdamp:g}",
        f"rmin = {RMIN:g}",
        f"rmax = {RMAX:g}",
        f"rstep = {RSTEP:g}",
        "",
        "#### start data",
        "#S 1",
        "#L r($\\AA$)  G($\\AA^{-2}$)",
    ]
    body = "\n".join(f"{x:.2f} {y:.6e}" for x, y in zip(r, g, strict=True))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{case.name}.gr"
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(header) + "\n" + body + "\n")
    tmp.replace(path)
    return path


def write_manifest(cases: list[SimCase], path: Path) -> None:
    """The truth of every case, as JSON."""
    path.write_text(json.dumps([asdict(c) for c in cases], indent=1))


# ---- measured files with known structures ----------------------------------------------------


@dataclass(frozen=True)
class MeasuredCase:
    """A measured file and the structure an expert fits to it.

    Attributes:
        name, file: label and path; structure_type: the known type; composition: as passed to
        `sample`; particle: refine spdiameter (else bulk); diameters: PDFfit2 starts (Å).
    """

    name: str
    file: Path
    structure_type: str
    composition: str
    particle: bool
    diameters: tuple[float, ...] = (30.0,)


def _ase_cell(symbols: list[str], basis: list[list[float]], spacegroup: int,
              cellpar: list[float], system: str, name: str) -> engine.Cell:
    atoms = crystal(symbols, basis, spacegroup=spacegroup, cellpar=cellpar)
    return engine.cell_from_arrays(atoms.get_chemical_symbols(),
                                   atoms.get_scaled_positions(wrap=True), cellpar, system, name)


def measured_cases(data: Path = DATA) -> list[tuple[MeasuredCase, engine.Cell]]:
    """The measured files with known structures and their starting cells."""
    ni = engine.cell_from_file(str(data / "Ni.stru"), "cubic")
    # CdSe wurtzite (P6_3mc): a 4.2999, c 7.0109 Å, Se z = 0.375 (ideal)
    cdse = _ase_cell(["Cd", "Se"], [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.375]], 186,
                     [4.2999, 4.2999, 7.0109, 90, 90, 120], "hexagonal", "wurtzite CdSe")
    pt = _ase_cell(["Pt"], [[0, 0, 0]], 225, [3.924] * 3 + [90] * 3, "cubic", "fcc Pt")
    return [
        (MeasuredCase("Ni X-ray", data / "Ni-xray.gr", "fcc", "Ni", False), ni),
        (MeasuredCase("Ni neutron", data / "Ni-neutron.gr", "fcc", "Ni", False), ni),
        (MeasuredCase("CdSe bulk", data / "CdSe-bulk.gr", "wurtzite", "CdSe", False), cdse),
        (MeasuredCase("Pt JQ_S1", data / "Pt-nanoparticle-JQ_S1.gr", "fcc", "Pt", True,
                      (15.0, 30.0, 60.0)), pt),
    ]


#: item 7: real files whose structures a user knows from the literature (not refined by PDFfit2)
CHILI_FILES = (
    ("Bi2Fe4O9 (mullite-type)", "chili_experimental/Bi2Fe4O9.gr", None),
    ("W5O14 cluster", "chili_experimental/W5O14_cluster.gr", "W5O14"),
    ("alpha-Keggin", "chili_experimental/DanMAX_AlphaKeggin.gr", None),
    ("Au144(SC12)60", "chili_experimental/Au144SC12_100K_APS.gr", None),
    ("Pt S1", "chili_experimental/Pt_S1.gr", None),
)
