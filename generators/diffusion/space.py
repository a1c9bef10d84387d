"""The two geometries the diffusion model denoises coordinates in.

A `Space` owns what depends on the geometry: the denoiser it needs, the noise levels of the
training schedule in its units, how a clean structure is noised for training, how the reverse
process starts (from noise, or from a prior's coordinates noised to `prior_sigma`), and where a
sample's origin is.

- `ParticleSpace` (`pos_abs`): absolute coordinates in units of `coord_scale` Å, variance-
  preserving diffusion with centre-of-mass-free noise (EDM, Hoogeboom et al. 2022); samples are
  centred on the `centre` hyper-parameter's point (prior cuts keep the cut's frame).
- `TorusSpace` (`unit_cell_pos_frac`): fractional coordinates on the torus, wrapped variance-
  exploding diffusion (DiffCSP, Jiao et al. 2023); a sample's origin is `cell_origin`'s.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

import invdesign.generators.diffusion.periodic as periodic
import invdesign.generators.diffusion.schedule as schedule
from invdesign.core import elements
from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.core.tasks import TaskBatch, TaskSpec
from invdesign.generators.diffusion.denoisers import ParticleDenoiser, PeriodicDenoiser, remove_mean
from invdesign.generators.diffusion.hparams import DiffusionHParams

#: Atomic numbers the denoiser's species embedding covers (1..118, 0 = padding).
MAX_Z = 118

#: One chunk of the reverse process: the denoiser's inputs and the sampler's options.
Chunk = dict[str, Any]


def padded(rows: list[np.ndarray], shape: torch.Size) -> torch.Tensor:
    """Per-structure coordinates [n_i, 3] as one zero-padded float32 tensor [*shape, 3]."""
    out = torch.zeros(*shape, 3)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.as_tensor(r, dtype=out.dtype)
    return out


def nearest_to_origin(frac: np.ndarray) -> np.ndarray:
    """[3] the fractional coordinates [n, 3] of the atom nearest the origin (minimum image, in
    fractional units)."""
    offset = frac - np.round(frac)
    return frac[np.argmin(np.einsum("ij,ij->i", offset, offset))]


class Space(nn.Module, ABC):
    """The geometry of a task's coordinates (no weights; `noise_levels` is a non-persistent
    buffer, so it follows the generator's device and adds nothing to checkpoints).

    Args:
        hp: the generator's hyper-parameters (`beta_schedule` resolved).
        task: the generator's task.
    """

    #: unit cells (fractional coordinates on the torus) or particles (Å)
    periodic: bool = False
    #: the `beta_schedule` when the hyper-parameter is None
    default_beta_schedule: str = "linear"

    def __init__(self, hp: DiffusionHParams, task: TaskSpec) -> None:
        super().__init__()
        self.hp, self.task = hp, task
        self.train_scheduler = schedule.build_train_scheduler(
            hp.num_train_timesteps, hp.beta_schedule, hp.sigma_min, hp.sigma_max)
        self.register_buffer("noise_levels", self._levels(), persistent=False)

    @abstractmethod
    def _levels(self) -> torch.Tensor:
        """[T] noise std per coordinate at each training step, in the task's units."""

    @abstractmethod
    def build_denoiser(self) -> nn.Module:
        """The noise predictor for this geometry."""

    @abstractmethod
    def noised(
        self, denoiser: nn.Module, batch: TaskBatch, cond: torch.Tensor, t: torch.Tensor,
        noise: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise `batch` to training steps t [B] with standard normal `noise` [B, M, 3]; returns
        the denoiser's prediction and its target, both [B, M, 3] (zero on padding)."""

    @abstractmethod
    def reverse(self, c: Chunk, starts: list[np.ndarray] | None) -> list[np.ndarray]:
        """The reverse process of one chunk (`chunk`), from noise or from the prior's `starts`;
        per structure [n, 3] coordinates in the task's units."""

    @abstractmethod
    def structure(
        self, species: np.ndarray, xyz: np.ndarray, cell: torch.Tensor | None, from_prior: bool,
        info: dict[str, Any],
    ) -> Structure:
        """The sampled structure, origin placed and atoms in CHILI's ascending-|r| order."""

    @abstractmethod
    def unit_cells(self, batch: TaskBatch, prior: str) -> TaskBatch:
        """The unit cells a crystal prior trains on: the batch itself, or its parent cells."""

    @abstractmethod
    def starts_from_crystals(
        self, crystals: list[list[Structure]], cut: Callable[[], list[Structure]],
    ) -> tuple[list[np.ndarray], torch.Tensor | None, list[np.ndarray]]:
        """(species, cells [B * n, 6] or None, coordinates) per structure from a prior's unit
        cells (B lists of n): the cells as they are, or the particles `cut()` gives."""

    def prior_begin(self) -> int:
        """The last training step whose noise is at most `prior_sigma` (-1: none is)."""
        return int((self.noise_levels <= self.hp.prior_sigma).sum()) - 1

    def chunk(
        self, denoiser: nn.Module, cond: torch.Tensor, species: list[np.ndarray],
        cells: torch.Tensor | None, sampler: str, steps: int, generator: torch.Generator | None,
    ) -> Chunk:
        """The padded inputs of one chunk of structures: species [B, M], mask [B, M], the
        sampler, the Langevin corrector's options."""
        device = cond.device
        b, m = len(species), max(len(z) for z in species)
        mask = torch.zeros(b, m, dtype=torch.bool)
        z = torch.zeros(b, m, dtype=torch.long)
        for i, zi in enumerate(species):
            mask[i, : len(zi)] = True
            z[i, : len(zi)] = torch.as_tensor(zi)
        mask, z = mask.to(device), z.to(device)
        return {
            "denoiser": denoiser, "cond": cond, "species": species, "z": z, "mask": mask,
            "cells": cells, "generator": generator,
            "scheduler": schedule.build_sampler(sampler, self.train_scheduler, steps),
            "corrector": {"corrector_steps": self.hp.corrector_steps,
                          "snr": self.hp.corrector_snr, "mask": mask},
            "guidance": {},
        }


class ParticleSpace(Space):
    """Absolute coordinates (Å / `coord_scale`), zero centre of mass."""

    periodic = False
    default_beta_schedule = "linear"

    def _levels(self) -> torch.Tensor:
        abar = self.train_scheduler.alphas_cumprod
        return (1 - abar).sqrt().float() * self.hp.coord_scale

    def build_denoiser(self) -> ParticleDenoiser:
        hp = self.hp
        return ParticleDenoiser(hp.cond_dim, MAX_Z, hp.species_dim, hp.time_dim,
                                self.task.max_atoms, hp.k_neighbors, hp.coord_scale,
                                hp.frame_vectors, hp.net)

    def noised(self, denoiser, batch, cond, t, noise):
        mask = batch.mask
        x0 = remove_mean(batch.target, mask) / self.hp.coord_scale
        eps = remove_mean(noise, mask)
        x_t = self.train_scheduler.add_noise(x0, eps, t)
        return denoiser(x_t, t, batch.species, mask, cond), eps

    def reverse(self, c: Chunk, starts: list[np.ndarray] | None) -> list[np.ndarray]:
        mask, z, cond, denoiser = c["mask"], c["z"], c["cond"], c["denoiser"]
        scale = self.hp.coord_scale
        if starts is None:
            x = torch.randn(*mask.shape, 3, generator=c["generator"]).to(cond.device, cond.dtype)
            x = schedule.run_sampler(
                c["scheduler"],
                lambda y, t: denoiser(y, t, z, mask, cond),
                remove_mean(x, mask),
                project=lambda y: remove_mean(y, mask),
                generator=c["generator"],
                max_norm=None if self.hp.max_radius is None else self.hp.max_radius / scale,
                **c["corrector"],
                **c["guidance"],
            )
            x = x * scale
            return [x[i, : len(zi)].double().cpu().numpy() for i, zi in enumerate(c["species"])]
        return self._refine(c, starts)

    def _refine(self, c: Chunk, starts: list[np.ndarray]) -> list[np.ndarray]:
        """Particles cut from the prior's crystals (Å), each noised to `prior_sigma` about its
        centroid and denoised from there, the centroid put back (so the frame stays the cut's);
        returned as they are with prior_sigma 0 or below the schedule's smallest noise."""
        begin = self.prior_begin()
        if begin < 0:
            return [np.asarray(s, dtype=np.float64) for s in starts]
        mask, z, cond, denoiser = c["mask"], c["z"], c["cond"], c["denoiser"]
        scale, cpu_mask = self.hp.coord_scale, mask.cpu()
        x0 = padded(starts, mask.shape)
        centred = remove_mean(x0, cpu_mask)
        noise = remove_mean(torch.randn(x0.shape, generator=c["generator"]), cpu_mask)
        first = torch.tensor([schedule.first_timestep(c["scheduler"], begin)])
        x = self.train_scheduler.add_noise(centred / scale, noise, first)
        x = schedule.run_sampler(
            c["scheduler"],
            lambda y, t: denoiser(y, t, z, mask, cond),
            x.to(cond.device, cond.dtype),
            project=lambda y: remove_mean(y, mask),
            generator=c["generator"],
            start_timestep=begin,
            **c["corrector"],
            **c["guidance"],
        )
        x = x.double().cpu() * scale + (x0 - centred).double()  # the centroid back
        return [x[i, : len(s)].numpy() for i, s in enumerate(starts)]

    def origin(self, species: np.ndarray, xyz: np.ndarray) -> np.ndarray:
        """[3] Å, the point of a sampled particle [n, 3] that becomes the origin (`centre`)."""
        centroid = xyz.mean(0)
        metals = np.array([elements.is_metal(int(z)) for z in species])
        if self.hp.centre == "centroid" or not metals.any():
            return centroid
        candidates = xyz[metals]
        return candidates[np.argmin(np.linalg.norm(candidates - centroid, axis=1))]

    def structure(self, species, xyz, cell, from_prior, info):
        if not from_prior:  # cuts from the prior are in the data's frame already
            xyz = xyz - self.origin(species, xyz)
        order = np.argsort(np.linalg.norm(xyz, axis=1), kind="stable")
        return Structure(species[order], xyz[order], None, "particle", dict(info))

    def unit_cells(self, batch: TaskBatch, prior: str) -> TaskBatch:
        if batch.parent is None:
            raise InvdesignError(f"prior {prior!r} trains on the particles' parent unit cells, "
                                 "which this batch lacks")
        return batch.parent

    def starts_from_crystals(self, crystals, cut):
        cuts = cut()
        return [c.species for c in cuts], None, [c.positions for c in cuts]


class TorusSpace(Space):
    """Fractional coordinates of a unit cell, wrapped noise."""

    periodic = True
    default_beta_schedule = "ve_geometric"

    def _levels(self) -> torch.Tensor:
        return schedule.ve_sigmas(self.train_scheduler)

    def build_denoiser(self) -> PeriodicDenoiser:
        hp = self.hp
        return PeriodicDenoiser(hp.cond_dim, MAX_Z, hp.species_dim, hp.time_dim,
                                self.task.max_atoms, hp.n_freq, hp.net)

    def noised(self, denoiser, batch, cond, t, noise):
        mask = batch.mask.unsqueeze(-1)
        sigma = self.noise_levels[t].view(-1, 1, 1)
        f_t = periodic.wrap(batch.target + sigma * noise * mask)
        # the target is the predictable part of the noise under wrapping (= the noise while
        # sigma is small): -sigma x the wrapped-normal score
        eps = periodic.wrapped_noise_target(f_t - batch.target, sigma) * mask
        cell = periodic.cell_from_parameters(batch.cell_params)
        return denoiser(f_t, t, batch.species, batch.mask, cond, cell), eps

    def reverse(self, c: Chunk, starts: list[np.ndarray] | None) -> list[np.ndarray]:
        mask, z, cond, denoiser = c["mask"], c["z"], c["cond"], c["denoiser"]
        cell = periodic.cell_from_parameters(c["cells"])
        if starts is None:
            x = torch.rand(*mask.shape, 3, generator=c["generator"]).to(cond.device, cond.dtype)
            begin = None
        elif self.prior_begin() < 0:  # prior_sigma 0: the prior's cell as it is
            return [np.mod(np.asarray(f, dtype=np.float64), 1.0) for f in starts]
        else:
            x, begin = self._noised_starts(c, starts)
        x = schedule.run_sampler(
            c["scheduler"],
            lambda f, t: denoiser(f, t, z, mask, cond, cell),
            x,
            torus=True,
            generator=c["generator"],
            start_timestep=begin,
            **c["corrector"],
            **c["guidance"],
        )
        return [x[i, : len(zi)].double().cpu().numpy() for i, zi in enumerate(c["species"])]

    def _noised_starts(self, c: Chunk, starts: list[np.ndarray]) -> tuple[torch.Tensor, int]:
        """The prior's fractional coordinates as a padded [B, M, 3] state noised to the first
        sampling step at or below `prior_sigma`, and the training step the reverse process starts
        at."""
        mask, begin = c["mask"], self.prior_begin()
        first = schedule.first_timestep(c["scheduler"], begin)
        x0 = padded(starts, mask.shape)
        noise = torch.randn(x0.shape, generator=c["generator"]) * mask.cpu().unsqueeze(-1)
        x = periodic.wrap(x0 + float(self.noise_levels[first]) * noise)
        return x.to(mask.device), begin

    def structure(self, species, xyz, cell, from_prior, info):
        assert cell is not None
        if self.hp.cell_origin == "atom":
            xyz = np.mod(xyz - nearest_to_origin(xyz), 1.0)
        order = np.argsort(np.linalg.norm(xyz, axis=1), kind="stable")
        params = cell.double().cpu().numpy()
        return Structure.from_cell_parameters(species[order], xyz[order], params, **info)

    def unit_cells(self, batch: TaskBatch, prior: str) -> TaskBatch:
        return batch

    def starts_from_crystals(self, crystals, cut):
        first = [c for items in crystals for c in items]
        cells = torch.as_tensor(np.stack([c.cell_parameters() for c in first]))
        return [c.species for c in first], cells, [c.frac_positions for c in first]


def space_class(task: TaskSpec) -> type[Space]:
    """The space of `task`'s target: unit cells on the torus, particles in Euclidean space."""
    return TorusSpace if task.kind == "unit_cell" else ParticleSpace
