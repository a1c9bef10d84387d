"""Heads on the pattern embedding: atom count, composition (species) and unit cell.

- `CountHead`: logits over 1..max_atoms atoms.
- `CompositionHead`: a categorical distribution over a species vocabulary, read as the composition
  (fraction of atoms of each species); integer counts for n atoms by largest remainder.
- `CellHead`: the six cell parameters (a, b, c in Å; alpha, beta, gamma in deg), regressed as ln
  lengths and angles / 90 deg.
- `PrototypeHead`: logits over a library of crystal prototypes (`prototypes.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from invdesign.core.errors import InvdesignError


def _mlp(dim_in: int, hidden: int, dim_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, hidden), nn.SiLU(), nn.Linear(hidden, dim_out))


def counts_from_fractions(fractions: Sequence[float], n: int) -> np.ndarray:
    """Integer counts summing to n, proportional to `fractions` (largest remainder, stable ties)."""
    f = np.asarray(fractions, dtype=np.float64)
    raw = f / f.sum() * n
    counts = np.floor(raw).astype(np.int64)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return counts


def compatible_counts(fractions: Sequence[float], max_atoms: int, tol: float = 1e-3) -> np.ndarray:
    """[max_atoms] bool: atom counts n = 1..max_atoms for which every n * fraction is an integer
    (e.g. multiples of 3 for TiO2). All True when none fits, so a count can always be drawn."""
    f = np.asarray(fractions, dtype=np.float64)
    f = f / f.sum()
    n = np.arange(1, max_atoms + 1)[:, None]
    ok = (np.abs(n * f - np.round(n * f)) < tol * n).all(axis=1)
    return ok if ok.any() else np.ones(max_atoms, dtype=bool)


class CountHead(nn.Module):
    """Pattern embedding [B, C] -> logits [B, max_atoms] (class k = k + 1 atoms)."""

    def __init__(self, cond_dim: int, max_atoms: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = _mlp(cond_dim, hidden, max_atoms)

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        return self.net(cond)

    def loss(self, cond: torch.Tensor, n_atoms: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self(cond), n_atoms - 1)

    @torch.no_grad()
    def draw(
        self,
        cond: torch.Tensor,
        allowed: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """[B] atom counts drawn from the head (only `allowed` [B, max_atoms] ones, if given)."""
        logits = self(cond).float().cpu()
        if allowed is not None:
            logits = logits.masked_fill(~allowed, float("-inf"))
        return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1) + 1


class CompositionHead(nn.Module):
    """Pattern embedding [B, C] -> logits [B, V] over the species vocabulary (atomic numbers).

    Trained with the cross-entropy of each structure's atoms, i.e. against its composition.
    """

    def __init__(self, cond_dim: int, vocab: Sequence[int], hidden: int = 128) -> None:
        super().__init__()
        self.vocab = [int(z) for z in vocab]
        if not self.vocab or min(self.vocab) < 1 or max(self.vocab) > 118:
            raise InvdesignError(
                f"species vocabulary must hold atomic numbers 1..118, got {self.vocab}"
            )
        self.net = _mlp(cond_dim, hidden, len(self.vocab))
        lookup = torch.full((119,), -100, dtype=torch.long)
        lookup[torch.tensor(self.vocab)] = torch.arange(len(self.vocab))
        self.register_buffer("lookup", lookup, persistent=False)

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        return self.net(cond)

    def loss(self, cond: torch.Tensor, species: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """species: [B, M] atomic numbers, mask: [B, M]; mean cross-entropy over the real atoms."""
        logp = self(cond).log_softmax(-1)  # [B, V]
        target = self.lookup[species.clamp(0, 118)]  # [B, M], -100 outside the vocabulary
        valid = mask & (target >= 0)
        picked = logp.gather(1, target.clamp_min(0))  # [B, M]
        return -(picked * valid).sum() / valid.sum().clamp_min(1)

    @torch.no_grad()
    def fractions(self, cond: torch.Tensor) -> torch.Tensor:
        """[B, V] predicted composition (probabilities over the vocabulary)."""
        return self(cond).float().softmax(-1).cpu()


class CellHead(nn.Module):
    """Pattern embedding [B, C] -> cell parameters [B, 6] (a, b, c Å; alpha, beta, gamma deg)."""

    def __init__(self, cond_dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = _mlp(cond_dim, hidden, 6)

    @staticmethod
    def encode(params: torch.Tensor) -> torch.Tensor:
        """[B, 6] parameters -> [B, 6] regression targets (ln lengths, angles / 90 deg)."""
        return torch.cat([params[:, :3].clamp_min(1e-3).log(), params[:, 3:] / 90.0], dim=-1)

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        """[B, 6] cell parameters, lengths >= 1 Å, angles clamped to 30..150 deg."""
        out = self.net(cond)
        lengths = out[:, :3].exp().clamp_min(1.0)
        angles = (out[:, 3:] * 90.0).clamp(30.0, 150.0)
        return torch.cat([lengths, angles], dim=-1)

    def loss(self, cond: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return F.smooth_l1_loss(self.net(cond), self.encode(params), beta=0.1)


class PrototypeHead(nn.Module):
    """Pattern embedding [B, C] -> logits [B, P] over a prototype library; trained with the
    cross-entropy of each structure's prototype (label -1, no prototype, is left out)."""

    def __init__(self, cond_dim: int, n_prototypes: int, hidden: int = 128) -> None:
        super().__init__()
        if n_prototypes < 1:
            raise InvdesignError("a prototype head needs at least one prototype")
        self.net = _mlp(cond_dim, hidden, n_prototypes)

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        return self.net(cond)

    def loss(self, cond: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = self(cond)
        if not bool((labels >= 0).any()):
            return logits.sum() * 0.0
        return F.cross_entropy(logits, labels, ignore_index=-1)
