"""The conditional equivariant diffusion generator (`@register_generator('diffusion')`).

Coordinates are denoised by an e3nn network (`denoisers.py`) under a diffusers noise schedule
(`schedule.py`) in one of two spaces (`space.py`): particles (`pos_abs`, centre-of-mass-free
variance-preserving diffusion of coordinates in `coord_scale` Å) or unit cells
(`unit_cell_pos_frac`, wrapped variance-exploding diffusion of fractional coordinates on the
torus). Where the reverse process starts, and the heads that train alongside the denoiser, are the
prior's (`priors/`): 'none' (from noise; count, composition and cell heads), 'mlp' (unit cells
from a regression estimate), 'cell' (particles cut from a predicted unit cell), 'prototype' (both,
from a training prototype fitted to the pattern). The hyper-parameters are one validated record
(`hparams.py`); checkpoints written before this split load through `legacy.py`.

Sampling runs any diffusers sampler, optionally with Langevin corrector steps between its steps
(predictor-corrector, `corrector_steps`; DiffCSP samples fractional coordinates this way), and
optionally guided by the forward model towards its condition pattern (`guidance.py`).

Losses: masked noise-prediction MSE over real atoms (with a crystal prior, at noise levels up to
`prior_train_sigma` only), plus the prior's weighted terms (`Prior.loss`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

import invdesign.generators.diffusion.schedule as schedule
from invdesign.core.errors import InvdesignError
from invdesign.core.patterns import pattern_spec
from invdesign.core.structure import Structure
from invdesign.core.tasks import Condition, TaskBatch, TaskSpec
from invdesign.crystals.prototypes import common_anion, prototype_library
from invdesign.generators.base import Generator, register_generator
from invdesign.generators.diffusion.denoisers import remove_mean
from invdesign.generators.diffusion.encoders import PatternEncoder
from invdesign.generators.diffusion.guidance import build_guide
from invdesign.generators.diffusion.hparams import DiffusionHParams
from invdesign.generators.diffusion.legacy import upgrade_state_dict
from invdesign.generators.diffusion.priors import make_prior
from invdesign.generators.diffusion.resampling import Resampler
from invdesign.generators.diffusion.space import space_class

#: `max_radius` read from training data = this x the largest atom-to-centroid distance there.
MAX_RADIUS_MARGIN = 1.25


def largest_radius(target: torch.Tensor, mask: torch.Tensor) -> float:
    """Largest atom-to-centroid distance (Å) over particles: target [N, M, 3], mask [N, M]."""
    centred = remove_mean(target.double(), mask)
    return float((centred.norm(dim=-1) * mask).max())


@register_generator("diffusion")
class DiffusionGenerator(Generator):
    """Pattern-conditioned E(3)-equivariant diffusion over atom coordinates.

    Built from keyword hyper-parameters (`hparams.DiffusionHParams`, validated there):

    Args:
        task: the task; its target picks the geometry (particle or torus).
        species_vocab: atomic numbers the composition head can predict (from the training data).
        cond_dim, species_dim, time_dim: widths of the pattern, species and time embeddings.
        scalar_dim, vector_dim, n_layers, lmax, n_radial, r_max, radial_hidden, avg_neighbors,
            msg_scalar_dim, msg_vector_dim: the equivariant network (`network.EquivariantDenoiser`;
            r_max in Å).
        k_neighbors: particle graph in-degree; coord_scale: Å per model unit (particles).
        max_radius: particles only, Å: while sampling, every atom of the clean-particle estimate
            is kept within this distance of the centre (`schedule.clip_x0`); None = no limit.
            Read from the training data (1.25 x its largest centroid distance) when training.
        frame_vectors: particles only, give the network the lab axes (learns the data's orientation;
            equivariant only jointly with the frame).
        centre: particles only, where a sample's origin is: 'centroid' (the diffusion's zero centre
            of mass) or 'metal' (the metal atom nearest the centroid, CHILI's convention).
            CHILI-3K's sphere cuts are centred on an atom that is also their centroid, so on samples
            that are not crystalline 'centroid' is the closer estimate of the data's origin.
        cell_origin: unit cells only, where a sample's origin is: 'free' (as sampled) or 'atom' (the
            sample is shifted so its atom nearest the origin, minimum image, sits on it; most
            conventional cells, 92 % of CHILI-3K's, have an atom at the origin). Either is the same
            crystal; only comparisons in a fixed frame (matched MAE) see the difference.
        n_freq: periodic Fourier frequencies (unit cells).
        num_train_timesteps, beta_schedule, sigma_min, sigma_max: the training schedule
            (`schedule.py`); beta_schedule None = 'linear' for particles,
            've_geometric' for unit cells.
        sampler, sampling_steps: default sampler ('ddpm', 'ddim', 'dpmsolver') and its steps.
        corrector_steps, corrector_snr: Langevin corrector steps before each sampler step and
            their signal-to-noise ratio (predictor-corrector sampling, `schedule.langevin_step`;
            0 steps = none).
        sample_batch: structures denoised together when sampling.
        count_weight, species_weight, cell_weight: weights of the head losses (a prior that
            gives the count, species or cell builds no head for it).
        prior: 'none', 'mlp' (unit cells: the regression prior's estimate), 'cell' (particles:
            cut from the prior's unit cell) or 'prototype' (both); see `priors/`.
            prior_hparams: keyword arguments of the prior's `MLPGenerator`. prior_max_atoms:
            'cell' only, the largest parent cell (read from the training data).
        prototypes: prior 'prototype' only, the library (`Prototype.to_dict` rows; read from the
            training cells). prior_top_k: the prototypes tried per pattern. reference_anion: prior
            'prototype' only, the anion put on a prototype's anion sites when no composition is
            given (read from the training cells, `prototypes.common_anion`).
        prior_sigma: noise (fractional units, or Å for particles) added to the prior's sample;
            the reverse process starts at the training step with this noise level. Particles: 0
            = no refinement.
        prior_train_sigma: with a prior, the denoiser trains on noise levels up to this one only.
        prior_weight: weight of the prior's loss in the total.
        guidance_scale, guidance_start: data-consistent sampling (`guidance.py`): each reverse
            step after the fraction `guidance_start` of the trajectory moves the denoised
            estimate down the gradient of its pattern misfit through the forward model, a
            Polyak step times `guidance_scale` (0: off, the default).
        guidance_cell: unit cells: the guidance also steers the lattice (lengths and angles,
            near the predicted cell) and fits it to the final positions (default True).
        resample_every, resample_temperature: guided sampling only: the samples of one
            condition are resampled by their misfit at every `resample_every`-th guided step,
            weights exp(-misfit / resample_temperature) (`resampling.py`; 0: never, the
            default).
    """

    sampling_options = ("sampler", "steps", "guidance_scale", "guidance_start", "guidance_cell",
                        "resample_every", "resample_temperature")
    #: the typed record of the keyword hyper-parameters (`Generator.check_hparams`)
    hparams_schema = DiffusionHParams

    def __init__(self, task: TaskSpec, **hparams: Any) -> None:
        super().__init__(task)
        hp = DiffusionHParams.from_dict(hparams)
        if torch.empty(0).device.type == "meta":  # a size estimate on the meta device
            raise RuntimeError(
                "the diffusion generator cannot be built on the meta device: e3nn computes and "
                "caches its Wigner-3j constants, which would then be meta tensors for every build")
        space = space_class(task)
        hp = hp.replace(
            beta_schedule=hp.beta_schedule or space.default_beta_schedule,
            # the library is kept only where it is used, so other configs stay small
            prototypes=hp.prototypes if hp.prior == "prototype" else None,
            reference_anion=hp.reference_anion if hp.prior == "prototype" else None,
        )
        self.hp = hp
        self.space = space(hp, task)
        self.encoder = PatternEncoder(task.patterns, hp.cond_dim)
        self.prior = make_prior(hp, task, self.space)
        self.denoiser = self.space.build_denoiser()

    @classmethod
    def hparams_from_data(cls, data: Any) -> dict[str, Any]:
        """Hyper-parameters read from the training data: the species vocabulary, the prototype
        library of its cells (particles: their parent cells) and, for particles, `max_radius`."""
        out: dict[str, Any] = {"species_vocab": data.species_vocab()}
        cells = data if data.task.kind == "unit_cell" else getattr(data, "parent", None)
        if cells is not None:
            out["prototypes"] = [p.to_dict() for p in prototype_library(cells)]
            out["reference_anion"] = common_anion(cells)
        if data.task.kind == "particle":
            out["max_radius"] = MAX_RADIUS_MARGIN * largest_radius(data.target, data.mask)
            if cells is not None:
                out["prior_max_atoms"] = cells.task.max_atoms
        return out

    def hparams(self) -> dict[str, Any]:
        return self.hp.to_dict()

    @property
    def periodic(self) -> bool:
        return self.space.periodic

    @property
    def train_scheduler(self):
        """The training schedule (a diffusers `DDPMScheduler`)."""
        return self.space.train_scheduler

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True,
                        assign: bool = False):
        """As `nn.Module.load_state_dict`; state dicts of checkpoints written before the split
        into space and priors are renamed first (`legacy.upgrade_state_dict`)."""
        return super().load_state_dict(upgrade_state_dict(state_dict, self.prior), strict,
                                       assign)

    # ------------------------------------------------------------------ training
    def loss(self, batch: TaskBatch) -> dict[str, torch.Tensor]:
        """'diffusion' (noise MSE per real coordinate) and the prior's terms (`Prior.loss`),
        with the total under 'loss'."""
        cond = self.encoder(batch.condition.patterns)  # [B, C]
        mask = batch.mask  # [B, M]
        b = mask.shape[0]
        # evaluation draws the same timesteps and noise for the same batch every time, so the
        # validation loss compares weights, not draws (early stopping and best-weight selection)
        rng = None if self.training else torch.Generator().manual_seed(
            int(batch.n_atoms.sum()) * 7919 + b)
        t = torch.randint(0, self.prior.train_steps, (b,), generator=rng).to(mask.device)
        noise = torch.randn(batch.target.shape, generator=rng).to(batch.target)  # [B, M, 3]
        pred, eps = self._noise_and_prediction(batch, cond, t, noise)
        err = ((pred - eps) ** 2).sum(-1)  # [B, M]
        diffusion = (err * mask).sum() / (3 * mask.sum())
        return self.prior.loss(batch, cond, diffusion)

    def _noise_and_prediction(
        self, batch: TaskBatch, cond: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise `batch` to training steps t [B] with standard normal `noise` [B, M, 3]; returns
        the denoiser's prediction and its target, both [B, M, 3] (zero on padding)."""
        return self.space.noised(self.denoiser, batch, cond, t, noise)

    def noise_level(self, timestep: int) -> float:
        """Standard deviation per coordinate of the noise added at training step `timestep`: Å for
        particles (sqrt(1 - abar) x coord_scale), fractional units for unit cells (sigma_t)."""
        return float(self.space.noise_levels[timestep])

    @torch.no_grad()
    def noise_prediction_error(
        self, batch: TaskBatch, timestep: int, generator: torch.Generator | None = None
    ) -> tuple[float, float]:
        """The denoiser's skill at one noise level: `batch` noised to training step `timestep`,
        returns (mean squared error of the predicted noise, mean squared error of predicting zero)
        per real coordinate. Their ratio is 1 for a denoiser that has learnt nothing, 0 for a
        perfect one. Noise is drawn on the CPU from `generator`."""
        n_steps = self.hp.num_train_timesteps
        if not 0 <= timestep < n_steps:
            raise InvdesignError(f"timestep must be in 0..{n_steps - 1}, got {timestep}")
        was_training = self.training
        self.eval()
        batch = batch.to(self.device)
        cond = self.encoder(batch.condition.patterns)
        t = torch.full((batch.mask.shape[0],), timestep, dtype=torch.long, device=self.device)
        noise = torch.randn(batch.target.shape, generator=generator).to(batch.target)
        pred, eps = self._noise_and_prediction(batch, cond, t, noise)
        self.train(was_training)
        m = batch.mask.unsqueeze(-1).to(pred.dtype)
        n = 3 * m.sum()
        return float(((pred - eps) ** 2 * m).sum() / n), float((eps**2 * m).sum() / n)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(
        self,
        condition: Condition,
        n: int,
        generator: torch.Generator | None = None,
        *,
        sampler: str | None = None,
        steps: int | None = None,
        guidance_scale: float | None = None,
        guidance_start: float | None = None,
        guidance_cell: bool | None = None,
        resample_every: int | None = None,
        resample_temperature: float | None = None,
    ) -> list[list[Structure]]:
        """`n` candidates per condition item (see `Generator.sample`).

        Args:
            sampler: 'ddpm', 'ddim' or 'dpmsolver' (default: the `sampler` hyper-parameter).
            steps: denoising steps (default: `sampling_steps`).
            guidance_scale, guidance_start: data-consistent sampling (`guidance.py`): the Polyak
                step factor of the forward-model guidance (0: off) and the fraction of the reverse
                trajectory after which it acts (default: the hyper-parameters of those names).
            guidance_cell: unit cells: guide the lattice (lengths and angles) too (default: the
                hyper-parameter; the samples carry the guided cells).
            resample_every, resample_temperature: population resampling of each condition's
                guided samples by their misfit (`resampling.py`; default: the hyper-parameters).
            generator: all randomness (counts, species order, noise) is drawn from it on the CPU.
        """
        if n < 1:
            raise InvdesignError(f"number of samples must be positive, got {n}")
        sampler = sampler or self.hp.sampler
        steps = int(self.hp.sampling_steps if steps is None else steps)
        schedule.build_sampler(sampler, self.train_scheduler, steps)  # validates the options early
        guided = self.hp.replace(  # validates them
            guidance_scale=self.hp.guidance_scale if guidance_scale is None else guidance_scale,
            guidance_start=self.hp.guidance_start if guidance_start is None else guidance_start,
            guidance_cell=self.hp.guidance_cell if guidance_cell is None else guidance_cell,
            resample_every=self.hp.resample_every if resample_every is None else resample_every,
            resample_temperature=(self.hp.resample_temperature if resample_temperature is None
                                  else resample_temperature))
        resample = guided.guidance_scale > 0 and guided.resample_every > 0
        spec = pattern_spec(self.task.patterns[0])
        targets = condition.patterns[spec.name].repeat_interleave(n, 0)  # [B * n, L]
        was_training = self.training
        self.eval()
        condition = condition.to(self.device)
        cond = self.encoder(condition.patterns)  # [B, C]
        starts = self.prior.starts(condition, cond, n, generator)
        cond = cond.repeat_interleave(n, 0)  # [B * n, C]
        species, cells, coords = starts.species, starts.cells, starts.coords
        out_xyz: list[np.ndarray] = []
        chunk = self.hp.sample_batch
        if resample:  # a condition's samples are resampled together: keep them in one chunk
            chunk = max(n, chunk // n * n)
        for begin in range(0, len(species), chunk):
            sl = slice(begin, begin + chunk)
            c = self.space.chunk(self.denoiser, cond[sl], species[sl],
                                 None if cells is None else cells[sl], sampler, steps, generator)
            if guided.guidance_scale > 0:
                guide = build_guide(spec, targets[sl], species[sl], c["mask"],
                                    guided.guidance_scale,
                                    cells=None if cells is None else cells[sl],
                                    coord_scale=self.hp.coord_scale,
                                    guide_cell=guided.guidance_cell)
                c["guidance"] = {"guide": guide, "guide_start": guided.guidance_start}
                if resample:
                    groups = [k // n for k in range(begin, begin + len(species[sl]))]
                    c["guidance"]["resampler"] = Resampler(
                        species[sl], groups, guided.resample_every,
                        guided.resample_temperature, generator)
            chunk_xyz = self.space.reverse(c, None if coords is None else coords[sl])
            if guided.guidance_scale > 0 and cells is not None and guide.cells is not None:
                guide.cells.fit_cells(chunk_xyz)
                cells[sl] = guide.cells.cells.to(cells)
            out_xyz += chunk_xyz
        self.train(was_training)
        info = {"generator": self.name, "sampler": sampler, "steps": steps,
                "prior": self.hp.prior}
        if guided.guidance_scale > 0:
            info.update(guidance_scale=guided.guidance_scale,
                        guidance_start=guided.guidance_start)
            if cells is not None:
                info.update(guidance_cell=guided.guidance_cell)
            if resample:
                info.update(resample_every=guided.resample_every,
                            resample_temperature=guided.resample_temperature)
        out: list[list[Structure]] = []
        for k, (z, xyz) in enumerate(zip(species, out_xyz, strict=True)):
            if k % n == 0:
                out.append([])
            cell = None if cells is None else cells[k]
            out[-1].append(self.space.structure(z, xyz, cell, coords is not None, info))
        return out


# The constructor's keywords are the record's fields: say so to introspection (signature-based
# checks of stored hyper-parameters, help()), which cannot see through **hparams.
_SIGNATURE = DiffusionHParams.keyword_signature()
DiffusionGenerator.__init__.__signature__ = _SIGNATURE  # type: ignore[attr-defined]
DiffusionGenerator.__init__.__annotations__ = {
    p.name: p.annotation for p in _SIGNATURE.parameters.values()
    if p.annotation is not inspect.Parameter.empty
}
