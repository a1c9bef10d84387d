"""The diffusion generator's priors (`base.Prior`), one module each, chosen by `prior`:

- `none.NoPrior`: the whole reverse process from noise; count, composition and cell heads;
- `mlp.MLPPrior`: unit cells from a jointly trained CHILI MLP, refined from `prior_sigma`;
- `cell.CellPrior`: particles cut from the MLP's predicted parent cells;
- `prototype.PrototypePrior`: unit cells and particles from a training prototype fitted to the
  pattern by forward simulation.
"""

from __future__ import annotations

from invdesign.core.tasks import TaskSpec
from invdesign.generators.diffusion.hparams import DiffusionHParams
from invdesign.generators.diffusion.priors.base import CrystalPrior, Prior, Starts
from invdesign.generators.diffusion.priors.cell import CellPrior
from invdesign.generators.diffusion.priors.mlp import MLPPrior
from invdesign.generators.diffusion.priors.none import NoPrior
from invdesign.generators.diffusion.priors.prototype import PrototypePrior, reference_elements
from invdesign.generators.diffusion.space import Space

#: `prior` hyper-parameter -> class (`hparams.PRIORS` names the same keys).
PRIOR_CLASSES: dict[str, type[Prior]] = {
    "none": NoPrior,
    "mlp": MLPPrior,
    "cell": CellPrior,
    "prototype": PrototypePrior,
}


def make_prior(hp: DiffusionHParams, task: TaskSpec, space: Space) -> Prior:
    """The prior `hp.prior` for `task` in `space` (its options checked)."""
    return PRIOR_CLASSES[hp.prior](hp, task, space)


__all__ = ["PRIOR_CLASSES", "CellPrior", "CrystalPrior", "MLPPrior", "NoPrior", "Prior",
           "PrototypePrior", "Starts", "make_prior", "reference_elements"]
