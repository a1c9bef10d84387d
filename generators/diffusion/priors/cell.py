"""Prior 'cell' (particles): particles cut from a unit cell predicted from the pattern.

A CHILI MLP trained jointly on the particles' parent unit cells (`prior_hparams`; cells of up to
`prior_max_atoms` atoms) predicts the crystal from the pattern; DebyeCalculator's cutter (the one
CHILI's particles were made with) cuts spheres of growing radius from it; the count head picks the
one whose atom count it finds most likely (or draws one), and the denoiser (trained at noise up to
`prior_train_sigma` Å) refines that particle from `prior_sigma` Å (0: the cut as is). A cut lies
in the crystal's frame, centred on a metal, as CHILI's particles are, which a sample from noise
cannot be (the pattern does not fix the orientation).
"""

from __future__ import annotations

import torch

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.core.tasks import Condition, TaskBatch, TaskSpec
from invdesign.crystals.cuts import likely_cut
from invdesign.generators.diffusion.heads import CountHead
from invdesign.generators.diffusion.hparams import DiffusionHParams
from invdesign.generators.diffusion.priors.base import CrystalPrior
from invdesign.generators.diffusion.priors.mlp import mlp_loss
from invdesign.generators.diffusion.space import Space
from invdesign.generators.mlp.model import MLPGenerator


class CellPrior(CrystalPrior):
    """An MLP over the parent unit cells, and the count head that picks the sphere to cut."""

    name = "cell"

    def __init__(self, hp: DiffusionHParams, task: TaskSpec, space: Space) -> None:
        if space.periodic:
            raise InvdesignError("prior 'cell' is for particle tasks (unit cells: 'mlp')")
        super().__init__(hp, task, space)
        cells = TaskSpec(task.patterns, "unit_cell_pos_frac", hp.prior_max_atoms)
        self.mlp = MLPGenerator(cells, species_vocab=hp.species_vocab, **(hp.prior_hparams or {}))
        self.count_head = CountHead(hp.cond_dim, task.max_atoms)

    def loss(self, batch: TaskBatch, cond: torch.Tensor, diffusion: torch.Tensor):
        """'diffusion', 'prior', 'prior_coord_mae', 'count', 'loss'."""
        out = mlp_loss(self, self.space.unit_cells(batch, self.name), diffusion)
        total = out.pop("loss")
        out["count"] = self.count_head.loss(cond, batch.n_atoms)
        out["loss"] = total + self.hp.count_weight * out["count"]
        return out

    def crystals(
        self, condition: Condition, cond: torch.Tensor, n: int, generator: torch.Generator | None
    ) -> list[list[Structure]]:
        """The MLP's cells, sampled without the count (which picks the cut, not the cell)."""
        cells = Condition(condition.patterns, condition.composition, condition.cell_params, None)
        return self.mlp.sample(cells, n, generator)

    def cuts_without_count(
        self,
        condition: Condition,
        cond: torch.Tensor,
        crystals: list[list[Structure]],
        generator: torch.Generator | None,
    ) -> list[Structure]:
        """The sphere the count head finds most likely (candidate 0) or draws (1..n-1)."""
        log_p = self.count_head(cond).log_softmax(-1).double().cpu().numpy()
        radii = self.radii()
        return [likely_cut(c, log_p[i], radii, k > 0, generator)
                for i, items in enumerate(crystals) for k, c in enumerate(items)]
