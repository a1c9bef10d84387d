"""CHILI's MLP baseline as a generator.

Coordinates: exactly CHILI's model (Appendix C; their `benchmark/modules.py`): 4 linear layers,
hidden 128, ReLU after every layer but the last, output 3 x max_atoms read as [max_atoms, 3] slots,
slot i = the i-th nearest atom to the origin. Input: the min-max normalised pattern values
(several patterns concatenated). Trained with the masked sorted-coordinate loss (SmoothL1, as
CHILI).

What makes its output a structure (ours), in a separate network so the coordinate MLP stays CHILI's:
an auxiliary trunk (2 linear layers + ReLU) on the same patterns average-pooled to <= 600 values
(cheap next to the 6000-point xPDF input of the coordinate MLP) with
- a count head: logits over 1..max_atoms; a sample keeps the first n slots (the n innermost atoms);
- a species head: per-slot logits over the species seen in training (low-rank: hidden -> [max_atoms,
  rank] -> species); with a given composition the counts are fixed (largest remainder) and slots are
  assigned species by an optimal assignment on the head's log-probabilities;
- a cell head (unit-cell tasks): a, b, c / 10 Å and angles / 90 deg, used when the condition has no
  cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn

from invdesign.core.patterns import pattern_spec
from invdesign.core.structure import Structure
from invdesign.core.tasks import Condition, TaskBatch, TaskSpec
from invdesign.generators.base import Generator, register_generator
from invdesign.generators.losses import masked_sorted_loss

CELL_SCALE = torch.tensor([10.0, 10.0, 10.0, 90.0, 90.0, 90.0])


def chili_mlp(
    in_features: int, out_features: int, hidden: int = 128, n_layers: int = 4
) -> nn.Sequential:
    """Linear -> ReLU -> ... -> Linear with `n_layers` linear layers (CHILI: 4, hidden 128)."""
    sizes = [in_features] + [hidden] * (n_layers - 1) + [out_features]
    layers: list[nn.Module] = []
    for k in range(n_layers):
        layers.append(nn.Linear(sizes[k], sizes[k + 1]))
        if k < n_layers - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def counts_from_fractions(fractions: Sequence[float], n: int) -> np.ndarray:
    """Integer counts summing to n, proportional to `fractions` (largest remainder)."""
    f = np.asarray(fractions, dtype=np.float64)
    raw = f / f.sum() * n
    counts = np.floor(raw).astype(np.int64)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return counts


@register_generator("mlp")
class MLPGenerator(Generator):
    """CHILI MLP + count / species / cell heads.

    Args:
        task: the task (its patterns set the input size, max_atoms the output size).
        hidden: hidden width of the coordinate MLP (CHILI: 128); n_layers: linear layers (CHILI: 4).
        species_vocab: atomic numbers the species head can predict (from the training data).
        aux_hidden: width of the auxiliary trunk; aux_points: the trunk sees each pattern
            average-pooled to at most this many values; species_rank: per-slot feature size of the
            species head.
        coord_loss: 'smooth_l1' (CHILI), 'l1' or 'mse'.
    """

    def __init__(
        self,
        task: TaskSpec,
        hidden: int = 128,
        n_layers: int = 4,
        species_vocab: Sequence[int] = (8,),
        aux_hidden: int = 128,
        aux_points: int = 600,
        species_rank: int = 16,
        coord_loss: str = "smooth_l1",
    ) -> None:
        super().__init__(task)
        self.hidden, self.n_layers = int(hidden), int(n_layers)
        self.species_vocab = [int(z) for z in species_vocab]
        self.aux_hidden, self.species_rank = int(aux_hidden), int(species_rank)
        self.aux_points = int(aux_points)
        self.coord_loss = coord_loss
        n_in = sum(pattern_spec(p).n_points for p in task.patterns)
        m = task.max_atoms
        self.coords = chili_mlp(n_in, 3 * m, self.hidden, self.n_layers)
        # the heads see each pattern average-pooled to <= aux_points values (xPDF: 6000 -> 600)
        self.pool = {p: -(-pattern_spec(p).n_points // self.aux_points) for p in task.patterns}
        n_aux = sum(pattern_spec(p).n_points // k for p, k in self.pool.items())
        self.trunk = nn.Sequential(
            nn.Linear(n_aux, self.aux_hidden),
            nn.ReLU(),
            nn.Linear(self.aux_hidden, self.aux_hidden),
            nn.ReLU(),
        )
        self.count_head = nn.Linear(self.aux_hidden, m)
        self.slot_features = nn.Linear(self.aux_hidden, m * self.species_rank)
        self.species_head = nn.Linear(self.species_rank, len(self.species_vocab))
        self.cell_head = nn.Linear(self.aux_hidden, 6) if task.kind == "unit_cell" else None
        lookup = torch.full((119,), -100, dtype=torch.long)
        lookup[torch.tensor(self.species_vocab)] = torch.arange(len(self.species_vocab))
        self.register_buffer("_vocab_index", lookup, persistent=False)

    @classmethod
    def hparams_from_data(cls, data: Any) -> dict[str, Any]:
        """Hyper-parameters read from the training data: the species vocabulary."""
        return {"species_vocab": data.species_vocab()}

    def hparams(self) -> dict[str, Any]:
        return {
            "hidden": self.hidden,
            "n_layers": self.n_layers,
            "species_vocab": self.species_vocab,
            "aux_hidden": self.aux_hidden,
            "aux_points": self.aux_points,
            "species_rank": self.species_rank,
            "coord_loss": self.coord_loss,
        }

    # ------------------------------------------------------------------ forward
    def _input(self, condition: Condition) -> torch.Tensor:
        return torch.cat([condition.patterns[p] for p in self.task.patterns], dim=-1)  # [B, L]

    def _aux_input(self, condition: Condition) -> torch.Tensor:
        parts = [
            F.avg_pool1d(condition.patterns[p].unsqueeze(1), k).squeeze(1)
            if k > 1
            else condition.patterns[p]
            for p, k in self.pool.items()
        ]
        return torch.cat(parts, dim=-1)  # [B, L_aux]

    def forward(self, condition: Condition) -> dict[str, torch.Tensor]:
        """coords [B, M, 3]; count_logits [B, M] (class k = k + 1 atoms); species_logits [B, M, V];
        cell [B, 6] (a, b, c Å; angles deg) for unit-cell tasks."""
        x = self._input(condition)
        b, m = x.shape[0], self.task.max_atoms
        h = self.trunk(self._aux_input(condition))  # [B, H]
        slots = F.relu(self.slot_features(h)).view(b, m, self.species_rank)  # [B, M, R]
        out = {
            "coords": self.coords(x).view(b, m, 3),
            "count_logits": self.count_head(h),
            "species_logits": self.species_head(slots),  # [B, M, V]
        }
        if self.cell_head is not None:
            out["cell"] = self.cell_head(h) * CELL_SCALE.to(h.device)
        return out

    def loss(self, batch: TaskBatch) -> dict[str, torch.Tensor]:
        out = self(batch.condition)
        coord = masked_sorted_loss(
            out["coords"],
            batch.target,
            batch.mask,
            self.coord_loss,  # type: ignore[arg-type]
            presorted=True,
        )
        with torch.no_grad():
            coord_mae = masked_sorted_loss(
                out["coords"], batch.target, batch.mask, "l1", presorted=True
            )
        count = F.cross_entropy(out["count_logits"], batch.n_atoms - 1)
        species_target = self._vocab_index[batch.species.clamp(0, 118)]
        species_target = torch.where(
            batch.mask, species_target, torch.full_like(species_target, -100)
        )
        species = F.cross_entropy(
            out["species_logits"].flatten(0, 1), species_target.flatten(), ignore_index=-100
        )
        total = coord + count + species
        losses = {"coord": coord, "coord_mae": coord_mae, "count": count, "species": species}
        if "cell" in out:
            scale = CELL_SCALE.to(batch.cell_params.device)
            losses["cell"] = F.l1_loss(out["cell"] / scale, batch.cell_params / scale)
            total = total + losses["cell"]
        losses["loss"] = total
        return losses

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(
        self, condition: Condition, n: int, generator: torch.Generator | None = None
    ) -> list[list[Structure]]:
        """n candidates per item. Coordinates are deterministic (the MLP is a regressor); candidate
        0 takes the most likely count and species, candidates 1..n-1 draw them from the heads'
        distributions. Atoms come in slot order (ascending predicted distance from the origin)."""
        out = {k: v.cpu() for k, v in self(condition).items()}
        count_p = out["count_logits"].softmax(-1)
        species_logp = out["species_logits"].log_softmax(-1)
        results = []
        for i in range(condition.batch_size):
            items = []
            for k in range(n):
                draw = k > 0
                if condition.n_atoms is not None:
                    n_i = int(condition.n_atoms[i])
                elif draw:
                    n_i = int(torch.multinomial(count_p[i], 1, generator=generator)) + 1
                else:
                    n_i = int(count_p[i].argmax()) + 1
                comp = None if condition.composition is None else condition.composition[i]
                species = self._species(species_logp[i, :n_i], comp, draw, generator)
                coords = out["coords"][i, :n_i].double().numpy()
                items.append(self._structure(species, coords, condition, out, i))
            results.append(items)
        return results

    def _species(
        self,
        logp: torch.Tensor,
        composition: dict[int, float] | None,
        draw: bool,
        generator: torch.Generator | None,
    ) -> np.ndarray:
        """Atomic numbers of n slots from their log-probabilities [n, V]."""
        vocab = np.asarray(self.species_vocab)
        if composition is None:
            idx = (
                torch.multinomial(logp.exp(), 1, generator=generator).squeeze(-1)
                if draw
                else logp.argmax(-1)
            )
            return vocab[idx.numpy()]
        zs = list(composition)
        counts = counts_from_fractions([composition[z] for z in zs], logp.shape[0])
        columns = np.repeat(np.arange(len(zs)), counts)  # one column per atom to place
        floor = float(logp.min()) - 10.0  # species outside the vocabulary: least likely everywhere
        lp = logp.numpy()
        per_z = np.stack(
            [
                lp[:, int(np.where(vocab == z)[0][0])]
                if z in vocab
                else np.full(lp.shape[0], floor)
                for z in zs
            ],
            axis=1,
        )  # [n, len(zs)]
        rows, cols = linear_sum_assignment(-per_z[:, columns])
        out = np.empty(logp.shape[0], dtype=np.int64)
        out[rows] = np.asarray(zs)[columns[cols]]
        return out

    def _structure(
        self,
        species: np.ndarray,
        coords: np.ndarray,
        condition: Condition,
        out: dict[str, torch.Tensor],
        i: int,
    ) -> Structure:
        if self.task.kind == "particle":
            return Structure(species, coords, None, "particle")
        if condition.cell_params is not None:
            params = condition.cell_params[i].double().cpu().numpy()
        else:
            params = plausible_cell(out["cell"][i].double().numpy())
        return Structure.from_cell_parameters(species, coords, params)


def plausible_cell(params: np.ndarray) -> np.ndarray:
    """Predicted (a, b, c, alpha, beta, gamma) made a valid cell: lengths >= 1 Å, angles in 60..120
    deg, and right angles when the three angles cannot close a cell."""
    params = np.asarray(params, dtype=np.float64).copy()
    params[:3] = np.clip(params[:3], 1.0, None)
    params[3:] = np.clip(params[3:], 60.0, 120.0)
    c = np.cos(np.radians(params[3:]))
    if 1 - (c**2).sum() + 2 * c.prod() <= 1e-3:  # the cell volume factor
        params[3:] = 90.0
    return params
