"""Population resampling of guided samples by their forward-model misfit (sequential Monte Carlo).

The k samples drawn for one condition are a population. At every `every`-th guided reverse step
each sample gets the weight w = exp(-L / temperature), L being the misfit (1 - cos, `guidance.py`)
of its clean estimate that the guided step has just computed; when a group's effective sample size
1 / sum(w^2) (w normalised) falls below `ESS_FRACTION` of its size, the group is resampled
(systematic resampling): samples whose estimate explains the pattern are copied over those whose
estimate does not, and the copies then diverge under the sampler's noise. This is the
Feynman-Kac steering of Singhal et al. (2025) with the misfit as its potential, in the line of
the twisted diffusion sampler (Wu et al. 2023); it costs no extra forward-model pass.

A group is the samples of one condition with the same multiset of species (with the composition
and count given, all k of them). Samples of a group differ in the order their atoms carry the
species, so a copy is the donor's atoms reordered to the receiver's species order (the denoiser
is permutation-equivariant, so this is the same structure). Samples the forward model leaves
unguided (`Guide.valid`) neither give nor receive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

#: a group is resampled when its effective sample size is below this fraction of its size
ESS_FRACTION = 0.5


def systematic(weights: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """[n] ancestor indices drawn by systematic resampling from normalised weights [n] (one
    uniform draw; each index appears floor or ceil of n w_i times)."""
    n = len(weights)
    u = (torch.rand((), generator=generator, dtype=torch.float64) + torch.arange(n)) / n
    edges = torch.cumsum(weights.double().cpu(), 0)
    edges[-1] = 1.0
    return torch.searchsorted(edges, u).clamp(max=n - 1)


def atom_map(donor: np.ndarray, receiver: np.ndarray) -> np.ndarray:
    """[n] indices into the donor's atoms that give the receiver's species order: donor[out] ==
    receiver (both hold the same species multiset)."""
    d = np.argsort(donor, kind="stable")
    r = np.argsort(receiver, kind="stable")
    out = np.empty(len(receiver), dtype=np.int64)
    out[r] = d
    return out


class Resampler:
    """Resamples one chunk of guided samples (module docstring).

    Args:
        species: per sample [n_b] atomic numbers (the chunk's order).
        groups: [B] the condition item each sample belongs to.
        every: resample at every `every`-th guided step (1: each).
        temperature: of the weights exp(-misfit / temperature); smaller selects harder.
        generator: the draws' randomness (CPU).
    """

    def __init__(self, species: Sequence[np.ndarray], groups: Sequence[int], every: int,
                 temperature: float, generator: torch.Generator | None) -> None:
        if every < 1 or not temperature > 0:
            raise ValueError(f"need every >= 1 and temperature > 0, got {every}, {temperature}")
        self.species = [np.asarray(z, dtype=np.int64) for z in species]
        self.every, self.temperature, self.generator = int(every), float(temperature), generator
        by_key: dict[tuple, list[int]] = {}
        for b, (g, z) in enumerate(zip(groups, self.species, strict=True)):
            by_key.setdefault((int(g), tuple(np.sort(z).tolist())), []).append(b)
        self.groups = [m for m in by_key.values() if len(m) > 1]
        self.calls = 0
        #: per resampling event: (group members, their ancestors)
        self.events: list[tuple[list[int], list[int]]] = []

    def due(self) -> bool:
        """Counts a guided step; True at every `every`-th one."""
        self.calls += 1
        return self.calls % self.every == 0

    def ancestors(self, losses: torch.Tensor, valid: torch.Tensor) -> list[int]:
        """[B] for each sample the one it becomes (itself where nothing changes), from the
        misfits [B] of the samples' clean estimates and which of them were guided [B]."""
        out = list(range(len(losses)))
        for members in self.groups:
            live = [b for b in members if bool(valid[b]) and math.isfinite(float(losses[b]))]
            if len(live) < 2:
                continue
            loss = losses[live].double().cpu()
            w = torch.softmax(-loss / self.temperature, 0)
            if float(1.0 / w.pow(2).sum()) >= ESS_FRACTION * len(live):
                continue
            drawn = systematic(w, self.generator).tolist()
            # keep a surviving sample in its own slot, so copies land on the dropped ones
            counts = np.bincount(drawn, minlength=len(live))
            spare = [live[j] for j in range(len(live)) for _ in range(counts[j] - 1)]
            for j, b in enumerate(live):
                if counts[j] == 0:
                    out[b] = spare.pop()
            self.events.append((live, [out[b] for b in live]))
        return out

    def apply(self, x: torch.Tensor, parents: list[int]) -> torch.Tensor:
        """[B, M, ...] x with each sample b replaced by its parent's atoms in b's species order
        (padding kept)."""
        out = x.clone()
        for b, a in enumerate(parents):
            if a != b:
                n = len(self.species[b])
                idx = torch.as_tensor(atom_map(self.species[a], self.species[b]), device=x.device)
                out[b, :n] = x[a, idx]
        return out
