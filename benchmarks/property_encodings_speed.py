"""Positional encodings of the property graph: sparse path against the dense one, same graphs.

    python benchmarks/property_encodings_speed.py [--sizes 6 10 14]

Pt truncated octahedra (ase.cluster.Octahedron, length L, cutoff (L-1)//3) as the particles a
`sample` run writes; finite 12-NN graphs. Prints atoms, dense and sparse seconds, their ratio and
the largest difference of the random-walk encodings (the Laplacian eigenvectors are equal up to
sign and the basis of degenerate eigenvalues, so they are not compared here; see the test).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from ase.cluster import Octahedron

from invdesign.evaluators.property.graphs import N_LAP, finite_knn, positional_encoding


def timed(src, dst, n, dense_max):
    start = time.perf_counter()
    pe = positional_encoding(src, dst, n, dense_max=dense_max)
    return pe, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[6, 10, 14])
    args = parser.parse_args()
    print(f"{'atoms':>6} {'dense (s)':>10} {'sparse (s)':>11} {'ratio':>7} {'max |d rw|':>11}")
    for length in args.sizes:
        pos = Octahedron("Pt", length, (length - 1) // 3).positions
        n = len(pos)
        src, dst, _ = finite_knn(pos, 12)
        dense, t_dense = timed(src, dst, n, dense_max=n)
        sparse, t_sparse = timed(src, dst, n, dense_max=0)
        diff = float(np.abs(dense[:, N_LAP:] - sparse[:, N_LAP:]).max())
        print(f"{n:>6} {t_dense:>10.3f} {t_sparse:>11.3f} {t_dense / t_sparse:>7.1f} {diff:>11.1e}")


if __name__ == "__main__":
    main()
