"""Prior 'mlp' (unit cells): a CHILI MLP regression prior trained jointly with the denoiser.

The MLP (`invdesign.generators.mlp.MLPGenerator`, keyword arguments `prior_hparams`) gives the
count, species, cell and a first estimate of the fractional coordinates; the estimate is noised to
`prior_sigma` and the reverse process runs from there (the regression mean plus a diffusion of the
residual, as in residual corrective diffusion, Mardani et al. 2023, sampled like SDEdit, Meng et
al. 2022). The denoiser trains only at noise levels up to `prior_train_sigma`.
"""

from __future__ import annotations

import torch

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.core.tasks import Condition, TaskBatch, TaskSpec
from invdesign.generators.diffusion.hparams import DiffusionHParams
from invdesign.generators.diffusion.priors.base import CrystalPrior
from invdesign.generators.diffusion.space import Space
from invdesign.generators.mlp.model import MLPGenerator


def mlp_loss(prior: CrystalPrior, cells: TaskBatch, diffusion: torch.Tensor):
    """'diffusion', 'prior' (the MLP's total loss on `cells`), 'prior_coord_mae' and the
    weighted total 'loss' of a prior holding an MLP as `mlp`."""
    loss = prior.mlp.loss(cells)
    return {
        "diffusion": diffusion,
        "prior": loss["loss"],
        "prior_coord_mae": loss["coord_mae"],
        "loss": diffusion + prior.hp.prior_weight * loss["loss"],
    }


class MLPPrior(CrystalPrior):
    """Unit cells from an MLP trained on the task's own cells (no heads besides it)."""

    name = "mlp"
    smallest_sigma_is_zero = False

    def __init__(self, hp: DiffusionHParams, task: TaskSpec, space: Space) -> None:
        if not space.periodic:
            raise InvdesignError(
                "prior 'mlp' is for unit-cell tasks: the MLP's particle estimate is no closer to "
                "the particle than the noise a prior sample would start from (particles: 'cell')"
            )
        super().__init__(hp, task, space)
        self.mlp = MLPGenerator(task, species_vocab=hp.species_vocab, **(hp.prior_hparams or {}))

    def loss(self, batch: TaskBatch, cond: torch.Tensor, diffusion: torch.Tensor):
        """'diffusion', 'prior', 'prior_coord_mae', 'loss'."""
        return mlp_loss(self, self.space.unit_cells(batch, self.name), diffusion)

    def crystals(
        self, condition: Condition, cond: torch.Tensor, n: int, generator: torch.Generator | None
    ) -> list[list[Structure]]:
        return self.mlp.sample(condition, n, generator)
