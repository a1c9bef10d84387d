"""Segmentation round trip over the CHILI-3K unit cells: voxelisation -> Algorithm S1 -> atoms.

Every CHILI-3K unit cell with <= 20 atoms (12 crystal types x 53 metals, built by
`invdesign.crystals.crystal_types.unit_cell`, or read from CHILI HDF5 files with --h5-dir) is
voxelised (`generators/vae/voxels.py`), segmented (`generators/vae/segmentation.py`) and matched to
the true atoms by a periodic Hungarian match. Prints: atom count exactly right on what fraction of
cells (target >= 95 %), the matched position error in voxels (target < 1 voxel), species right on
what fraction of matched atoms (target >= 98 %).

    python benchmarks/watershed_roundtrip.py [--shape 32] [--components species] [--h5-dir DIR]

Measured on the rebuilt CHILI-3K (636 files, --h5-dir DATA_DIR/chili3k; count right / mean
matched error / species right):
    --shape 24 --label-frac 0.8: 99.7 % (634/636), 0.006 voxels (max 7.9), 100.00 % of 4079 atoms
    --shape 24 --label-frac 1.0: 93.4 % (594/636), 0.082 voxels (max 8.3), 100.00 % of 4039 atoms
    --shape 16 --label-frac 0.8: 99.7 % (634/636), 0.010 voxels (max 3.1), 100.00 % of 4078 atoms
    --shape 12 --label-frac 0.8: 99.2 % (631/636), 0.005 voxels (max 3.8), 100.00 % of 4062 atoms
    --shape 12 --label-frac 0.8 --components binary: 90.4 % (575/636), 0.023 voxels, 99.72 %
The full ionic radius (the SI's) merges same-species neighbours of the compressed CdI2/CdCl2-type
cells; the VAE configs use 0.8 and a 12^3 grid.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from invdesign.core.structure import Structure
from invdesign.generators.vae.roundtrip import RoundTrip, roundtrip

MAX_ATOMS = 20


def builder_cells() -> Iterator[Structure]:
    from invdesign.crystals.crystal_types import CHILI3K_METALS, CRYSTAL_TYPES, unit_cell

    for ctype in CRYSTAL_TYPES:
        for metal in CHILI3K_METALS:
            yield unit_cell(ctype, metal)


def h5_cells(root: Path) -> Iterator[Structure]:
    from invdesign.data.hdf5_io import read_chili_file

    for path in sorted(root.rglob("*.h5")):
        rec = read_chili_file(path, sizes=[])
        uc = rec.unit_cell
        yield Structure.from_cell_parameters(uc.node_features[:, 0].astype(int), uc.pos_frac,
                                             rec.cell_params, name=rec.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, default=32, help="voxels per cell axis (default 32)")
    parser.add_argument("--components", choices=("species", "binary"), default="species")
    parser.add_argument("--label-frac", type=float, default=1.0,
                        help="labelling radius / ionic radius (default 1)")
    parser.add_argument("--h5-dir", type=Path, help="read unit cells from CHILI HDF5 files instead")
    parser.add_argument("--limit", type=int, help="only the first N cells")
    parser.add_argument("--verbose", action="store_true", help="print each cell counted wrong")
    args = parser.parse_args()

    cells = h5_cells(args.h5_dir) if args.h5_dir else builder_cells()
    shape = (args.shape,) * 3
    results: list[tuple[str, RoundTrip]] = []
    start = time.time()
    for cell in cells:
        if cell.n_atoms > MAX_ATOMS:
            continue
        if args.limit is not None and len(results) >= args.limit:
            break
        name = str(cell.info.get("name", cell.formula))
        rt = roundtrip(cell, shape, label_frac=args.label_frac, components=args.components)
        results.append((name, rt))
        if args.verbose and not rt.count_ok:
            print(f"  count wrong: {name}: {rt.n_true} true, {rt.n_found} found", flush=True)
        if args.verbose and len(results) % 50 == 0:
            print(f"  {len(results)} cells, {time.time() - start:.0f} s", flush=True)
    elapsed = time.time() - start

    count_ok = np.array([rt.count_ok for _, rt in results])
    errors = np.concatenate([rt.errors_vox for _, rt in results])
    species_ok = np.concatenate([rt.species_ok for _, rt in results])
    wrong = [name for name, rt in results if not rt.count_ok]
    source = args.h5_dir or "crystal_types.unit_cell over CRYSTAL_TYPES x CHILI3K_METALS"
    print(f"cells: {len(results)} with <= {MAX_ATOMS} atoms from {source}")
    print(f"grid {shape}, components={args.components}, label_frac={args.label_frac}, "
          f"{elapsed / max(len(results), 1):.2f} s/cell")
    print(f"atom count exactly right: {count_ok.mean():.1%} of cells "
          f"({count_ok.sum()}/{len(count_ok)})  [target >= 95 %]")
    print(f"matched position error: mean {errors.mean():.3f} voxels, "
          f"median {np.median(errors):.3f}, 95th pct {np.percentile(errors, 95):.3f}, "
          f"max {errors.max():.3f}  [target < 1 voxel]")
    print(f"species right: {species_ok.mean():.2%} of {species_ok.size} matched atoms  "
          "[target >= 98 %]")
    if wrong:
        print(f"count wrong on: {', '.join(wrong[:40])}{' ...' if len(wrong) > 40 else ''}")


if __name__ == "__main__":
    main()
