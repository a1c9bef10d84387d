"""k-nearest-neighbour crystal graphs, their line graphs (bond angles) and positional encodings.

A graph stores topology and periodic image offsets only; distances and angles are recomputed from
`pos` inside the model (`edge_vectors`, `bond_cosines`), so a perturbed copy (CDSSL) keeps the clean
edges. `graph_data` gives it as a plain `batching.GraphData` (prediction: no torch_geometric),
`build_graph` as a PyG `CrystalGraph` (training with PyG's data loaders, module `pyg_graphs`).

Conventions:
    edge_index: [2, E]; row 0 = neighbour j (source), row 1 = centre i (target). Edges are grouped
        by centre, `k_eff` per centre, nearest first (ties broken by neighbour index and image
        offset, deterministically).
    edge_shift: [E, 3] Å, Cartesian image offset: bond vector r_ij = pos[j] + edge_shift - pos[i].
    lg_index: [2, T] line-graph edges between bonds sharing their centre i (source bond a -> target
        bond b, a != b); the angle of the pair is the angle between r_ia and r_ib.
    pe: [n, n_lap + n_rw] Laplacian eigenvector + random-walk return-probability encodings of the
        graph. Eigenvector signs are fixed by their third moment, so the encodings follow a
        permutation of the atoms; eigenvectors of degenerate eigenvalues (symmetric cells) stay
        basis-dependent, as in CrysToGraph.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import eigsh

from invdesign.core.structure import Structure
from invdesign.evaluators.property.batching import GraphData
from invdesign.evaluators.property.segment_ops import scatter_sum

DEFAULT_K = 12
N_LAP = 4  # Laplacian eigenvectors kept (zero-padded for small graphs)
N_RW = 8  # random-walk steps
DENSE_PE_MAX = 400  # atoms; larger graphs get their encodings from sparse matrices
_TIE_MARGIN = 8  # neighbours asked of the k-d tree beyond the k kept (see `finite_knn`)


def periodic_knn(
    structure: Structure, k: int = DEFAULT_K
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The k nearest neighbours of every atom of a unit cell, periodic images included (pymatgen's
    neighbour list).

    Returns:
        src [n*k] neighbour index, dst [n*k] centre index, shift [n*k, 3] Cartesian image offset
        in Å.
    """
    pmg = structure.to_pymatgen()
    n = structure.n_atoms
    volume = abs(np.linalg.det(structure.cell))
    cutoff = 1.3 * (3.0 * (k + 2) * volume / n / (4.0 * np.pi)) ** (1.0 / 3.0)
    while True:
        i, j, shifts, d = pmg.get_neighbor_list(cutoff)
        if i.size and np.bincount(i, minlength=n).min() >= k:
            break
        cutoff *= 1.4
    order = np.lexsort((shifts[:, 2], shifts[:, 1], shifts[:, 0], j, np.round(d, 6), i))
    i, j, shifts = i[order], j[order], shifts[order]
    starts = np.searchsorted(i, np.arange(n))
    keep = (np.arange(i.size) - starts[i]) < k
    return j[keep], i[keep], shifts[keep].astype(float) @ structure.cell


def finite_knn(
    positions: np.ndarray, k: int = DEFAULT_K
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The min(k, n-1) nearest neighbours of every atom of a finite particle (scipy's k-d tree:
    time and memory linear in atoms, no n x n distance matrix).

    Neighbours are ordered nearest first; distances equal to 1e-6 Å are ties, broken by the
    lower neighbour index. The k-d tree is asked for a few more neighbours than kept, and atoms
    whose tie runs past those are asked again for every neighbour within their k-th distance, so
    the choice among tied neighbours never depends on the tree.

    Args:
        positions: [n, 3] Å.
    Returns:
        src [n*k_eff] neighbour index, dst [n*k_eff] centre index (grouped by centre), zero
        shifts [n*k_eff, 3].
    """
    # lazy: scipy.spatial is only needed for particles
    from scipy.spatial import cKDTree  # noqa: PLC0415

    pos = np.ascontiguousarray(positions, dtype=np.float64)
    n = pos.shape[0]
    k_eff = min(k, n - 1)
    if k_eff <= 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros((0, 3))
    tree = cKDTree(pos)
    asked = min(n, k_eff + 1 + _TIE_MARGIN)  # the atom itself, k_eff neighbours, a margin
    dist, idx = tree.query(pos, k=asked)
    dist, idx = dist.reshape(n, asked), idx.reshape(n, asked)
    key = np.round(dist * 1e6).astype(np.int64)  # distances in µÅ, equal ones are ties
    rows = np.arange(n)
    # one integer per entry orders by distance, then neighbour index; the atom itself goes last
    order = np.where(idx == rows[:, None], np.iinfo(np.int64).max, key * (n + 1) + idx)
    nbr = np.take_along_axis(idx, np.argsort(order, axis=1)[:, :k_eff], axis=1)
    # rows whose k-th distance ties with the farthest one asked may miss a lower-index tie
    kth = key[:, k_eff]  # the query's distances ascend; column 0 is the atom (or its double)
    unsure = rows[(asked < n) & (key[:, -1] <= kth)]
    for i in unsure:
        found = np.asarray(tree.query_ball_point(pos[i], (kth[i] + 1.0) * 1e-6), dtype=np.int64)
        found = found[found != i]
        d = np.round(np.linalg.norm(pos[found] - pos[i], axis=1) * 1e6).astype(np.int64)
        nbr[i] = found[np.argsort(d * (n + 1) + found)][:k_eff]
    src = nbr.reshape(-1)
    dst = np.repeat(rows, k_eff)
    return src, dst, np.zeros((src.size, 3))


def line_graph_index(n_atoms: int, k_eff: int, line_k: int | None = None) -> np.ndarray:
    """[2, T] pairs of bonds sharing a centre, for edges grouped `k_eff` per centre.

    `line_k` limits the pairs to each centre's `line_k` nearest bonds (None: all k_eff bonds).
    """
    m = k_eff if line_k is None else min(line_k, k_eff)
    p, q = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
    off = p != q
    p, q = p[off], q[off]  # [m*(m-1)]
    base = (np.arange(n_atoms) * k_eff)[:, None]
    return np.stack([(base + p).reshape(-1), (base + q).reshape(-1)]).astype(np.int64)


def positional_encoding(src: np.ndarray, dst: np.ndarray, n: int,
                        dense_max: int = DENSE_PE_MAX) -> np.ndarray:
    """[n, N_LAP + N_RW] Laplacian eigenvectors and random-walk return probabilities of the graph.

    The adjacency is the symmetrised multigraph (a bond to a periodic image counts once per image).
    Graphs of more than `dense_max` atoms use sparse matrices (Lanczos for the eigenvectors, sparse
    walk powers): same encodings (up to the basis of degenerate eigenvalues) at O(n k) memory.
    """
    adj = sp.coo_matrix((np.ones(len(src)), (dst, src)), shape=(n, n)).tocsr()
    adj = (adj + adj.T).tocsr()
    deg = np.asarray(adj.sum(axis=1)).ravel()
    inv_deg = np.where(deg > 0, 1.0 / np.maximum(deg, 1e-12), 0.0)
    lap = _laplacian_vectors(adj, np.sqrt(inv_deg), n, dense_max)
    walk = sp.diags(inv_deg) @ adj  # row-stochastic transition matrix
    rw = _return_probabilities(walk, n) if n > dense_max else _return_probabilities_dense(
        walk.toarray(), n)
    return np.concatenate([lap, rw], axis=1)


def _laplacian_vectors(adj: sp.csr_matrix, inv_sqrt: np.ndarray, n: int,
                       dense_max: int) -> np.ndarray:
    """[n, N_LAP] eigenvectors 2..N_LAP+1 (smallest eigenvalues first) of the normalised Laplacian
    I - D^-1/2 A D^-1/2, zero-padded; signs fixed by a positive third moment."""
    lap = np.zeros((n, N_LAP))
    if n < 2:
        return lap
    keep = min(N_LAP, n - 1)
    norm_adj = sp.diags(inv_sqrt) @ adj @ sp.diags(inv_sqrt)
    if n > dense_max and keep + 2 < n:
        # the smallest Laplacian eigenvalues are the largest of the normalised adjacency
        v0 = np.random.default_rng(0).standard_normal(n)  # fixed start: reproducible output
        vals, vecs = eigsh(norm_adj, k=keep + 1, which="LA", v0=v0, tol=1e-8)
        vecs = vecs[:, np.argsort(-vals)]
    else:
        _, vecs = np.linalg.eigh(np.eye(n) - norm_adj.toarray())
    lap[:, :keep] = vecs[:, 1 : 1 + keep]
    # canonical sign, independent of atom order: positive third moment of each eigenvector
    third = (lap**3).sum(0)
    lap *= np.where(third < -1e-9, -1.0, 1.0)
    return lap


def _return_probabilities_dense(walk: np.ndarray, n: int) -> np.ndarray:
    """[n, N_RW] diagonal of walk^t, t = 1..N_RW (dense)."""
    rw = np.zeros((n, N_RW))
    power = np.eye(n)
    for t in range(N_RW):
        power = power @ walk
        rw[:, t] = np.diag(power)
    return rw


def _return_probabilities(walk: sp.csr_matrix, n: int) -> np.ndarray:
    """[n, N_RW] diagonal of walk^t, t = 1..N_RW, from sparse powers up to t = ceil(N_RW / 2):
    diag(P^(a+b))_i = sum_j (P^a)_ij (P^b)_ji, so no power denser than P^(N_RW/2) is formed."""
    half = (N_RW + 1) // 2
    powers = [walk]
    for _ in range(half - 1):
        powers.append((powers[-1] @ walk).tocsr())
    rw = np.zeros((n, N_RW))
    for t in range(1, N_RW + 1):
        if t <= half:
            rw[:, t - 1] = powers[t - 1].diagonal()
        else:
            a, b = powers[half - 1], powers[t - half - 1]
            rw[:, t - 1] = np.asarray(a.multiply(b.T).sum(axis=1)).ravel()
    return rw


def graph_data(structure: Structure, k: int = DEFAULT_K,
               line_k: int | None = None) -> GraphData:
    """Crystal graph (periodic for cells, finite for particles) with line graph and encodings, as
    plain tensors: z, pos, edge_index, edge_shift, lg_index, pe, num_nodes."""
    n = structure.n_atoms
    if structure.is_periodic:
        src, dst, shift = periodic_knn(structure, k)
        k_eff = k
    else:
        src, dst, shift = finite_knn(structure.positions, k)
        k_eff = min(k, n - 1)
    lg = line_graph_index(n, max(k_eff, 0), line_k) if k_eff > 1 else np.zeros((2, 0), np.int64)
    return GraphData(
        z=torch.as_tensor(structure.species, dtype=torch.long),
        pos=torch.as_tensor(structure.positions, dtype=torch.float32),
        edge_index=torch.as_tensor(np.stack([src, dst]), dtype=torch.long),
        edge_shift=torch.as_tensor(shift, dtype=torch.float32),
        lg_index=torch.as_tensor(lg, dtype=torch.long),
        pe=torch.as_tensor(positional_encoding(src, dst, n), dtype=torch.float32),
        num_nodes=n,
    )


def build_graph(structure: Structure, k: int = DEFAULT_K, line_k: int | None = None):
    """`graph_data` as a PyG `CrystalGraph` (for PyG's data loaders: training)."""
    # lazy: torch_geometric is for training; prediction uses `graph_data`
    from invdesign.evaluators.property.pyg_graphs import CrystalGraph  # noqa: PLC0415

    return CrystalGraph(**vars(graph_data(structure, k, line_k)))


def edge_vectors(
    pos: torch.Tensor, edge_index: torch.Tensor, edge_shift: torch.Tensor
) -> torch.Tensor:
    """[E, 3] Å bond vectors r_ij = pos[j] + shift - pos[i] (j = source, i = centre)."""
    src, dst = edge_index
    return pos[src] + edge_shift - pos[dst]


def bond_cosines(vec: torch.Tensor, lg_index: torch.Tensor) -> torch.Tensor:
    """[T] cosine of the angle between the two bonds of each line-graph edge (shared centre)."""
    a, b = vec[lg_index[0]], vec[lg_index[1]]
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(1e-8)
    return cos.clamp(-1.0, 1.0)


def standardised_distances(
    dist: torch.Tensor, batch_of_edge: torch.Tensor, n_graphs: int
) -> torch.Tensor:
    """CDSSL target: per-graph standardised edge distances (d - mean) / std; 0 when all are equal.

    Args:
        dist: [E] Å; batch_of_edge: [E] graph index of each edge.
    """

    count = scatter_sum(torch.ones_like(dist), batch_of_edge, 0, n_graphs)
    mean = scatter_sum(dist, batch_of_edge, 0, n_graphs) / count.clamp_min(1)
    var = scatter_sum((dist - mean[batch_of_edge]) ** 2, batch_of_edge, 0, n_graphs)
    std = (var / count.clamp_min(1)).sqrt()
    out = (dist - mean[batch_of_edge]) / std[batch_of_edge].clamp_min(1e-12)
    return torch.where(std[batch_of_edge] > 1e-5, out, torch.zeros_like(out))
