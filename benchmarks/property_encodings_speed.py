"""Cost of the property graph of a particle: neighbour list, positional encodings, line graph.

    python benchmarks/property_encodings_speed.py [--atoms 1000 5000 10000 20000]
        [--dense-max 1000] [--network-max 5000] [--threads 1]

Particles: the n atoms of an fcc Pt lattice (nn 2.775 Å) nearest its centre, as the discrete
particles `sample` screens. For each size it prints the seconds of
- `knn`: the 12-nearest-neighbour list (`graphs.finite_knn`, scipy k-d tree);
- `cdist`: the n x n torch.cdist the neighbour list used before (up to `--dense-max` atoms: at
  20,000 atoms its matrix alone is 3.2 GB);
- `lap`, `rw`: the Laplacian eigenvectors and random-walk return probabilities as used for that
  size (sparse above `graphs.DENSE_PE_MAX` atoms), and `dense`: both on the dense path (up to
  `--dense-max` atoms);
- `graph`: the whole `build_graph` (neighbour list, line graph, encodings, tensors);
- `network`: the shipped property-default network's forward pass on that graph (up to
  `--network-max` atoms; its graph-wise transformer attends over all atom pairs);
and the largest difference of the dense and sparse random-walk encodings where both ran.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse as sp
import torch
from ase.build import bulk

from invdesign.core.structure import Structure
from invdesign.evaluators.property.graphs import (
    DENSE_PE_MAX,
    N_LAP,
    _laplacian_vectors,
    _return_probabilities,
    _return_probabilities_dense,
    build_graph,
    finite_knn,
    positional_encoding,
)


def particle(n: int) -> Structure:
    """The `n` atoms of an fcc Pt block nearest its centre (a near-spherical particle)."""
    side = int(np.ceil((n / 4.0) ** (1.0 / 3.0))) + 2
    block = bulk("Pt", "fcc", a=2.775 * np.sqrt(2.0), cubic=True).repeat(side)
    pos = block.positions - block.positions.mean(0)
    keep = np.argsort(np.linalg.norm(pos, axis=1), kind="stable")[:n]
    return Structure(block.numbers[keep], pos[keep], None, "particle")


def seconds(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atoms", type=int, nargs="+", default=[1000, 5000, 10000, 20000])
    parser.add_argument("--dense-max", type=int, default=1000,
                        help="largest particle also timed on the dense paths")
    parser.add_argument("--network-max", type=int, default=5000,
                        help="largest particle whose network forward pass is timed")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    net = None
    if args.network_max > 0:
        from invdesign.evaluators.property.evaluator import FormationEnergyEvaluator  # noqa: PLC0415

        net = FormationEnergyEvaluator().predictor
    cols = ("atoms", "knn", "cdist", "lap", "rw", "dense", "graph", "network", "max|d rw|")
    print(" ".join(f"{c:>9}" for c in cols) + "   (seconds)")
    for n in args.atoms:
        structure = particle(n)
        pos = structure.positions
        (src, dst, _), t_knn = seconds(finite_knn, pos, 12)
        t_cdist = None
        if n <= args.dense_max:
            _, t_cdist = seconds(torch.cdist, *(torch.as_tensor(pos),) * 2)
        adj = sp.coo_matrix((np.ones(len(src)), (dst, src)), shape=(n, n)).tocsr()
        adj = (adj + adj.T).tocsr()
        deg = np.asarray(adj.sum(axis=1)).ravel()
        inv_deg = 1.0 / deg
        _, t_lap = seconds(_laplacian_vectors, adj, np.sqrt(inv_deg), n, DENSE_PE_MAX)
        walk = sp.diags(inv_deg) @ adj
        if n > DENSE_PE_MAX:
            sparse_rw, t_rw = seconds(_return_probabilities, walk, n)
        else:
            sparse_rw, t_rw = seconds(_return_probabilities_dense, walk.toarray(), n)
        t_dense, diff = None, None
        if n <= args.dense_max:
            dense, t_dense = seconds(positional_encoding, src, dst, n, dense_max=n)
            diff = float(np.abs(dense[:, N_LAP:] - sparse_rw).max())
        graph, t_graph = seconds(build_graph, structure, 12, 4)
        t_net = None
        if net is not None and n <= args.network_max:
            _, t_net = seconds(net.predict_graphs, [graph])
        values = (t_knn, t_cdist, t_lap, t_rw, t_dense, t_graph, t_net)
        text = " ".join("        -" if v is None else f"{v:>9.3f}" for v in values)
        print(f"{n:>9} {text} {'        -' if diff is None else f'{diff:>9.1e}'}", flush=True)


if __name__ == "__main__":
    main()
