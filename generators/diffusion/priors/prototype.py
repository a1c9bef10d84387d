"""Prior 'prototype' (unit cells and particles): a training prototype fitted to the pattern.

A classifier on the pattern embedding over the crystal prototypes of the training cells (read from
the training data into the `prototypes` hyper-parameter, so a checkpoint carries its library;
`invdesign.crystals.prototypes`); the `prior_top_k` likeliest are each fitted to the input pattern
by DebyeCalculator simulations of their cuts over the lattice scale, with the given composition's
elements or the training data's reference pair (`reference_elements`); candidate j is the j-th best
fit. Unit cells are the fitted cell (of the given atom count, if any); particles are cut from it
(to the given count, else the sphere whose simulated pattern fits best). The denoiser refines
either from `prior_sigma`. The count head trains alongside (it picks a particle's size where no
sphere fits within `max_atoms`).
"""

from __future__ import annotations

import numpy as np
import torch

from invdesign.core import elements
from invdesign.core.errors import InvdesignError
from invdesign.core.patterns import pattern_spec
from invdesign.core.structure import Structure
from invdesign.core.tasks import Condition, TaskBatch, TaskSpec
from invdesign.crystals.cuts import likely_cut
from invdesign.crystals.prototypes import (
    Prototype,
    best_cut,
    build_crystal,
    fit_lattice,
    prototype_labels,
)
from invdesign.generators.diffusion.heads import CountHead, PrototypeHead
from invdesign.generators.diffusion.hparams import DiffusionHParams
from invdesign.generators.diffusion.priors.base import CrystalPrior
from invdesign.generators.diffusion.priors.none import composition_arrays
from invdesign.generators.diffusion.space import Space


def reference_elements(
    vocab: list[int] | tuple[int, ...], anion: int | None = None
) -> tuple[int, int]:
    """(cation, anion) standing in for unknown elements on a prototype's sites: the cation of
    median atomic number among the vocabulary's cations (`elements.cation_species`) and `anion`
    (the training cells' commonest, `prototypes.common_anion`) or, without one (checkpoints that
    predate it), the most electronegative of the other species (oxygen when there is none).
    CHILI-3K: Mo, O. The commonest anion matters once the vocabulary grows: with 74 species the
    most electronegative is F, which put F on every anion site of the test oxides."""
    cations = elements.cation_species(list(vocab))
    if anion is None:
        others = [int(z) for z in vocab if int(z) not in cations]
        anion = elements.most_electronegative(others) if others else 8
    return cations[(len(cations) - 1) // 2], int(anion)


class PrototypePrior(CrystalPrior):
    """The prototype classifier and the count head; the library from `prototypes`."""

    name = "prototype"

    def __init__(self, hp: DiffusionHParams, task: TaskSpec, space: Space) -> None:
        super().__init__(hp, task, space)
        if not hp.prototypes:
            raise InvdesignError(
                "prior 'prototype' needs the training cells' prototypes (read from the training "
                "data when training; the particle tasks' data must carry their parent cells)"
            )
        self.prototypes = [Prototype.from_dict(d) for d in hp.prototypes]
        self.count_head = CountHead(hp.cond_dim, task.max_atoms)
        self.prototype_head = PrototypeHead(hp.cond_dim, len(self.prototypes))

    def loss(self, batch: TaskBatch, cond: torch.Tensor, diffusion: torch.Tensor):
        """'diffusion' (low noise only), 'count', 'prototype' (the classifier's), 'loss'."""
        cells = self.space.unit_cells(batch, self.name)
        labels = torch.as_tensor(prototype_labels(cells, self.prototypes), device=cond.device)
        hp = self.hp
        out = {
            "diffusion": diffusion,
            "count": self.count_head.loss(cond, batch.n_atoms),
            "prototype": self.prototype_head.loss(cond, labels),
        }
        out["loss"] = (diffusion + hp.count_weight * out["count"]
                       + hp.prior_weight * out["prototype"])
        return out

    def crystals(
        self, condition: Condition, cond: torch.Tensor, n: int, generator: torch.Generator | None
    ) -> list[list[Structure]]:
        """B lists of n unit cells: the `prior_top_k` prototypes the classifier finds likeliest
        (unit cells: among those of the given atom count, if any), each with the elements of
        `element_pairs` and the lattice scale whose cut's simulated pattern fits the input best
        (`prototypes.fit_lattice`); candidate j is the j-th best fit (cycling)."""
        name = self.task.patterns[0]
        spec = pattern_spec(name)
        values = condition.patterns[name].double().cpu().numpy()
        probs = self.prototype_head(cond).double().cpu().numpy()
        pairs = self.element_pairs(condition)
        # a given count is the cell's only for unit cells (a particle's count picks its cut)
        counts = (None if condition.n_atoms is None or not self.space.periodic
                  else condition.n_atoms.long().cpu().tolist())
        top_k, device = self.hp.prior_top_k, str(cond.device)
        out = []
        for b, (cation, anion) in enumerate(pairs):
            order = [int(k) for k in np.argsort(-probs[b], kind="stable")]
            if counts is not None:
                order = [k for k in order if self.prototypes[k].n_atoms == counts[b]] or order
            fits = sorted(
                (*reversed(fit_lattice(self.prototypes[k], cation, anion, values[b], spec,
                                       device)), k)
                for k in order[:top_k]
            )
            out.append([build_crystal(self.prototypes[k], cation, anion, scale)
                        for _, scale, k in (fits[j % len(fits)] for j in range(n))])
        return out

    def element_pairs(self, condition: Condition) -> list[tuple[int, int]]:
        """(cation, anion) atomic numbers per condition item for a prototype's sites: the two most
        abundant species of the given composition (`elements.cation_species` tells which is the
        cation; one species fills both), else the training vocabulary's reference pair
        (`reference_elements`). The pattern hardly tells the elements apart: on CHILI-3K's grouped
        test particles the composition head named no test cation right, and a fit with its
        elements picked the wrong prototype more often than one with a fixed mid-Z cation (Zn)."""
        if condition.composition is None:
            pair = reference_elements(self.hp.species_vocab, self.hp.reference_anion)
            return [pair] * condition.batch_size
        out = []
        for zs, fr in composition_arrays(condition.composition):
            top = [int(z) for z in zs[np.argsort(-fr, kind="stable")][:2]]
            cations = elements.cation_species(top)
            anions = [z for z in top if z not in cations]
            out.append((cations[0], anions[0] if anions else top[-1]))
        return out

    def cuts_without_count(
        self,
        condition: Condition,
        cond: torch.Tensor,
        crystals: list[list[Structure]],
        generator: torch.Generator | None,
    ) -> list[Structure]:
        """The sphere whose simulated pattern fits the input best (`prototypes.best_cut`); the
        count head's likeliest where no sphere fits in max_atoms."""
        log_p = self.count_head(cond).log_softmax(-1).double().cpu().numpy()
        name = self.task.patterns[0]
        values = condition.patterns[name].double().cpu().numpy()
        spec, device, radii = pattern_spec(name), str(cond.device), self.radii()
        out = []
        for i, items in enumerate(crystals):
            for c in items:
                cut = best_cut(c, values[i], spec, radii, self.task.max_atoms, device)
                out.append(cut or likely_cut(c, log_p[i], radii, False, generator))
        return out
