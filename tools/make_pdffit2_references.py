"""Write reference G(r) files computed by PDFfit2, an independent simulator, for
`tests/physics/test_reference_pdffit2.py`.

PDFfit2 computes the PDF of a periodic crystal (a sum over the crystal's pairs out to rmax, with
Gaussian peaks of width sigma_ij^2 = U_i + U_j, termination ripples of the q range 0..qmax and
the q damping exp(-(r qdamp)^2 / 2)), optionally multiplied by the shape function of a sphere of
diameter `spdiameter` (Å). Each file `tests/references/pdffit2/<name>.gr` holds a header stating
the structure (lattice and every atom of the cell in fractional coordinates, so the test rebuilds
the identical cell), the radiation, qmax, qdamp, Uiso, spdiameter, r grid, the PDFfit2 version and
this command, then r (Å) and G (Å^-2) columns.

Needs the optional extra: `pip install -e '.[reference]'`. The extra caps diffpy.pdffit2 below
1.5.2: on this machine's index 1.5.2 is only a source distribution, and building it installs a
package without its C extension (`import diffpy.pdffit2` then fails with a circular-import
error); 1.5.1 ships manylinux wheels.

Usage: python tools/make_pdffit2_references.py [--out tests/references/pdffit2]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from ase.spacegroup import crystal

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "references" / "pdffit2"
COMMAND = "python tools/make_pdffit2_references.py"

QMAX = 25.0  # Å^-1
QDAMP = 0.04  # Å^-1
BISO = 0.3  # Å^2; PDFfit2 takes Uiso = biso / (8 pi^2)
RMIN, RMAX, RSTEP = 1.0, 20.0, 0.01  # Å
SPHERE = 30.0  # Å, spdiameter of the attenuated references


@dataclass(frozen=True)
class Crystal:
    """A crystal from its space group and asymmetric unit (lattice in Å and degrees)."""

    name: str
    description: str
    symbols: tuple[str, ...]
    basis: tuple[tuple[float, float, float], ...]
    spacegroup: int
    cellpar: tuple[float, float, float, float, float, float]


# lattice constants: ../shared/spec/CHILI.md (textbook values) and the task (Ni)
CRYSTALS = (
    Crystal("ni", "fcc Ni, Fm-3m (225), Ni 4a", ("Ni",), ((0, 0, 0),), 225,
            (3.524, 3.524, 3.524, 90, 90, 90)),
    Crystal("mgo", "rock-salt MgO, Fm-3m (225), Mg 4a, O 4b", ("Mg", "O"),
            ((0, 0, 0), (0.5, 0.5, 0.5)), 225, (4.213, 4.213, 4.213, 90, 90, 90)),
    Crystal("zno", "wurtzite ZnO, P6_3mc (186), Zn 2b (1/3,2/3,0), O 2b (1/3,2/3,0.375)",
            ("Zn", "O"), ((1 / 3, 2 / 3, 0), (1 / 3, 2 / 3, 0.375)), 186,
            (3.25, 3.25, 5.207, 90, 90, 120)),
)

#: (file name, crystal, radiation 'X' | 'N', spdiameter Å (0: bulk crystal), lattice factor).
#: Neutrons for the oxides (constant scattering lengths: a test of geometry alone; PDFfit2 weights
#: X-ray pairs by f(0) while DebyeCalculator uses f(q)); X-rays for one-element Ni, whose form
#: factor cancels. `ni_sphere30_xray_a101` is the negative control: the lattice 1 % too large.
REFERENCES = (
    ("ni_bulk_xray", CRYSTALS[0], "X", 0.0, 1.0),
    ("ni_sphere30_xray", CRYSTALS[0], "X", SPHERE, 1.0),
    ("ni_sphere30_xray_a101", CRYSTALS[0], "X", SPHERE, 1.01),
    ("mgo_bulk_neutron", CRYSTALS[1], "N", 0.0, 1.0),
    ("mgo_sphere30_neutron", CRYSTALS[1], "N", SPHERE, 1.0),
    ("mgo_sphere30_xray", CRYSTALS[1], "X", SPHERE, 1.0),
    ("zno_bulk_neutron", CRYSTALS[2], "N", 0.0, 1.0),
    ("zno_sphere30_neutron", CRYSTALS[2], "N", SPHERE, 1.0),
    ("zno_sphere30_xray", CRYSTALS[2], "X", SPHERE, 1.0),
)


def conventional_cell(c: Crystal) -> tuple[list[str], np.ndarray]:
    """Symbols [n] and fractional coordinates [n, 3] of every atom of the conventional cell."""
    atoms = crystal(list(c.symbols), [list(b) for b in c.basis], spacegroup=c.spacegroup,
                    cellpar=list(c.cellpar), primitive_cell=False)
    return atoms.get_chemical_symbols(), np.asarray(atoms.get_scaled_positions(wrap=True))


def pdffit2_gr(c: Crystal, radiation: str, spdiameter: float) -> tuple[np.ndarray, np.ndarray]:
    """(r [n] Å, G [n] Å^-2) of the crystal from PDFfit2 on the module's r grid."""
    # lazy: the optional extra is needed only here (benchmarks/pdffit2_engine.py imports it)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import pdffit2_engine

    symbols, frac = conventional_cell(c)
    cell = pdffit2_engine.cell_from_arrays(symbols, frac, c.cellpar, name=c.name)
    return pdffit2_engine.simulate(cell, dict.fromkeys(cell.elements, BISO / (8 * np.pi**2)),
                                   radiation=radiation, qmax=QMAX, qdamp=QDAMP, rmin=RMIN,
                                   rmax=RMAX, rstep=RSTEP, spdiameter=spdiameter)


def header(c: Crystal, radiation: str, spdiameter: float) -> str:
    """The '# '-prefixed header of a reference file (parsed by the test)."""
    import diffpy.pdffit2  # lazy: optional extra

    symbols, frac = conventional_cell(c)
    lines = [
        "PDFfit2 reference G(r) for tests/physics/test_reference_pdffit2.py",
        f"structure: {c.description}",
        "lattice (a b c in A, alpha beta gamma in deg): " + " ".join(f"{v:g}" for v in c.cellpar),
        f"radiation: {radiation}",
        f"qmax (1/A): {QMAX:g}",
        f"qdamp (1/A): {QDAMP:g}",
        f"biso (A^2): {BISO:g}",
        f"Uiso (A^2): {BISO / (8 * np.pi**2):.10g}",
        f"spdiameter (A, 0 = bulk crystal): {spdiameter:g}",
        f"r grid (A): {RMIN:g} {RMAX:g} {RSTEP:g}",
        "delta1 delta2 qbroad: 0 0 0",
        f"pdffit2 version: {diffpy.pdffit2.__version__}",
        f"command: {COMMAND}",
        f"atoms ({len(symbols)}, fractional):",
    ]
    lines += [f"atom: {s} {x:.10f} {y:.10f} {z:.10f}" for s, (x, y, z) in zip(symbols, frac,
                                                                              strict=True)]
    lines.append("columns: r (A) G (A^-2)")
    return "\n".join("# " + line for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, c, radiation, spdiameter, factor in REFERENCES:
        if factor != 1.0:
            lengths = tuple(factor * v for v in c.cellpar[:3])
            c = replace(c, description=f"{c.description}, lattice x {factor:g} (negative control)",
                        cellpar=lengths + c.cellpar[3:])
        r, g = pdffit2_gr(c, radiation, spdiameter)
        body = "\n".join(f"{x:.2f} {y:.8e}" for x, y in zip(r, g, strict=True))
        path = args.out / f"{name}.gr"
        path.write_text(header(c, radiation, spdiameter) + "\n" + body + "\n")
        print(f"{path}: {len(r)} points, {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
