"""Epochs that mix a data set with a larger training-only set at a fixed share.

`data.extra` folders (e.g. the synthetic set) can hold ten times the graphs of the data folder.
Trained on their union, an epoch is then mostly the extra graphs: each data graph is seen ten
times less often per hour, and the model drifts away from the data it is validated and tested
on. `MixedEpochSampler` keeps every data graph in every epoch and adds a fresh random subset of
the extra graphs, so that they make up `share` of the epoch; over epochs the subsets cycle
through all extra graphs.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

from invdesign.core.errors import InvdesignError


def extra_per_epoch(n_own: int, n_extra: int, share: float) -> int:
    """Extra graphs in one epoch: share / (1 - share) times the data graphs, at most all of them
    and at least one."""
    if not 0.0 < share < 1.0:
        raise InvdesignError(f"data.extra_share must be in (0, 1), got {share}")
    return int(min(n_extra, max(1, round(n_own * share / (1.0 - share)))))


class MixedEpochSampler(Sampler[int]):
    """Rows 0..n_own-1 (the data graphs) every epoch, plus `extra_per_epoch` of the rows
    n_own..n_own+n_extra-1 (the extra graphs), shuffled together.

    The extra rows are drawn as consecutive slices of one permutation per pass over them (a new
    permutation when a pass is used up), so every extra graph is used once before any is used
    twice. Each iteration is the next epoch; the order depends on `seed` and the epoch only, so
    the copies of the sampler in DDP processes agree and Lightning's distributed wrapper shards
    the same epoch."""

    def __init__(self, n_own: int, n_extra: int, share: float, seed: int) -> None:
        super().__init__()
        if n_own < 1 or n_extra < 1:
            raise InvdesignError(
                f"a mixed epoch needs data and extra graphs, got {n_own} and {n_extra}")
        self.n_own, self.n_extra, self.seed = n_own, n_extra, seed
        self.per_epoch = extra_per_epoch(n_own, n_extra, share)
        self.epoch = 0

    def __len__(self) -> int:
        return self.n_own + self.per_epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def extra_rows(self, epoch: int) -> np.ndarray:
        """The extra rows of `epoch` (offsets into the extra graphs, before the shift by
        n_own)."""
        place = np.arange(epoch * self.per_epoch, (epoch + 1) * self.per_epoch)
        cycles, offsets = np.divmod(place, self.n_extra)  # pass over the extra graphs, position
        return np.concatenate([self._pass(int(c))[offsets[cycles == c]] for c in np.unique(cycles)])

    def _pass(self, cycle: int) -> np.ndarray:
        """The order of the extra graphs in their `cycle`-th pass."""
        return np.random.default_rng([self.seed, cycle]).permutation(self.n_extra)

    def __iter__(self) -> Iterator[int]:
        epoch = self.epoch
        self.epoch += 1  # iterating again without set_epoch is the next epoch
        rows = np.concatenate([np.arange(self.n_own), self.n_own + self.extra_rows(epoch)])
        order = np.random.default_rng([self.seed, epoch, 1]).permutation(rows)
        return iter(order.tolist())
