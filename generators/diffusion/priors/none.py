"""Prior 'none': the whole reverse process from noise; the heads give what it does not sample.

The atom count is drawn from a count head on the pattern embedding (or taken from
`Condition.n_atoms`; a given composition restricts it to counts that fit it); species come from
`Condition.composition` or the composition head, as integer counts (largest remainder), in random
order; a unit cell comes from `Condition.cell_params` or the cell head.
"""

from __future__ import annotations

import numpy as np
import torch

from invdesign.core.errors import InvdesignError
from invdesign.core.tasks import Condition, TaskBatch, TaskSpec
from invdesign.generators.diffusion.heads import (
    CellHead,
    CompositionHead,
    CountHead,
    compatible_counts,
    counts_from_fractions,
)
from invdesign.generators.diffusion.hparams import DiffusionHParams
from invdesign.generators.diffusion.priors.base import Prior, Starts
from invdesign.generators.diffusion.space import Space


def composition_arrays(
    compositions: list[dict[int, float]],
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per composition {atomic number: fraction}, (atomic numbers [k] int64, fractions [k])."""
    return [(np.array(list(c), dtype=np.int64), np.array(list(c.values()), dtype=float))
            for c in compositions]


class NoPrior(Prior):
    """Count, composition and (unit cells) cell heads; samples start from noise."""

    name = "none"

    def __init__(self, hp: DiffusionHParams, task: TaskSpec, space: Space) -> None:
        super().__init__(hp, task, space)
        self.count_head = CountHead(hp.cond_dim, task.max_atoms)
        self.composition_head = CompositionHead(hp.cond_dim, hp.species_vocab)
        self.cell_head = CellHead(hp.cond_dim) if space.periodic else None

    def loss(self, batch: TaskBatch, cond: torch.Tensor, diffusion: torch.Tensor):
        """'diffusion', 'count', 'composition', ('cell' for unit cells), 'loss'."""
        hp = self.hp
        out = {
            "diffusion": diffusion,
            "count": self.count_head.loss(cond, batch.n_atoms),
            "composition": self.composition_head.loss(cond, batch.species, batch.mask),
        }
        total = diffusion + hp.count_weight * out["count"]
        total = total + hp.species_weight * out["composition"]
        if self.cell_head is not None:
            out["cell"] = self.cell_head.loss(cond, batch.cell_params)
            total = total + hp.cell_weight * out["cell"]
        out["loss"] = total
        return out

    def starts(self, condition, cond, n, generator):
        n_atoms = self._counts(condition, cond, n, generator)  # [B * n]
        species = self._species(condition, cond, n_atoms, n, generator)
        cells = None
        if self.cell_head is not None:
            cells = self._cells(condition, cond).repeat_interleave(n, 0)
        return Starts(species, cells, None)

    def _counts(
        self, condition: Condition, cond: torch.Tensor, n: int, generator: torch.Generator | None
    ) -> torch.Tensor:
        """[B * n] atom counts: given, or drawn from the count head (fitting a composition)."""
        if condition.n_atoms is not None:
            counts = condition.n_atoms.long().cpu()
            if counts.min() < 1 or counts.max() > self.task.max_atoms:
                raise InvdesignError(f"n_atoms must be within 1..{self.task.max_atoms}")
            return counts.repeat_interleave(n)
        allowed = None
        if condition.composition is not None:
            m = self.task.max_atoms
            allowed = torch.as_tensor(
                np.stack([compatible_counts(list(c.values()), m) for c in condition.composition])
            )
            allowed = allowed.repeat_interleave(n, 0)
        return self.count_head.draw(cond.repeat_interleave(n, 0), allowed, generator)

    def _species(
        self,
        condition: Condition,
        cond: torch.Tensor,
        n_atoms: torch.Tensor,
        n: int,
        generator: torch.Generator | None,
    ) -> list[np.ndarray]:
        """Per structure [n_atoms] atomic numbers, random order (counts by largest remainder)."""
        if condition.composition is not None:
            comps = composition_arrays(condition.composition)
            for zs, fr in comps:
                if (
                    len(zs) == 0
                    or (fr < 0).any()
                    or fr.sum() <= 0
                    or not (1 <= zs.min() and zs.max() <= 118)
                ):
                    bad = dict(zip(zs.tolist(), fr.tolist(), strict=True))
                    raise InvdesignError(
                        f"bad composition {bad}: need atomic numbers 1..118 and "
                        "non-negative fractions with a positive sum"
                    )
        else:
            vocab = np.array(self.composition_head.vocab, dtype=np.int64)
            comps = [(vocab, p.double().numpy()) for p in self.composition_head.fractions(cond)]
        out = []
        for k, count in enumerate(n_atoms.tolist()):
            zs, fr = comps[k // n]
            z = np.repeat(zs, counts_from_fractions(fr, count))
            out.append(z[torch.randperm(count, generator=generator).numpy()])
        return out

    def _cells(self, condition: Condition, cond: torch.Tensor) -> torch.Tensor:
        """[B, 6] cell parameters: given, or predicted by the cell head."""
        if condition.cell_params is not None:
            return condition.cell_params.to(cond.dtype)
        assert self.cell_head is not None
        return self.cell_head(cond)
