"""Write the example PDFs in `examples/`: patterns simulated by invdesign itself, not measurements.

    python examples/make_examples.py            # rewrites examples/*.gr and the true structures

Each example is a known particle whose G(r) is computed with DebyeCalculator on a measured-style
grid (r = 0-30 Å, step 0.01 Å; x-ray, qmin 1.0, qmax 25.0 Å^-1, qdamp 0.04 Å^-1, biso 0.4 Å^2),
with 0.2 % Gaussian noise (seeded), written with a PDFgetX3-style header (composition, qmin, qmax,
rpoly, r range, mode). qdamp is not in the header, as in real PDFgetX3 files, so `invdesign
sample` uses its default 0.04 and says so. The true structure is written beside it as .xyz.

- Pt_truncoct_2nm.gr: Pt truncated octahedron, 260 atoms, ~2 nm (ase.cluster.Octahedron,
  a = 3.924 Å): larger than the particle model's 200 atoms, so `sample` cuts metallic packings.
- ZnO_wurtzite_1nm.gr: a CHILI-3K-type wurtzite ZnO particle (the builder's lattice estimate, cut
  at radius 6 Å by DebyeCalculator's cutter): small enough for the particle model (`sample`
  adds candidates cut from the CHILI-3K crystal types of the same O:M ratio).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from ase.cluster import Octahedron
from ase.io import write

from invdesign.core.structure import Structure
from invdesign.crystals.crystal_types import unit_cell
from invdesign.io.atomic import atomic_write_text
from invdesign.physics.calculator import Instrument, MeasuredGridCalculator
from invdesign.physics.cutter import cut_particles

HERE = Path(__file__).resolve().parent
GRID = np.round(np.arange(0.0, 30.0 + 1e-9, 0.01), 4)  # r in Å
INSTRUMENT = Instrument(function="gr", radiation="xray", qmin=1.0, qmax=25.0, qdamp=0.04, biso=0.4)
NOISE = 0.002  # Gaussian noise, fraction of max |G|
SEED = 0

HEADER = """\
# Simulated by invdesign examples/make_examples.py ({what}); NOT measured data.
[DEFAULT]

version = invdesign-example 1

# input and output specifications
dataformat = QA
inputfile = simulated
outputtype = gr

# PDF calculation setup
mode = xray
wavelength = 0.1665
composition = {composition}
bgscale = 1
rpoly = 0.9
qmaxinst = {qmax}
qmin = {qmin}
qmax = {qmax}
rmin = {rmin}
rmax = {rmax}
rstep = 0.01

# End of config --------------------------------------------------------------
#### start data
#S 1
#L r($\\AA$)  G($\\AA^{{-2}}$)
"""


def pt_particle() -> Structure:
    atoms = Octahedron("Pt", length=8, cutoff=3, latticeconstant=3.924)
    return Structure(atoms.numbers, atoms.positions - atoms.positions.mean(0), None, "particle")


def zno_particle() -> Structure:
    cell = unit_cell("Wurtzite", "Zn")
    return cut_particles(cell, [6.0], metals=[30], ligands=[8])[0]


def simulate(structure: Structure) -> np.ndarray:
    """[n] G(r) on GRID with INSTRUMENT, in float64."""
    calc = MeasuredGridCalculator(INSTRUMENT, GRID, device="cpu", dtype=torch.float64)
    return calc([structure])[0].detach().cpu().numpy()


def write_example(name: str, structure: Structure, composition: str, what: str) -> Path:
    rng = np.random.default_rng(SEED)
    g = simulate(structure)
    g = g + rng.normal(0.0, NOISE * np.abs(g).max(), g.shape)
    header = HEADER.format(what=what, composition=composition, qmin=INSTRUMENT.qmin,
                           qmax=INSTRUMENT.qmax, rmin=GRID[0], rmax=GRID[-1])
    body = "\n".join(f"{r:.2f} {v:.6g}" for r, v in zip(GRID, g, strict=True))
    path = HERE / f"{name}.gr"
    atomic_write_text(path, header + body + "\n")
    write(HERE / f"{name}.xyz", structure.to_ase(), format="extxyz")
    return path


def main() -> None:
    pt = pt_particle()
    print(write_example("Pt_truncoct_2nm", pt, "Pt",
                        f"Pt truncated octahedron, {pt.n_atoms} atoms, a = 3.924 Å"))
    zno = zno_particle()
    print(write_example("ZnO_wurtzite_1nm", zno, "ZnO",
                        f"wurtzite ZnO particle, {zno.formula}, CHILI-3K lattice estimate"))


if __name__ == "__main__":
    main()
