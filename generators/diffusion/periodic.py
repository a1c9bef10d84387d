"""Torus utilities for fractional coordinates of unit cells.

Fractional coordinates live on the 3-torus [0, 1)^3: a lattice translation (an integer added to a
fractional coordinate) leaves the crystal unchanged. Every function here is invariant (or
equivariant) under such shifts. Cells are row vectors in Å (`cart = frac @ cell`), as in
`invdesign.core.structure.Structure`.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def wrap(frac: torch.Tensor) -> torch.Tensor:
    """Fractional coordinates mapped into [0, 1) (any shape)."""
    return frac - torch.floor(frac)


def wrapped_difference(delta: torch.Tensor) -> torch.Tensor:
    """Fractional differences mapped into [-0.5, 0.5]: the nearest image along each axis."""
    return delta - torch.round(delta)


def wrapped_noise_target(delta: torch.Tensor, sigma: torch.Tensor, images: int = 3) -> torch.Tensor:
    """The noise a denoiser can predict on the torus: -sigma x the score of the wrapped normal.

    For f_t = wrap(f_0 + sigma eps), the score of p(f_t | f_0) sums over images k of the
    displacement d = wrapped_difference(f_t - f_0): grad log sum_k N(d + k; 0, sigma^2). Its
    negative times sigma, sum_k w_k (d + k) / sigma with w = softmax_k(-(d + k)^2 / 2 sigma^2),
    equals eps wherever one image dominates (small sigma) and shrinks to its predictable part when
    the wrapping hides eps (sigma ~ 1), as in DiffCSP's wrapped-normal score matching.

    Args:
        delta: [..., 3] f_t - f_0 (any images); sigma: broadcastable noise scale.
        images: images on each side summed over (3 is exact to float32 for sigma <= 1).
    """
    d = wrapped_difference(delta).unsqueeze(-1)  # [..., 3, 1]
    k = torch.arange(-images, images + 1, device=delta.device, dtype=delta.dtype)
    x = d + k  # [..., 3, 2K+1]
    s = sigma.unsqueeze(-1)
    w = torch.softmax(-(x * x) / (2 * s * s), dim=-1)
    return (w * x).sum(-1) / sigma


def edge_vectors(
    frac: torch.Tensor, cell: torch.Tensor, edge_index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Image-wrapped edge vectors of a batched graph.

    Args:
        frac: [N, 3] fractional coordinates of all nodes (any image).
        cell: [N, 3, 3] the cell (rows, Å) of each node's structure.
        edge_index: [2, E] (source j, target i) node indices within the same structure.

    Returns:
        vec: [E, 3] Å, `wrapped_difference(frac_j - frac_i) @ cell`, the per-axis nearest image
            of j seen from i (the true minimum image for cells that are not too skewed).
        dfrac: [E, 3] the wrapped fractional differences themselves.
    """
    src, dst = edge_index
    dfrac = wrapped_difference(frac[src] - frac[dst])  # [E, 3]
    vec = torch.einsum("ek,ekl->el", dfrac, cell[dst])  # [E, 3] Å
    return vec, dfrac


def fourier_features(frac: torch.Tensor, n_freq: int) -> torch.Tensor:
    """[..., 3] fractional values -> [..., 6 * n_freq] sin/cos(2 pi k f), k = 1..n_freq.

    Invariant under integer shifts and continuous across the cell boundary.
    """
    k = torch.arange(1, n_freq + 1, device=frac.device, dtype=frac.dtype)  # [K]
    angle = 2 * math.pi * frac.unsqueeze(-1) * k  # [..., 3, K]
    return torch.cat([angle.sin(), angle.cos()], dim=-1).flatten(-2)  # [..., 6K]


def cell_from_parameters(params: torch.Tensor) -> torch.Tensor:
    """[B, 6] (a, b, c in Å; alpha, beta, gamma in deg) -> [B, 3, 3] cells (rows, Å), in ASE's
    convention (a along x, b in the xy plane), by `ase.geometry.cellpar_to_cell`."""
    from ase.geometry import cellpar_to_cell  # noqa: PLC0415 - lazy: heavy library, loaded on use

    rows = [cellpar_to_cell(p) for p in params.detach().cpu().double().numpy()]
    return torch.as_tensor(np.stack(rows), dtype=params.dtype, device=params.device)


def cell_invariants(cell: torch.Tensor) -> torch.Tensor:
    """[B, 3, 3] cells -> [B, 7] rotation-invariant descriptors: ln lengths (ln Å), cosines of
    the three angles, ln of the cube root of the volume (ln Å)."""
    lengths = cell.norm(dim=-1)  # [B, 3]
    unit = cell / lengths.unsqueeze(-1)
    cos = torch.stack(
        [
            (unit[:, 1] * unit[:, 2]).sum(-1),
            (unit[:, 0] * unit[:, 2]).sum(-1),
            (unit[:, 0] * unit[:, 1]).sum(-1),
        ],
        dim=-1,
    )  # [B, 3] cos alpha, beta, gamma
    scale = torch.linalg.det(cell).abs().clamp_min(1e-6) ** (1 / 3)  # [B] Å
    return torch.cat([lengths.log(), cos, scale.log().unsqueeze(-1)], dim=-1)
