"""The `Prior` protocol: where the reverse process starts from, and what trains alongside it.

A prior owns the heads it uses (an `nn.Module` registered as the generator's `prior`), the loss
terms they add to the denoiser's, and how sampling begins: `starts` gives, per structure, the
species, the cell (unit cells) and either no coordinates (the whole reverse process from noise) or
the prior's coordinates, which the space noises to `prior_sigma` and denoises from there.

`CrystalPrior` is the common part of the priors that predict a unit cell ('mlp', 'cell',
'prototype'): the check of `prior_sigma` against the schedule, the training steps the denoiser is
restricted to, and particles cut from the predicted cells.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.core.tasks import Condition, TaskBatch, TaskSpec
from invdesign.crystals.cuts import CUT_LARGEST, CUT_STEP, cut_to_count
from invdesign.generators.diffusion.hparams import DiffusionHParams
from invdesign.generators.diffusion.space import Space


@dataclass
class Starts:
    """How the reverse process begins for B * n structures.

    Attributes:
        species: per structure [n_atoms] atomic numbers.
        cells: [B * n, 6] cell parameters (a, b, c Å; angles deg) for unit cells, else None.
        coords: per structure [n_atoms, 3] the prior's coordinates (fractional, or Å), or None
            to run the whole reverse process from noise.
    """

    species: list[np.ndarray]
    cells: torch.Tensor | None
    coords: list[np.ndarray] | None


class Prior(nn.Module, ABC):
    """A prior of the diffusion generator (see the module docstring).

    Args:
        hp: the generator's hyper-parameters.
        task: the generator's task.
        space: the generator's geometry.
    """

    #: the `prior` hyper-parameter that selects it
    name = ""

    def __init__(self, hp: DiffusionHParams, task: TaskSpec, space: Space) -> None:
        super().__init__()
        self.hp, self.task = hp, task
        # a plain reference: the generator owns the space (no second registration)
        self.__dict__["space"] = space

    @property
    def train_steps(self) -> int:
        """Training steps 0..train_steps-1 the denoiser learns."""
        return self.hp.num_train_timesteps

    @abstractmethod
    def loss(
        self, batch: TaskBatch, cond: torch.Tensor, diffusion: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The training losses: the denoiser's `diffusion` loss plus the prior's own terms and
        their weighted total under 'loss'. cond: [B, C] pattern embeddings."""

    @abstractmethod
    def starts(
        self, condition: Condition, cond: torch.Tensor, n: int, generator: torch.Generator | None
    ) -> Starts:
        """How sampling begins for the n candidates of each of the B condition items (cond:
        [B, C] pattern embeddings); randomness drawn from `generator` on the CPU."""


class CrystalPrior(Prior):
    """A prior that predicts unit cells: unit-cell samples are those cells (refined from
    `prior_sigma`), particle samples are cut from them."""

    #: the smallest `prior_sigma`: 0 = the prior's structure as it is is allowed
    smallest_sigma_is_zero = True

    def __init__(self, hp: DiffusionHParams, task: TaskSpec, space: Space) -> None:
        super().__init__(hp, task, space)
        levels = space.noise_levels
        smallest = 0.0 if self.smallest_sigma_is_zero else float(levels[0])
        if not (smallest <= hp.prior_sigma <= hp.prior_train_sigma
                and float(levels[0]) <= hp.prior_train_sigma <= float(levels[-1])):
            raise InvdesignError(
                f"need {smallest:.3g} <= prior_sigma <= prior_train_sigma, {float(levels[0]):.3g} "
                f"<= prior_train_sigma <= {float(levels[-1]):.3g} (the schedule's noise levels), "
                f"got {hp.prior_sigma}, {hp.prior_train_sigma}"
            )

    @property
    def train_steps(self) -> int:
        """The training steps whose noise is at most `prior_train_sigma`."""
        return int((self.space.noise_levels <= self.hp.prior_train_sigma).sum())

    @abstractmethod
    def crystals(
        self, condition: Condition, cond: torch.Tensor, n: int, generator: torch.Generator | None
    ) -> list[list[Structure]]:
        """B lists of n predicted unit cells."""

    def starts(self, condition, cond, n, generator):
        crystals = self.crystals(condition, cond, n, generator)
        species, cells, coords = self.space.starts_from_crystals(
            crystals, lambda: self.cuts(condition, cond, crystals, generator))
        return Starts(species, None if cells is None else cells.to(cond), coords)

    def radii(self) -> np.ndarray:
        """Metal-sphere radii (Å) the particles are cut at: 1.5 Å up to `max_radius`."""
        top = float(self.hp.max_radius or CUT_LARGEST)
        return np.arange(1.5, max(top, 1.5) + 1e-9, CUT_STEP)

    def cuts(
        self,
        condition: Condition,
        cond: torch.Tensor,
        crystals: list[list[Structure]],
        generator: torch.Generator | None,
    ) -> list[Structure]:
        """One particle per crystal (B lists of n): cut to the given count, else the prior's
        choice (`cuts_without_count`)."""
        if condition.n_atoms is None:
            return self.cuts_without_count(condition, cond, crystals, generator)
        counts = condition.n_atoms.long().cpu().tolist()
        radii = self.radii()
        return [cut_to_count(c, int(k), radii)
                for items, k in zip(crystals, counts, strict=True) for c in items]

    def cuts_without_count(
        self,
        condition: Condition,
        cond: torch.Tensor,
        crystals: list[list[Structure]],
        generator: torch.Generator | None,
    ) -> list[Structure]:
        """One particle per crystal when no count is given (particle priors override this)."""
        raise InvdesignError(f"prior {self.name!r} does not cut particles")
