"""Value tests of the sorted-coordinate loss that kill mutants surviving
tests/generators/test_losses.py (benchmarks/mutation_score.py losses): tie order, the max_atoms
boundary, messages."""

from __future__ import annotations

import pytest
import torch

from invdesign.generators.losses import masked_sorted_loss, pad_sorted, sort_by_norm


def _shell() -> torch.Tensor:
    """[30, 3] the 30 distinct integer vectors with |r| = 3 exactly: (±3, 0, 0) and (±2, ±2, ±1)
    with their coordinate permutations, in a fixed non-sorted order."""
    vecs = set()
    for a, b, c in ((3, 0, 0), (2, 2, 1)):
        for sa in (1, -1):
            for sb in (1, -1):
                for sc in (1, -1):
                    v = (sa * a, sb * b, sc * c)
                    vecs |= {v, (v[1], v[2], v[0]), (v[2], v[0], v[1])}
    out = torch.tensor(sorted(vecs), dtype=torch.float64)
    return out[torch.randperm(len(out), generator=torch.Generator().manual_seed(3))]


def test_ties_keep_their_stored_order_in_a_long_row() -> None:
    """30 atoms all at |r| = 3 (torch's unstable CPU sort reorders ties from ~20 elements on)."""
    coords = _shell()
    assert coords.shape == (30, 3)
    out, out_mask = sort_by_norm(coords[None], torch.ones(1, 30, dtype=torch.bool))
    assert torch.equal(out[0], coords)
    assert out_mask.all()


def test_ties_among_real_atoms_before_padding() -> None:
    """Three rows of 34 slots: the 30 shell atoms at |r| = 3 keep their stored order; 4 padded
    slots holding small junk coordinates go last, zeroed."""
    coords = torch.full((3, 34, 3), 0.1, dtype=torch.float64)
    mask = torch.zeros(3, 34, dtype=torch.bool)
    for row in range(3):
        coords[row, 4:] = _shell().roll(row, 0)
        mask[row, 4:] = True
    out, out_mask = sort_by_norm(coords, mask)
    expected = torch.zeros_like(coords)
    expected[:, :30] = coords[:, 4:]
    assert torch.equal(out, expected)
    assert out_mask[:, :30].all() and not out_mask[:, 30:].any()


def test_exactly_max_atoms_fits() -> None:
    x = torch.tensor([[3.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    coords, mask = pad_sorted([x], max_atoms=3)
    assert torch.equal(coords[0], torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0],
                                                [3.0, 0.0, 0.0]]))
    assert mask.tolist() == [[True, True, True]]


def test_too_many_atoms_names_the_atom_count() -> None:
    x = torch.zeros(4, 3)  # 4 atoms, 3 coordinates: the message must say 4
    with pytest.raises(ValueError, match=r"^structure 1 has 4 atoms, more than max_atoms=2$"):
        pad_sorted([torch.zeros(1, 3), x], max_atoms=2)


def test_unknown_kind_message() -> None:
    pred = torch.zeros(1, 2, 3)
    msg = r"^unknown loss kind 'huber'; choose smooth_l1, l1 or mse$"
    with pytest.raises(ValueError, match=msg):
        masked_sorted_loss(pred, pred, torch.ones(1, 2, dtype=torch.bool), "huber")
