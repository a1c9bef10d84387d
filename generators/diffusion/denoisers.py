"""Noise predictors for the two geometries, on padded batches.

Both build a graph over the real atoms, feed invariant node inputs (species, diffusion time, pattern
embedding, atom count) to `EquivariantDenoiser` and scatter its per-atom vectors back to [B, M, 3]:

- `ParticleDenoiser`: absolute coordinates (model units = Å / coord_scale), k-nearest-neighbour
  graph from `torch.cdist`, plus each atom's vector from the centroid (and its length) as an input,
  so atoms far from all neighbours still see the particle; the output has zero mean over each
  structure's real atoms (centre-of-mass-free noise). Optional `frame_vectors`: the lab axes enter
  as three extra vector inputs, so the model can learn the data's orientation convention; it is then
  equivariant only when the frame is rotated with the atoms.
- `PeriodicDenoiser`: fractional coordinates on the torus with a cell; full graph with image-wrapped
  edge vectors (`periodic.edge_vectors`), periodic Fourier features of edge and absolute fractional
  coordinates and rotation-invariant cell descriptors. The Cartesian output vector v becomes
  fractional noise `v @ cell^-1 * |det cell|^(1/3)`, invariant under rotations of the cell and
  integer shifts of any atom.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

import invdesign.generators.diffusion.periodic as periodic
from invdesign.generators.diffusion.encoders import TimeEmbedding
from invdesign.generators.diffusion.graph import full_graph, knn_graph
from invdesign.generators.diffusion.network import EquivariantDenoiser


def remove_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, M, 3] -> the same minus each structure's mean over real atoms; padding set to zero."""
    m = mask.unsqueeze(-1).to(x.dtype)  # [B, M, 1]
    mean = (x * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp_min(1)
    return (x - mean) * m


def _scatter(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    out = values.new_zeros(*mask.shape, values.shape[-1])
    out[mask] = values
    return out


class _Denoiser(nn.Module):
    """Shared node inputs: species embedding + time embedding + pattern embedding + ln(n_atoms)."""

    def __init__(
        self,
        cond_dim: int,
        max_z: int,
        species_dim: int,
        time_dim: int,
        max_atoms: int,
        extra_node: int,
        extra_edge: int,
        net: dict[str, Any],
    ) -> None:
        super().__init__()
        self.species = nn.Embedding(max_z + 1, species_dim)
        self.time = TimeEmbedding(time_dim)
        self.log_max = math.log(max_atoms + 1)
        node_in = species_dim + time_dim + cond_dim + 1 + extra_node
        self.net = EquivariantDenoiser(node_in, extra_edge, **net)

    def node_inputs(
        self,
        t: torch.Tensor,
        species: torch.Tensor,
        mask: torch.Tensor,
        cond: torch.Tensor,
        extra: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[N, node_in] invariants of the real atoms (t [B], species [B, M], cond [B, C])."""
        b, m = mask.shape
        n = mask.sum(1, keepdim=True).to(cond.dtype)  # [B, 1]
        per_structure = torch.cat([self.time(t).to(cond.dtype), cond, n.log() / self.log_max], -1)
        per_atom = per_structure.unsqueeze(1).expand(b, m, -1)[mask]  # [N, T + C + 1]
        parts = [self.species(species[mask]), per_atom]
        if extra is not None:
            parts.append(extra)
        return torch.cat(parts, dim=-1)


class ParticleDenoiser(_Denoiser):
    """eps_theta(x_t, t | species, pattern) for particles.

    Args:
        cond_dim, max_z, species_dim, time_dim, max_atoms: input embedding sizes (see `_Denoiser`).
        k_neighbors: incoming edges per atom.
        coord_scale: Å per model unit; the graph and radial basis work in Å.
        frame_vectors: give the network the lab axes (see the module docstring).
        net: keyword arguments of `EquivariantDenoiser` (scalar_dim, vector_dim, n_layers, ...).
    """

    def __init__(
        self,
        cond_dim: int,
        max_z: int,
        species_dim: int,
        time_dim: int,
        max_atoms: int,
        k_neighbors: int,
        coord_scale: float,
        frame_vectors: bool,
        net: dict[str, Any],
    ) -> None:
        super().__init__(
            cond_dim,
            max_z,
            species_dim,
            time_dim,
            max_atoms,
            1,  # |position from the centroid|
            0,
            {**net, "n_frame_vectors": 4 if frame_vectors else 1},
        )
        self.k = k_neighbors
        self.coord_scale = coord_scale
        self.frame_vectors = frame_vectors

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        species: torch.Tensor,
        mask: torch.Tensor,
        cond: torch.Tensor,
        frame: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: [B, M, 3] model units, t: [B] long, species: [B, M], mask: [B, M], cond: [B, C],
        frame: [3, 3] rows = lab axes (identity when None; used with `frame_vectors`) ->
        eps: [B, M, 3], zero mean over real atoms, zero on padding."""
        pos = x * self.coord_scale  # [B, M, 3] Å
        edge_index = knn_graph(pos, mask, self.k)  # [2, E]
        p = pos[mask]  # [N, 3]
        edge_vec = p[edge_index[0]] - p[edge_index[1]]  # [E, 3]
        rel = remove_mean(x, mask)[mask]  # [N, 3] model units from the centroid: equivariant,
        size = rel.norm(dim=-1, keepdim=True)  # translation-invariant, tells far atoms where the
        vectors = rel / (1 + size**2).sqrt()  # centre is; bounded so no input grows without limit
        if self.frame_vectors:
            axes = torch.eye(3, dtype=x.dtype, device=x.device) if frame is None else frame
            vectors = torch.cat([vectors, axes.reshape(1, 9).expand(p.shape[0], 9)], -1)  # [N, 12]
        h = self.node_inputs(t, species, mask, cond, size.log1p())
        out = self.net(h, edge_index, edge_vec, vectors=vectors)  # [N, 3]
        return remove_mean(_scatter(out, mask), mask)


class PeriodicDenoiser(_Denoiser):
    """eps_theta(f_t, t | species, pattern, cell) for fractional coordinates on the torus.

    Args:
        n_freq: frequencies of the periodic Fourier features (edges and absolute positions).
        other arguments as `ParticleDenoiser`.
    """

    def __init__(
        self,
        cond_dim: int,
        max_z: int,
        species_dim: int,
        time_dim: int,
        max_atoms: int,
        n_freq: int,
        net: dict[str, Any],
    ) -> None:
        super().__init__(
            cond_dim, max_z, species_dim, time_dim, max_atoms, 6 * n_freq + 7, 6 * n_freq, net
        )
        self.n_freq = n_freq

    def forward(
        self,
        frac: torch.Tensor,
        t: torch.Tensor,
        species: torch.Tensor,
        mask: torch.Tensor,
        cond: torch.Tensor,
        cell: torch.Tensor,
    ) -> torch.Tensor:
        """frac: [B, M, 3] (any image), t: [B], species: [B, M], mask: [B, M], cond: [B, C],
        cell: [B, 3, 3] rows Å -> eps: [B, M, 3] fractional noise, zero on padding."""
        b, m = mask.shape
        edge_index = full_graph(mask)  # [2, E]
        f = frac[mask]  # [N, 3]
        node_cell = cell.unsqueeze(1).expand(b, m, 3, 3)[mask]  # [N, 3, 3]
        edge_vec, dfrac = periodic.edge_vectors(f, node_cell, edge_index)  # [E, 3] Å, [E, 3]
        cell_inv = periodic.cell_invariants(cell).unsqueeze(1).expand(b, m, -1)[mask]  # [N, 7]
        extra = torch.cat([periodic.fourier_features(f, self.n_freq), cell_inv], dim=-1)
        h = self.node_inputs(t, species, mask, cond, extra)
        edge_attr = periodic.fourier_features(dfrac, self.n_freq)  # [E, 6K]
        v = self.net(h, edge_index, edge_vec, edge_attr)  # [N, 3]
        scale = torch.linalg.det(node_cell).abs() ** (1 / 3)  # [N] Å
        eps = torch.einsum("nk,nkl->nl", v, torch.linalg.inv(node_cell)) * scale.unsqueeze(-1)
        return _scatter(eps, mask)
