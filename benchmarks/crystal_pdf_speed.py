"""Wall time of the attenuated-crystal engine and its fit (issue 23 E).

Cases: rock-salt MgO (8 atoms), wurtzite ZnO (4 atoms) and a 3x3x3 ZnO supercell (108 atoms),
r 1.5-30 Å (step 0.01), X-rays, qmax 25. Times: `CrystalPDF` construction (pair list), one forward
and one forward+backward (lattice, positions, Uiso, delta2, spdiameter), `screen_crystal`.
Prints one line per case; the machine's load average is printed too (the machine is shared).

Usage: python benchmarks/crystal_pdf_speed.py [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from invdesign.core.structure import Structure
from invdesign.evaluators.forward.crystal_fit import screen_crystal
from invdesign.io.measured import MeasuredPattern
from invdesign.physics.crystal_pdf import CrystalPDF


def cells() -> dict[str, Structure]:
    frac = [[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0],
            [.5, .5, .5], [.5, 0, 0], [0, .5, 0], [0, 0, .5]]
    mgo = Structure.from_cell_parameters(np.array([12] * 4 + [8] * 4), np.array(frac, float),
                                         np.array([4.213] * 3 + [90.0] * 3))
    zno = Structure.from_cell_parameters(
        np.array([30, 30, 8, 8]),
        np.array([[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, 0.375],
                  [2 / 3, 1 / 3, 0.875]]), np.array([3.25, 3.25, 5.207, 90, 90, 120.0]))
    big = Structure.from_ase(zno.to_ase().repeat([3, 3, 3]), "unit_cell")
    return {"MgO (8)": mgo, "ZnO (4)": zno, "ZnO 3x3x3 (108)": big}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    r = np.arange(1.5, 30.0, 0.01)
    print(f"load average {os.getloadavg()}; torch threads {torch.get_num_threads()}")
    for name, cell in cells().items():
        t0 = time.perf_counter()
        model = CrystalPDF(cell, r, radiation="xray", qmax=25.0)
        t_init = time.perf_counter() - t0
        lattice = model.default_lattice().clone().requires_grad_(True)
        frac = model.default_frac().clone().requires_grad_(True)
        uiso = torch.full((cell.n_atoms,), 0.006, dtype=torch.float64, requires_grad=True)
        delta2 = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
        diameter = torch.tensor(40.0, dtype=torch.float64, requires_grad=True)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            g = model(lattice=lattice, frac=frac, uiso=uiso, delta2=delta2, qdamp=0.04,
                      spdiameter=diameter)
            t1 = time.perf_counter()
            (g * g).sum().backward()
            times.append((t1 - t0, time.perf_counter() - t0))
        fwd, both = np.median(np.array(times), axis=0)
        with torch.no_grad():
            g = model(lattice=lattice, uiso=uiso, qdamp=0.04, spdiameter=40.0).numpy()
        measured = MeasuredPattern(Path("sim.gr"), "pdf", r, g, None, 1.0, 25.0, 0.04, 0.5,
                                   "xray", None, None, r, "r_A", {"qdamp": "default"})
        screens = []
        for fit_qdamp in (False, True):
            t0 = time.perf_counter()
            screen_crystal(cell, measured, fit_range=(1.5, 30.0), diameter=40.0,
                           fit_qdamp=fit_qdamp)
            screens.append(time.perf_counter() - t0)
        print(f"{name:18s} pairs {model.n_pairs:8d}  init {t_init:6.3f} s  forward {fwd:6.3f} s"
              f"  forward+backward {both:6.3f} s  screen {screens[0]:6.3f} s"
              f" (with qdamp {screens[1]:6.3f} s, incl. pair list)")


if __name__ == "__main__":
    main()
