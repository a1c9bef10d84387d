"""k-NN crystal graphs, line graphs and positional encodings on hand-made cells."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from invdesign.core.structure import Structure
from invdesign.evaluators.property.graphs import (
    N_LAP,
    N_RW,
    bond_cosines,
    build_graph,
    edge_vectors,
    finite_knn,
    positional_encoding,
)
from invdesign.evaluators.property.model import CrysToGraph, CrysToGraphConfig

A = 3.0


def simple_cubic() -> Structure:
    return Structure.from_fractional([29], [[0, 0, 0]], np.eye(3) * A)


def fcc_conventional() -> Structure:
    frac = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    return Structure.from_fractional([29] * 4, frac, np.eye(3) * A)


def lengths(graph) -> np.ndarray:
    return edge_vectors(graph.pos, graph.edge_index, graph.edge_shift).norm(dim=-1).numpy()


def test_simple_cubic_has_12_neighbours_from_periodic_images():
    graph = build_graph(simple_cubic(), k=12)
    assert graph.edge_index.shape == (2, 12)
    assert (graph.edge_index == 0).all()  # one atom: every neighbour is a periodic image of itself
    assert (graph.edge_shift.norm(dim=-1) > 0).all()
    d = np.sort(lengths(graph))
    np.testing.assert_allclose(d[:6], A, atol=1e-5)  # 6 face neighbours
    np.testing.assert_allclose(d[6:], A * np.sqrt(2), atol=1e-5)  # then 6 of the 12 edge neighbours


def test_fcc_has_12_nearest_neighbours_per_atom():
    graph = build_graph(fcc_conventional(), k=12)
    assert graph.edge_index.shape == (2, 48)
    assert np.bincount(graph.edge_index[1].numpy()).tolist() == [12] * 4
    np.testing.assert_allclose(lengths(graph), A / np.sqrt(2), atol=1e-5)


def test_line_graph_angles_in_simple_cubic_are_90_and_180_degrees():
    graph = build_graph(simple_cubic(), k=12, line_k=6)  # the 6 face bonds: +-x, +-y, +-z
    vec = edge_vectors(graph.pos, graph.edge_index, graph.edge_shift)
    cos = bond_cosines(vec, graph.lg_index).numpy()
    assert cos.shape == (30,)  # 6 x 5 ordered pairs of bonds sharing the centre
    assert np.isclose(cos, 0.0, atol=1e-6).sum() == 24  # each bond is perpendicular to 4 others
    assert np.isclose(cos, -1.0, atol=1e-6).sum() == 6  # and opposite to one


def test_full_line_graph_pairs_all_bonds_of_a_centre():
    graph = build_graph(fcc_conventional(), k=12)
    assert graph.lg_index.shape == (2, 4 * 12 * 11)
    centre = graph.edge_index[1]
    assert (centre[graph.lg_index[0]] == centre[graph.lg_index[1]]).all()
    assert (graph.lg_index[0] != graph.lg_index[1]).all()


def test_finite_particle_graph_has_no_images():
    # regular tetrahedron of edge 2.5 Å: 3 neighbours each, 60 degree bond angles
    s = 2.5 / np.sqrt(8)
    pos = s * np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float)
    graph = build_graph(Structure([79] * 4, pos), k=12)
    assert graph.edge_index.shape == (2, 12)
    assert (graph.edge_shift == 0).all()
    np.testing.assert_allclose(lengths(graph), 2.5, atol=1e-5)
    vec = edge_vectors(graph.pos, graph.edge_index, graph.edge_shift)
    np.testing.assert_allclose(bond_cosines(vec, graph.lg_index).numpy(), 0.5, atol=1e-5)
    assert graph.pe.shape == (4, N_LAP + N_RW)


def test_batched_line_graph_indices_are_offset_by_bond_count():
    graphs = [build_graph(simple_cubic()), build_graph(fcc_conventional())]
    batch = next(iter(DataLoader(graphs, batch_size=2)))
    assert batch.lg_index.max() == 12 + 48 - 1
    assert batch.lg_index[:, 132:].min() == 12


@pytest.mark.parametrize("seed", [0, 1])
def test_model_is_invariant_to_rotation_translation_and_lattice_shifts(seed):
    rng = np.random.default_rng(seed)
    frac = rng.random((4, 3))
    cell = np.eye(3) * 4.0 + rng.normal(0, 0.3, (3, 3))
    base = Structure.from_fractional([8, 22, 8, 38], frac, cell)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    pos = base.positions @ q.T + 1.3
    pos[2] += (cell @ q.T)[0] - (cell @ q.T)[2]  # move one atom by a lattice vector
    moved = Structure(base.species, pos, cell @ q.T, "unit_cell")
    net = CrysToGraph(CrysToGraphConfig(hidden=16, heads=2, blocks=1)).eval()
    with torch.no_grad():
        out = [net(next(iter(DataLoader([build_graph(s)])))) for s in (base, moved)]
    torch.testing.assert_close(out[0], out[1], atol=1e-4, rtol=1e-4)


def test_graph_follows_a_permutation_of_the_atoms():
    rng = np.random.default_rng(2)
    base = Structure.from_fractional([8, 22, 8, 38], rng.random((4, 3)), np.eye(3) * 4.1)
    perm = rng.permutation(4)
    permuted = Structure(base.species[perm], base.positions[perm], base.cell, "unit_cell")
    d0 = lengths(build_graph(base)).reshape(4, 12)
    d1 = lengths(build_graph(permuted)).reshape(4, 12)
    np.testing.assert_allclose(d1, d0[perm], atol=1e-5)
    rw = slice(N_LAP, N_LAP + N_RW)  # random-walk encodings are permutation-equivariant
    np.testing.assert_allclose(
        build_graph(permuted).pe[:, rw], build_graph(base).pe[perm][:, rw], atol=1e-6
    )


def test_sparse_encodings_equal_the_dense_ones_on_a_large_particle():
    """Graphs above `dense_max` atoms take the sparse path (Lanczos, sparse walk powers): the same
    encodings as the dense path, eigenvectors up to sign (a random particle: no degeneracy)."""
    rng = np.random.default_rng(3)
    pos = rng.uniform(-12.0, 12.0, size=(450, 3))
    src, dst, _ = finite_knn(pos, 12)
    dense = positional_encoding(src, dst, 450, dense_max=10_000)
    sparse = positional_encoding(src, dst, 450, dense_max=0)
    np.testing.assert_allclose(sparse[:, N_LAP:], dense[:, N_LAP:], atol=1e-10)
    assert np.all(sparse[:, N_LAP:][:, 0] == 0.0)  # no self-loops: no return after one step
    for col in range(N_LAP):
        a, b = sparse[:, col], dense[:, col]
        np.testing.assert_allclose(a * np.sign(a @ b), b, atol=1e-6)
        assert np.linalg.norm(b) == pytest.approx(1.0)
