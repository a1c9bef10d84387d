"""The masked sorted-coordinate loss of CHILI's structure-generation baseline, and its helpers.

Atoms have no natural order, so CHILI sorts the ground-truth atoms ascending by their distance from
the origin (the norm of the coordinate vector: |pos_abs| in Å for particles, |pos_frac| for unit
cells), pads them to `max_atoms`, and compares prediction slot i with the i-th nearest true atom;
padded slots carry no loss. CHILI trains with SmoothL1 (beta 1) averaged over all real coordinates
of the batch and reports the L1 mean. Atoms at equal distance (symmetry-equivalent shells) have no
defined order: the sort is stable, so ties keep their stored order, which the model cannot know;
this sets a floor under the sorted error that the assignment-matched metrics
(`invdesign.evaluators.metrics.structure`) do not have.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

Reduction = Literal["smooth_l1", "l1", "mse"]


def sort_by_norm(coords: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort real atoms ascending by |r|, padding last.

    Args:
        coords: [B, N, 3] coordinates (any order; padded slots any value).
        mask: [B, N] bool, True for real atoms.

    Returns:
        (sorted coords [B, N, 3] with padding zeroed, sorted mask [B, N]).
    """
    norms = torch.linalg.vector_norm(coords, dim=-1)
    norms = torch.where(mask, norms, torch.full_like(norms, float("inf")))
    order = torch.sort(norms, dim=-1, stable=True).indices  # [B, N]
    sorted_coords = torch.gather(coords, 1, order.unsqueeze(-1).expand(-1, -1, 3))
    sorted_mask = torch.gather(mask, 1, order)
    return sorted_coords * sorted_mask.unsqueeze(-1), sorted_mask


def pad_sorted(
    structures: Sequence[torch.Tensor], max_atoms: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack variable-size coordinate sets into a sorted, padded batch.

    Args:
        structures: B tensors [n_i, 3] with n_i <= max_atoms.
        max_atoms: N, the padded length.

    Returns:
        (coords [B, N, 3] sorted by |r|, zero padding; mask [B, N] bool).
    """
    coords = torch.zeros(len(structures), max_atoms, 3)
    mask = torch.zeros(len(structures), max_atoms, dtype=torch.bool)
    for i, x in enumerate(structures):
        if x.shape[0] > max_atoms:
            raise ValueError(
                f"structure {i} has {x.shape[0]} atoms, more than max_atoms={max_atoms}"
            )
        coords[i, : x.shape[0]] = x
        mask[i, : x.shape[0]] = True
    return sort_by_norm(coords, mask)


def masked_sorted_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    kind: Reduction = "smooth_l1",
    presorted: bool = False,
) -> torch.Tensor:
    """Mean element-wise loss between prediction slots and the sorted real target atoms.

    Args:
        pred: [B, N, 3] predicted coordinates, slot i = i-th nearest atom to the origin.
        target: [B, N, 3] true coordinates in any order (sorted here unless `presorted`).
        mask: [B, N] bool, True for real target atoms.
        kind: 'smooth_l1' (CHILI's training loss, beta 1), 'l1' (CHILI's MAE) or 'mse'.
        presorted: the target is already sorted by |r| with real atoms first (skips the sort).

    Returns:
        scalar: the loss averaged over the real coordinates of the batch (3 per real atom).
    """
    if not presorted:
        target, mask = sort_by_norm(target, mask)
    m = mask.unsqueeze(-1).expand_as(pred)
    p, t = pred[m], target[m]
    if p.numel() == 0:
        return pred.sum() * 0.0
    if kind == "smooth_l1":
        return F.smooth_l1_loss(p, t, beta=1.0)
    if kind == "l1":
        return F.l1_loss(p, t)
    if kind == "mse":
        return F.mse_loss(p, t)
    raise ValueError(f"unknown loss kind {kind!r}; choose smooth_l1, l1 or mse")
