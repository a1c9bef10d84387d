"""`MixedEpochSampler`: every data graph each epoch, the extra graphs at a fixed share, cycling."""

from __future__ import annotations

import numpy as np
import pytest

from invdesign.core.errors import InvdesignError
from invdesign.data.mixing import MixedEpochSampler, extra_per_epoch


def test_each_epoch_holds_every_data_row_and_the_share_of_extra_rows():
    sampler = MixedEpochSampler(n_own=10, n_extra=100, share=0.5, seed=3)
    assert len(sampler) == 20
    for _ in range(3):
        rows = list(sampler)
        own = [r for r in rows if r < 10]
        extra = [r for r in rows if r >= 10]
        assert sorted(own) == list(range(10))
        assert len(extra) == 10 and len(set(extra)) == 10 and max(extra) < 110


def test_extra_rows_cycle_through_all_before_repeating():
    sampler = MixedEpochSampler(n_own=4, n_extra=9, share=0.5, seed=0)  # 4 extra per epoch
    seen = np.concatenate([sampler.extra_rows(epoch) for epoch in range(9)])  # 36 = 4 passes
    for k in range(4):
        assert sorted(seen[9 * k:9 * (k + 1)].tolist()) == list(range(9))


def test_order_depends_on_seed_and_epoch_only():
    a, b = MixedEpochSampler(6, 30, 0.25, seed=1), MixedEpochSampler(6, 30, 0.25, seed=1)
    first = list(a)
    assert first == list(b)  # two copies (DDP processes) agree
    assert list(a) != first  # iterating again is the next epoch
    b.set_epoch(1)
    a.set_epoch(1)
    assert list(a) == list(b)
    assert list(MixedEpochSampler(6, 30, 0.25, seed=2)) != first


def test_share_bounds_and_small_extra_sets():
    assert extra_per_epoch(10, 3, 0.9) == 3  # at most every extra graph
    assert extra_per_epoch(1, 50, 0.01) == 1  # at least one
    for bad in (0.0, 1.0, -0.2, 1.5):
        with pytest.raises(InvdesignError, match="extra_share"):
            extra_per_epoch(10, 10, bad)
    with pytest.raises(InvdesignError, match="needs data and extra"):
        MixedEpochSampler(0, 10, 0.5, seed=0)
