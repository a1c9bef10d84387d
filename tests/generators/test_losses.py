"""The masked sorted-coordinate loss: order of the target atoms and padding must not matter."""

from __future__ import annotations

import pytest
import torch

from invdesign.generators.losses import masked_sorted_loss, pad_sorted, sort_by_norm


def _batch(n_real: tuple[int, ...] = (5, 3, 8), max_atoms: int = 8):
    gen = torch.Generator().manual_seed(1)
    target = torch.randn(len(n_real), max_atoms, 3, generator=gen, dtype=torch.float64)
    mask = torch.zeros(len(n_real), max_atoms, dtype=torch.bool)
    for i, n in enumerate(n_real):
        mask[i, :n] = True
    pred = torch.randn(len(n_real), max_atoms, 3, generator=gen, dtype=torch.float64)
    return pred, target, mask


@pytest.mark.parametrize("kind", ["smooth_l1", "l1", "mse"])
def test_permuting_target_atoms_does_not_change_the_loss(kind):
    pred, target, mask = _batch()
    reference = masked_sorted_loss(pred, target, mask, kind)
    for seed in range(3):
        gen = torch.Generator().manual_seed(seed)
        permuted, pmask = target.clone(), mask.clone()
        for i in range(target.shape[0]):
            perm = torch.randperm(target.shape[1], generator=gen)  # real and padded slots mixed
            permuted[i], pmask[i] = target[i, perm], mask[i, perm]
        assert torch.equal(masked_sorted_loss(pred, permuted, pmask, kind), reference)


def test_padding_does_not_contribute():
    pred, target, mask = _batch()
    pred.requires_grad_(True)
    loss = masked_sorted_loss(pred, target, mask, "l1")
    loss.backward()
    sorted_mask = sort_by_norm(target, mask)[1]
    assert torch.all(pred.grad[~sorted_mask] == 0)
    assert torch.all(pred.grad[sorted_mask].abs().sum(-1) > 0)
    garbage_target = torch.where(mask.unsqueeze(-1), target, torch.full_like(target, 1e6))
    garbage_pred = torch.where(
        sorted_mask.unsqueeze(-1), pred.detach(), torch.full_like(pred, -1e6)
    )
    assert torch.equal(masked_sorted_loss(garbage_pred, garbage_target, mask, "l1"), loss.detach())


def test_loss_compares_slot_i_with_ith_nearest_atom():
    target = torch.tensor([[[3.0, 0, 0], [1.0, 0, 0], [0, 2.0, 0], [9, 9, 9]]])
    mask = torch.tensor([[True, True, True, False]])
    sorted_pred = torch.tensor([[[1.0, 0, 0], [0, 2.0, 0], [3.0, 0, 0], [0, 0, 0]]])
    assert masked_sorted_loss(sorted_pred, target, mask, "l1").item() == 0.0
    shifted = sorted_pred + 0.5
    assert masked_sorted_loss(shifted, target, mask, "l1").item() == pytest.approx(0.5)
    assert masked_sorted_loss(shifted, target, mask, "mse").item() == pytest.approx(0.25)
    assert masked_sorted_loss(shifted, target, mask, "smooth_l1").item() == pytest.approx(0.125)


def test_presorted_target_skips_the_sort_consistently():
    pred, target, mask = _batch()
    st, sm = sort_by_norm(target, mask)
    assert torch.equal(
        masked_sorted_loss(pred, st, sm, presorted=True), masked_sorted_loss(pred, target, mask)
    )


def test_pad_sorted_orders_by_distance_and_rejects_oversized():
    coords, mask = pad_sorted(
        [torch.tensor([[0.0, 0, 2], [0, 1, 0]]), torch.tensor([[5.0, 0, 0]])], 3
    )
    assert mask.tolist() == [[True, True, False], [True, False, False]]
    assert coords[0].tolist() == [[0, 1, 0], [0, 0, 2], [0, 0, 0]]
    with pytest.raises(ValueError, match="more than max_atoms"):
        pad_sorted([torch.zeros(4, 3)], 3)


def test_empty_mask_gives_zero_loss_with_gradient_path():
    pred = torch.ones(1, 2, 3, requires_grad=True)
    loss = masked_sorted_loss(pred, torch.zeros(1, 2, 3), torch.zeros(1, 2, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(pred.grad == 0)
