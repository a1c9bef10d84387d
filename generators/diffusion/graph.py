"""Graphs over padded batches of atoms, built with torch only (no torch-cluster).

A padded batch holds B structures of at most M atoms: `mask` [B, M] marks the real ones. Networks
run on the real atoms only ("compact" node numbering 0..N-1, in row-major order of the mask); edges
join atoms of the same structure and point from a source j to a target i (messages flow j -> i).
"""

from __future__ import annotations

import torch


def compact_index(mask: torch.Tensor) -> torch.Tensor:
    """[B, M] bool -> [B, M] long: the compact node number of each real atom, -1 for padding."""
    index = torch.full(mask.shape, -1, dtype=torch.long, device=mask.device)
    index[mask] = torch.arange(int(mask.sum()), device=mask.device)
    return index


def _pair_mask(mask: torch.Tensor) -> torch.Tensor:
    m = mask.shape[1]
    eye = torch.eye(m, dtype=torch.bool, device=mask.device)
    return mask.unsqueeze(2) & mask.unsqueeze(1) & ~eye  # [B, M, M] (target i, source j)


def full_graph(mask: torch.Tensor) -> torch.Tensor:
    """All ordered pairs of distinct real atoms within each structure: [2, E] (source, target)."""
    index = compact_index(mask)
    b, i, j = _pair_mask(mask).nonzero(as_tuple=True)
    return torch.stack([index[b, j], index[b, i]])


def knn_graph(pos: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """Each real atom receives edges from its k nearest real atoms of the same structure.

    Args:
        pos: [B, M, 3] coordinates (padding ignored).
        mask: [B, M] bool.
        k: neighbours per atom (all others when a structure has fewer than k + 1 atoms).

    Returns:
        [2, E] (source, target) compact node indices.
    """
    index = compact_index(mask)
    m = mask.shape[1]
    if m < 2:
        return torch.empty(2, 0, dtype=torch.long, device=mask.device)
    dist = torch.cdist(pos, pos)  # [B, M, M]
    dist = dist.masked_fill(~_pair_mask(mask), float("inf"))
    kk = min(k, m - 1)
    values, nbr = dist.topk(kk, dim=-1, largest=False)  # [B, M, kk]
    valid = torch.isfinite(values)
    b, i, slot = valid.nonzero(as_tuple=True)
    return torch.stack([index[b, nbr[b, i, slot]], index[b, i]])
