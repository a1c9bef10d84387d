"""The E(3)-equivariant message-passing network that predicts one vector per atom (the noise).

Node features are e3nn irreps `S x 0e + V x 1o` (invariant scalars and polar vectors). Edges carry
spherical harmonics of the edge vector (l <= lmax) and a Gaussian radial basis of its length
(`e3nn.math.soft_one_hot_linspace`), optionally with extra invariant edge scalars (e.g. periodic
Fourier features). Each interaction is NequIP-like: a linear mix, a 'uvu' tensor product of the
source features with the edge harmonics weighted by an MLP of the edge scalars, a sum over incoming
edges, a linear map and a gated non-linearity, added residually. The input is invariant node scalars
(species, time, pattern embedding) and the output is an `1x1o` vector per node, so
rotations/reflections of the edge vectors rotate the output and any function of edge vectors alone
is translation-invariant.
"""

from __future__ import annotations

import torch
from e3nn import o3
from e3nn.math import soft_one_hot_linspace
from e3nn.nn import FullyConnectedNet, Gate
from torch import nn
from torch.nn import functional as F


class Interaction(nn.Module):
    """One residual message-passing block on `irreps_node` features.

    Args:
        irreps_node: node irreps, `S x 0e + V x 1o`.
        irreps_msg: the (narrower) irreps the source features are mixed into before the product.
        irreps_sh: spherical-harmonic irreps of the edges.
        n_edge_scalars: width of the invariant edge input of the radial MLP.
        radial_hidden: hidden width of the radial MLP.
        avg_neighbors: the message sum is divided by its square root.
    """

    def __init__(
        self,
        irreps_node: o3.Irreps,
        irreps_msg: o3.Irreps,
        irreps_sh: o3.Irreps,
        n_edge_scalars: int,
        radial_hidden: int,
        avg_neighbors: float,
    ) -> None:
        super().__init__()
        targets = {o3.Irrep("0e"), o3.Irrep("1o")}
        mids, instructions = [], []
        for i_in, (mul, ir_in) in enumerate(irreps_msg):
            for i_sh, (_, ir_sh) in enumerate(irreps_sh):
                for ir_out in ir_in * ir_sh:
                    if ir_out in targets:
                        instructions.append((i_in, i_sh, len(mids), "uvu", True))
                        mids.append((mul, ir_out))
        irreps_mid, perm, _ = o3.Irreps(mids).sort()
        instructions = [(a, b, perm[c], mode, train) for a, b, c, mode, train in instructions]
        self.lin_in = o3.Linear(irreps_node, irreps_msg)
        self.tp = o3.TensorProduct(
            irreps_msg,
            irreps_sh,
            irreps_mid,
            instructions,
            shared_weights=False,
            internal_weights=False,
        )
        self.radial = FullyConnectedNet(
            [n_edge_scalars, radial_hidden, radial_hidden, self.tp.weight_numel], F.silu
        )
        n_scalar = irreps_node.count("0e")
        n_vector = irreps_node.count("1o")
        self.gate = Gate(
            f"{n_scalar}x0e", [F.silu], f"{n_vector}x0e", [torch.sigmoid], f"{n_vector}x1o"
        )
        self.lin_out = o3.Linear(irreps_mid, self.gate.irreps_in)
        self.norm = avg_neighbors**0.5

    def forward(
        self,
        h: torch.Tensor,
        edge_index: torch.Tensor,
        sh: torch.Tensor,
        edge_scalars: torch.Tensor,
    ) -> torch.Tensor:
        """h: [N, dim(irreps_node)]; edge_index: [2, E] (source, target); sh: [E, dim(irreps_sh)];
        edge_scalars: [E, n_edge_scalars] -> [N, dim(irreps_node)]."""
        src, dst = edge_index
        x = self.lin_in(h)  # [N, D_msg]
        msg = self.tp(x[src], sh, self.radial(edge_scalars))  # [E, D_mid]
        agg = msg.new_zeros(h.shape[0], msg.shape[1]).index_add_(0, dst, msg) / self.norm
        return h + self.gate(self.lin_out(agg))  # [N, D]


class EquivariantDenoiser(nn.Module):
    """Invariant node inputs + edge vectors -> one equivariant vector per node.

    Args:
        node_in: width of the invariant node input (species, time, pattern embeddings).
        edge_in: width of extra invariant edge scalars (0 for none).
        scalar_dim: S, number of 0e channels.
        vector_dim: V, number of 1o channels.
        n_layers: interaction blocks.
        lmax: highest spherical-harmonic degree on edges.
        n_radial: Gaussian radial basis functions on [0, r_max].
        r_max: radial basis range, in the units of the edge vectors (Å).
        radial_hidden: hidden width of the radial MLPs.
        avg_neighbors: typical in-degree, normalises message sums.
        n_frame_vectors: vector inputs per node (e.g. position from the centroid, reference axes);
            they fill the first 1o channels.
        msg_scalar_dim, msg_vector_dim: width of the features entering the edge tensor product
            (None: scalar_dim, vector_dim); the product's cost scales with them.
    """

    def __init__(
        self,
        node_in: int,
        edge_in: int = 0,
        scalar_dim: int = 64,
        vector_dim: int = 16,
        n_layers: int = 4,
        lmax: int = 2,
        n_radial: int = 16,
        r_max: float = 8.0,
        radial_hidden: int = 64,
        avg_neighbors: float = 16.0,
        n_frame_vectors: int = 0,
        msg_scalar_dim: int | None = None,
        msg_vector_dim: int | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= n_frame_vectors <= vector_dim:
            raise ValueError(f"n_frame_vectors={n_frame_vectors} not in 0..vector_dim={vector_dim}")
        self.irreps_node = o3.Irreps(f"{scalar_dim}x0e + {vector_dim}x1o")
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        msg_s, msg_v = msg_scalar_dim or scalar_dim, msg_vector_dim or vector_dim
        irreps_msg = o3.Irreps(f"{msg_s}x0e + {msg_v}x1o")
        self.n_radial = n_radial
        self.r_max = r_max
        self.embed = nn.Sequential(
            nn.Linear(node_in, scalar_dim), nn.SiLU(), nn.Linear(scalar_dim, scalar_dim)
        )
        self.layers = nn.ModuleList(
            Interaction(
                self.irreps_node,
                irreps_msg,
                self.irreps_sh,
                n_radial + 1 + edge_in,
                radial_hidden,
                avg_neighbors,
            )
            for _ in range(n_layers)
        )
        self.out = o3.Linear(self.irreps_node, o3.Irreps("1x1o"))
        self.vector_width = 3 * vector_dim
        self.n_frame_vectors = n_frame_vectors

    def forward(
        self,
        node_attr: torch.Tensor,
        edge_index: torch.Tensor,
        edge_vec: torch.Tensor,
        edge_attr: torch.Tensor | None = None,
        vectors: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """node_attr: [N, node_in] invariants; edge_index: [2, E] (source, target);
        edge_vec: [E, 3] Å (source minus target position); edge_attr: [E, edge_in] invariants or
        None; vectors: [N, 3 * n_frame_vectors] vector inputs (rotating with the frame) or None
        -> [N, 3] vectors."""
        scalars = self.embed(node_attr)  # [N, S]
        vec = scalars.new_zeros(scalars.shape[0], self.vector_width)  # [N, 3V]
        if self.n_frame_vectors:
            if vectors is None:
                raise ValueError("this network expects frame vectors")
            vec = torch.cat([vectors, vec[:, vectors.shape[1] :]], dim=-1)
        h = torch.cat([scalars, vec], dim=-1)
        length = edge_vec.norm(dim=-1)  # [E]
        unit = edge_vec / length.clamp_min(1e-9).unsqueeze(-1)  # [E, 3]
        sh = o3.spherical_harmonics(
            self.irreps_sh, unit, normalize=False, normalization="component"
        )  # [E, (lmax+1)^2]
        radial = (
            soft_one_hot_linspace(
                length, 0.0, self.r_max, self.n_radial, basis="gaussian", cutoff=False
            )
            * self.n_radial**0.5
        )  # [E, n_radial]
        # a bounded length too: the Gaussians vanish beyond r_max, far edges still carry a signal
        radial = torch.cat([radial, (length / (length + self.r_max)).unsqueeze(-1)], dim=-1)
        edge_scalars = radial if edge_attr is None else torch.cat([radial, edge_attr], dim=-1)
        for layer in self.layers:
            h = layer(h, edge_index, sh, edge_scalars)  # [N, D]
        return self.out(h)  # [N, 3]
