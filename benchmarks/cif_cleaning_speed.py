"""CIF cleaning time against the atom count: the tree-based reader and 1.2 Å neighbour list against
the previous path (`ase.io.read`, whose duplicate-site search compares every pair of sites, and
`Structure.min_distance`, a neighbour list with a cut-off as long as the cell).

    python benchmarks/cif_cleaning_speed.py [--atoms 1000 5000 10000] [--old-max 1000]

Cells: P1 CIFs of n atoms (Zn and O alternating on a simple cubic grid of 2.5 Å), as the fuzz
campaign of issue 22 wrote them. Prints seconds per cell for each path; the old path runs only up
to --old-max atoms (it grows with the square of n: minutes from a few thousand atoms on).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from ase.io import read

from invdesign.core.structure import Structure
from invdesign.data.build.cif_cleaning import MIN_DISTANCE, clean_cif


def grid_cif(n: int, path: Path, spacing: float = 2.5) -> Path:
    """A P1 cubic CIF of `n` atoms on a simple cubic grid (`spacing` Å)."""
    k = int(np.ceil(n ** (1 / 3)))
    idx = np.stack(np.meshgrid(*[np.arange(k)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n]
    frac = (idx + 0.5) / k
    rows = "\n".join(
        f"{el}{m} {el} {x:.6f} {y:.6f} {z:.6f} 1.0"
        for m, ((x, y, z), el) in enumerate(
            zip(frac, np.where(idx.sum(1) % 2, "Zn", "O"), strict=True)
        )
    )
    a = spacing * k
    path.write_text(
        f"data_grid\n_cell_length_a {a}\n_cell_length_b {a}\n_cell_length_c {a}\n"
        "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
        "_symmetry_space_group_name_H-M 'P 1'\n_symmetry_Int_Tables_number 1\nloop_\n"
        "_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n"
        f"_atom_site_fract_z\n_atom_site_occupancy\n{rows}\n"
    )
    return path


def old_path(path: Path) -> bool:
    """The steps the previous `clean_cif` spent its time in: ASE's reader, then the minimum
    distance with a cut-off of max(6 Å, longest cell edge)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        atoms = read(path, format="cif")
    return Structure.from_ase(atoms, kind="unit_cell").min_distance() >= MIN_DISTANCE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atoms", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--old-max", type=int, default=1000,
                        help="largest cell timed on the old path (default 1000)")
    args = parser.parse_args()
    print(f"{'atoms':>6} {'new (s)':>8} {'old (s)':>8} {'kept':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.atoms:
            path = grid_cif(n, Path(tmp) / f"grid{n}.cif")
            start = time.perf_counter()
            result = clean_cif(path, max_atoms=max(args.atoms))
            t_new = time.perf_counter() - start
            kept = len(result.structure.species) if result.ok else 0
            t_old = "-"
            if n <= args.old_max:
                start = time.perf_counter()
                assert old_path(path) == result.ok
                t_old = f"{time.perf_counter() - start:.2f}"
            print(f"{n:>6} {t_new:>8.2f} {t_old:>8} {kept:>6}", flush=True)


if __name__ == "__main__":
    main()
