"""The conditional equivariant diffusion generator (`@register_generator('diffusion')`).

Coordinates are denoised by an e3nn network (`denoisers.py`) under a diffusers noise schedule
(`schedule.py`):
- particles (`pos_abs`): variance-preserving diffusion of centred coordinates in units of
  `coord_scale` Å with centre-of-mass-free noise (EDM, Hoogeboom et al. 2022); samples are centred
  at the origin.
- unit cells (`unit_cell_pos_frac`): wrapped variance-exploding diffusion of fractional coordinates
  on the torus (DiffCSP, Jiao et al. 2023), default geometric sigmas 0.005..1 (`ve_geometric`); the
  cell comes from the condition or the cell head. The atom count is drawn from a count head on the
  pattern embedding (or taken from `Condition.n_atoms`); species come from `Condition.composition`
  or the composition head, as integer counts (largest remainder).

Sampling runs any diffusers sampler, optionally with Langevin corrector steps between its steps
(predictor-corrector, `corrector_steps`; DiffCSP samples fractional coordinates this way).

Unit cells can also be generated from a regression prior (`prior='mlp'`): a CHILI MLP trained
jointly with the denoiser gives the count, species, cell and a first estimate of the coordinates;
the estimate is noised to `prior_sigma` and the reverse process runs from there (the regression
mean plus a diffusion of the residual, as in residual corrective diffusion, Mardani et al. 2023,
sampled like SDEdit, Meng et al. 2022). The denoiser then trains only at noise levels up to
`prior_train_sigma`, the part of the schedule it is used on.

Particles can come from a crystallographic prior (`prior='cell'`): a CHILI MLP trained jointly on
the particles' parent unit cells predicts the crystal from the pattern, DebyeCalculator's cutter
(the one CHILI's particles were made with) cuts spheres of growing radius from it, the count head
picks the one whose atom count it finds most likely (or draws one), and the denoiser (trained at
noise up to `prior_train_sigma` Å) refines that particle from `prior_sigma` Å (0: the cut as is).
A cut lies in the crystal's frame, centred on a metal, as CHILI's particles are, which a sample
from noise cannot be (the pattern does not fix the orientation).

Both targets can come from a prototype prior (`prior='prototype'`, `prototypes.py`): a classifier
on the pattern embedding over the crystal prototypes of the training cells (read from the training
data into the `prototypes` hyper-parameter, so a checkpoint carries its library); the
`prior_top_k` likeliest are each fitted to the input pattern by DebyeCalculator simulations of
their cuts over the lattice scale, with the given composition's elements or the vocabulary's
reference pair (`reference_elements`); candidate j is the j-th best fit. Unit cells are the fitted
cell (of the given atom count, if any); particles are cut from it like 'cell' samples. The
denoiser refines either from `prior_sigma`.

Losses: masked noise-prediction MSE over real atoms, plus weighted count, composition and cell
losses; with a prior, plus the prior's own loss instead (the count head still trains with 'cell'
and 'prototype', where it picks the sphere; the other heads are then built but unused).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from invdesign.core import elements
from invdesign.core.errors import InvdesignError
from invdesign.core.patterns import pattern_spec
from invdesign.core.structure import Structure
from invdesign.core.tasks import Condition, TaskBatch, TaskSpec
from invdesign.crystals.cuts import CUT_LARGEST, CUT_STEP, cut_to_count, likely_cut
from invdesign.crystals.prototypes import (
    Prototype,
    best_cut,
    build_crystal,
    fit_lattice,
    prototype_labels,
    prototype_library,
)
from invdesign.generators.base import Generator, register_generator
from invdesign.generators.diffusion import periodic, schedule
from invdesign.generators.diffusion.denoisers import ParticleDenoiser, PeriodicDenoiser, remove_mean
from invdesign.generators.diffusion.encoders import PatternEncoder
from invdesign.generators.diffusion.heads import (
    CellHead,
    CompositionHead,
    CountHead,
    PrototypeHead,
    compatible_counts,
    counts_from_fractions,
)
from invdesign.generators.mlp.model import MLPGenerator

NET_KEYS = (
    "scalar_dim",
    "vector_dim",
    "n_layers",
    "lmax",
    "n_radial",
    "r_max",
    "radial_hidden",
    "avg_neighbors",
    "msg_scalar_dim",
    "msg_vector_dim",
)


#: Priors the reverse process can start from: 'mlp' (unit cells, the regression estimate), 'cell'
#: (particles, cut from a predicted unit cell) and 'prototype' (both: a training prototype fitted
#: to the pattern, particles cut from it).
PRIORS = ("none", "mlp", "cell", "prototype")

#: `max_radius` read from training data = this x the largest atom-to-centroid distance there.
MAX_RADIUS_MARGIN = 1.25


def largest_radius(target: torch.Tensor, mask: torch.Tensor) -> float:
    """Largest atom-to-centroid distance (Å) over particles: target [N, M, 3], mask [N, M]."""
    centred = remove_mean(target.double(), mask)
    return float((centred.norm(dim=-1) * mask).max())


def reference_elements(vocab: list[int] | tuple[int, ...]) -> tuple[int, int]:
    """(cation, anion) standing in for unknown elements on a prototype's sites: the cation of
    median atomic number among the vocabulary's cations (`elements.cation_species`) and the most
    electronegative of its other species (oxygen when it has none); CHILI-3K: Mo, O."""
    cations = elements.cation_species(list(vocab))
    others = [int(z) for z in vocab if int(z) not in cations]
    anion = elements.most_electronegative(others) if others else 8
    return cations[(len(cations) - 1) // 2], anion


def _composition_arrays(
    compositions: list[dict[int, float]],
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per composition {atomic number: fraction}, (atomic numbers [k] int64, fractions [k])."""
    return [(np.array(list(c), dtype=np.int64), np.array(list(c.values()), dtype=float))
            for c in compositions]


def _padded(rows: list[np.ndarray], shape: torch.Size) -> torch.Tensor:
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


@register_generator("diffusion")
class DiffusionGenerator(Generator):
    """Pattern-conditioned E(3)-equivariant diffusion over atom coordinates.

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
        count_weight, species_weight, cell_weight: weights of the head losses (not trained with a
            prior, which gives the count, species and cell).
        prior: 'none', 'mlp' (unit cells: the regression prior's estimate), 'cell' (particles:
            cut from the prior's unit cell) or 'prototype' (both; module docstring).
            prior_hparams: keyword arguments of the prior's `MLPGenerator`. prior_max_atoms:
            'cell' only, the largest parent cell (read from the training data).
        prototypes: prior 'prototype' only, the library (`Prototype.to_dict` rows; read from the
            training cells). prior_top_k: the prototypes tried per pattern.
        prior_sigma: noise (fractional units, or Å for particles) added to the prior's sample;
            the reverse process starts at the training step with this noise level. Particles: 0
            = no refinement.
        prior_train_sigma: with a prior, the denoiser trains on noise levels up to this one only.
        prior_weight: weight of the prior's loss in the total.
    """

    sampling_options = ("sampler", "steps")

    def __init__(
        self,
        task: TaskSpec,
        species_vocab: list[int] | tuple[int, ...] = (8,),
        cond_dim: int = 128,
        species_dim: int = 32,
        time_dim: int = 64,
        scalar_dim: int = 64,
        vector_dim: int = 16,
        n_layers: int = 4,
        lmax: int = 2,
        n_radial: int = 16,
        r_max: float = 8.0,
        radial_hidden: int = 64,
        avg_neighbors: float = 16.0,
        msg_scalar_dim: int | None = 16,
        msg_vector_dim: int | None = 8,
        k_neighbors: int = 16,
        coord_scale: float = 4.0,
        max_radius: float | None = None,
        frame_vectors: bool = False,
        centre: str = "centroid",
        cell_origin: str = "free",
        n_freq: int = 4,
        num_train_timesteps: int = 1000,
        beta_schedule: str | None = None,
        sigma_min: float = 0.005,
        sigma_max: float = 1.0,
        sampler: str = "dpmsolver",
        sampling_steps: int = 50,
        corrector_steps: int = 0,
        corrector_snr: float = 0.1,
        sample_batch: int = 32,
        count_weight: float = 0.1,
        species_weight: float = 0.1,
        cell_weight: float = 0.1,
        prior: str = "none",
        prior_hparams: dict[str, Any] | None = None,
        prototypes: list[dict[str, Any]] | None = None,
        prior_top_k: int = 3,
        prior_sigma: float = 0.01,
        prior_train_sigma: float = 0.05,
        prior_weight: float = 1.0,
        prior_max_atoms: int = 20,
    ) -> None:
        super().__init__(task)
        self._hparams = {
            k: v for k, v in locals().items() if k not in ("self", "task", "__class__")
        }
        self._hparams["species_vocab"] = [int(z) for z in species_vocab]
        if beta_schedule is None:
            beta_schedule = "ve_geometric" if task.kind == "unit_cell" else "linear"
        self._hparams["beta_schedule"] = beta_schedule
        if centre not in ("centroid", "metal"):
            raise InvdesignError(f"centre must be 'centroid' or 'metal', not {centre!r}")
        if cell_origin not in ("free", "atom"):
            raise InvdesignError(f"cell_origin must be 'free' or 'atom', not {cell_origin!r}")
        if sampler not in schedule.SAMPLERS:
            raise InvdesignError(
                f"unknown sampler {sampler!r}; choose from {', '.join(schedule.SAMPLERS)}"
            )
        if corrector_steps < 0 or corrector_snr <= 0:
            raise InvdesignError(
                f"need corrector_steps >= 0 and corrector_snr > 0, got {corrector_steps}, "
                f"{corrector_snr}"
            )
        self.train_scheduler = schedule.build_train_scheduler(
            num_train_timesteps, beta_schedule, sigma_min, sigma_max
        )
        self.register_buffer("sigmas", schedule.ve_sigmas(self.train_scheduler), persistent=False)
        # noise per coordinate at each training step, in the task's units (fractional or Å)
        levels = (
            self.sigmas if task.kind == "unit_cell"
            else (1 - self.train_scheduler.alphas_cumprod).sqrt().float() * coord_scale
        )
        self.register_buffer("noise_levels", levels, persistent=False)
        self.prior = self._build_prior(prior, prior_hparams, prior_sigma, prior_train_sigma)
        self.prototypes = self._build_prototypes(prior, prototypes, prior_top_k)
        # training steps the denoiser learns: all, or those up to prior_train_sigma
        self._train_steps = (
            num_train_timesteps if prior == "none"
            else int((self.noise_levels <= prior_train_sigma).sum())
        )
        net = {k: self._hparams[k] for k in NET_KEYS}
        self.encoder = PatternEncoder(task.patterns, cond_dim)
        self.count_head = CountHead(cond_dim, task.max_atoms)
        self.composition_head = CompositionHead(cond_dim, self._hparams["species_vocab"])
        self.cell_head = CellHead(cond_dim) if task.kind == "unit_cell" else None
        self.prototype_head = (
            PrototypeHead(cond_dim, len(self.prototypes)) if self.prototypes else None
        )
        if task.kind == "unit_cell":
            self.denoiser: ParticleDenoiser | PeriodicDenoiser = PeriodicDenoiser(
                cond_dim, 118, species_dim, time_dim, task.max_atoms, n_freq, net
            )
        else:
            self.denoiser = ParticleDenoiser(
                cond_dim,
                118,
                species_dim,
                time_dim,
                task.max_atoms,
                k_neighbors,
                coord_scale,
                frame_vectors,
                net,
            )

    def _build_prior(
        self,
        prior: str,
        prior_hparams: dict[str, Any] | None,
        prior_sigma: float,
        prior_train_sigma: float,
    ) -> MLPGenerator | None:
        """The MLP of prior 'mlp' or 'cell' (None otherwise), after checking the prior's options."""
        if prior not in PRIORS:
            raise InvdesignError(f"prior must be one of {', '.join(PRIORS)}, not {prior!r}")
        if prior == "none":
            return None
        if prior == "mlp" and self.task.kind != "unit_cell":
            raise InvdesignError(
                "prior 'mlp' is for unit-cell tasks: the MLP's particle estimate is no closer to "
                "the particle than the noise a prior sample would start from (particles: 'cell')"
            )
        if prior == "cell" and self.task.kind != "particle":
            raise InvdesignError("prior 'cell' is for particle tasks (unit cells: 'mlp')")
        levels = self.noise_levels
        smallest = 0.0 if prior in ("cell", "prototype") else float(levels[0])
        if not (smallest <= prior_sigma <= prior_train_sigma
                and float(levels[0]) <= prior_train_sigma <= float(levels[-1])):
            raise InvdesignError(
                f"need {smallest:.3g} <= prior_sigma <= prior_train_sigma, {float(levels[0]):.3g} "
                f"<= prior_train_sigma <= {float(levels[-1]):.3g} (the schedule's noise levels), "
                f"got {prior_sigma}, {prior_train_sigma}"
            )
        if prior == "prototype":
            return None
        task = self.task
        if prior == "cell":
            limit = int(self._hparams["prior_max_atoms"])
            task = TaskSpec(task.patterns, "unit_cell_pos_frac", limit)
        vocab = self._hparams["species_vocab"]
        return MLPGenerator(task, species_vocab=vocab, **(prior_hparams or {}))

    def _build_prototypes(
        self, prior: str, library: list[dict[str, Any]] | None, top_k: int
    ) -> list[Prototype]:
        """The prototype library of prior 'prototype' ([] otherwise; the hyper-parameter is then
        dropped, so configs without it stay small)."""
        if prior != "prototype":
            self._hparams["prototypes"] = None
            return []
        if not library:
            raise InvdesignError(
                "prior 'prototype' needs the training cells' prototypes (read from the training "
                "data when training; the particle tasks' data must carry their parent cells)"
            )
        if top_k < 1:
            raise InvdesignError(f"prior_top_k must be positive, got {top_k}")
        return [Prototype.from_dict(d) for d in library]

    @classmethod
    def hparams_from_data(cls, data: Any) -> dict[str, Any]:
        """Hyper-parameters read from the training data: the species vocabulary, the prototype
        library of its cells (particles: their parent cells) and, for particles, `max_radius`."""
        out: dict[str, Any] = {"species_vocab": data.species_vocab()}
        cells = data if data.task.kind == "unit_cell" else getattr(data, "parent", None)
        if cells is not None:
            out["prototypes"] = [p.to_dict() for p in prototype_library(cells)]
        if data.task.kind == "particle":
            out["max_radius"] = MAX_RADIUS_MARGIN * largest_radius(data.target, data.mask)
            if cells is not None:
                out["prior_max_atoms"] = cells.task.max_atoms
        return out

    def hparams(self) -> dict[str, Any]:
        return dict(self._hparams)

    @property
    def periodic(self) -> bool:
        return self.task.kind == "unit_cell"

    # ------------------------------------------------------------------ training
    def loss(self, batch: TaskBatch) -> dict[str, torch.Tensor]:
        """'diffusion' (noise MSE per real coordinate), 'count', 'composition', ('cell'), 'loss';
        with a prior 'diffusion', 'prior' (the MLP's total loss), 'prior_coord_mae', ('count' for
        'cell': the count head picks the sphere to cut), 'loss'."""
        cond = self.encoder(batch.condition.patterns)  # [B, C]
        mask, species = batch.mask, batch.species  # [B, M]
        b = mask.shape[0]
        # evaluation draws the same timesteps and noise for the same batch every time, so the
        # validation loss compares weights, not draws (early stopping and best-weight selection)
        rng = None if self.training else torch.Generator().manual_seed(
            int(batch.n_atoms.sum()) * 7919 + b)
        t = torch.randint(0, self._train_steps, (b,), generator=rng).to(mask.device)
        noise = torch.randn(batch.target.shape, generator=rng).to(batch.target)  # [B, M, 3]
        pred, eps = self._noise_and_prediction(batch, cond, t, noise)
        err = ((pred - eps) ** 2).sum(-1)  # [B, M]
        diffusion = (err * mask).sum() / (3 * mask.sum())
        if self.prototype_head is not None:
            return self._prototype_loss(batch, cond, diffusion)
        if self.prior is not None:  # the prior gives species and cell (and count for unit cells)
            if self.periodic:
                prior = self.prior.loss(batch)
            elif batch.parent is None:
                raise InvdesignError("prior 'cell' trains on the particles' parent unit cells, "
                                     "which this batch lacks")
            else:
                prior = self.prior.loss(batch.parent)
            out = {
                "diffusion": diffusion,
                "prior": prior["loss"],
                "prior_coord_mae": prior["coord_mae"],
            }
            total = diffusion + self._hparams["prior_weight"] * prior["loss"]
            if not self.periodic:
                out["count"] = self.count_head.loss(cond, batch.n_atoms)
                total = total + self._hparams["count_weight"] * out["count"]
            out["loss"] = total
            return out
        out = {
            "diffusion": diffusion,
            "count": self.count_head.loss(cond, batch.n_atoms),
            "composition": self.composition_head.loss(cond, species, mask),
        }
        h = self._hparams
        total = out["diffusion"] + h["count_weight"] * out["count"]
        total = total + h["species_weight"] * out["composition"]
        if self.cell_head is not None:
            out["cell"] = self.cell_head.loss(cond, batch.cell_params)
            total = total + h["cell_weight"] * out["cell"]
        out["loss"] = total
        return out

    def _prototype_loss(
        self, batch: TaskBatch, cond: torch.Tensor, diffusion: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Prior 'prototype': the denoiser's loss (low noise only), the count head's (it picks
        the particle's size when no count is given) and the prototype classifier's."""
        assert self.prototype_head is not None
        cells = batch if self.periodic else batch.parent
        if cells is None:
            raise InvdesignError("prior 'prototype' trains on the particles' parent unit cells, "
                                 "which this batch lacks")
        labels = torch.as_tensor(prototype_labels(cells, self.prototypes), device=cond.device)
        h = self._hparams
        out = {
            "diffusion": diffusion,
            "count": self.count_head.loss(cond, batch.n_atoms),
            "prototype": self.prototype_head.loss(cond, labels),
        }
        out["loss"] = (diffusion + h["count_weight"] * out["count"]
                       + h["prior_weight"] * out["prototype"])
        return out

    def _noise_and_prediction(
        self, batch: TaskBatch, cond: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise `batch` to training steps t [B] with standard normal `noise` [B, M, 3]; returns
        the denoiser's prediction and its target, both [B, M, 3] (zero on padding)."""
        mask, species = batch.mask, batch.species
        if self.periodic:
            sigma = self.sigmas[t].view(-1, 1, 1)
            f_t = periodic.wrap(batch.target + sigma * noise * mask.unsqueeze(-1))
            # the target is the predictable part of the noise under wrapping (= the noise while
            # sigma is small): -sigma x the wrapped-normal score
            eps = periodic.wrapped_noise_target(f_t - batch.target, sigma) * mask.unsqueeze(-1)
            cell = periodic.cell_from_parameters(batch.cell_params)
            return self.denoiser(f_t, t, species, mask, cond, cell), eps
        x0 = remove_mean(batch.target, mask) / self.denoiser.coord_scale
        eps = remove_mean(noise, mask)
        x_t = self.train_scheduler.add_noise(x0, eps, t)
        return self.denoiser(x_t, t, species, mask, cond), eps

    def noise_level(self, timestep: int) -> float:
        """Standard deviation per coordinate of the noise added at training step `timestep`: Å for
        particles (sqrt(1 - abar) x coord_scale), fractional units for unit cells (sigma_t)."""
        return float(self.noise_levels[timestep])

    @torch.no_grad()
    def noise_prediction_error(
        self, batch: TaskBatch, timestep: int, generator: torch.Generator | None = None
    ) -> tuple[float, float]:
        """The denoiser's skill at one noise level: `batch` noised to training step `timestep`,
        returns (mean squared error of the predicted noise, mean squared error of predicting zero)
        per real coordinate. Their ratio is 1 for a denoiser that has learnt nothing, 0 for a
        perfect one. Noise is drawn on the CPU from `generator`."""
        n_steps = self.train_scheduler.config.num_train_timesteps
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
    ) -> list[list[Structure]]:
        """`n` candidates per condition item (see `Generator.sample`).

        Args:
            sampler: 'ddpm', 'ddim' or 'dpmsolver' (default: the `sampler` hyper-parameter).
            steps: denoising steps (default: `sampling_steps`).
            generator: all randomness (counts, species order, noise) is drawn from it on the CPU.
        """
        if n < 1:
            raise InvdesignError(f"number of samples must be positive, got {n}")
        sampler = sampler or self._hparams["sampler"]
        steps = int(self._hparams["sampling_steps"] if steps is None else steps)
        schedule.build_sampler(sampler, self.train_scheduler, steps)  # validates the options early
        was_training = self.training
        self.eval()
        condition = condition.to(self.device)
        cond = self.encoder(condition.patterns)  # [B, C]
        if self.prior is None and self.prototype_head is None:
            n_atoms = self._counts(condition, cond, n, generator)  # [B * n]
            species = self._species(condition, cond, n_atoms, n, generator)  # B * n arrays
            cells = self._cells(condition, cond).repeat_interleave(n, 0) if self.periodic else None
            starts = None
        else:  # the prior's crystals: unit cells as they are, particles cut from them
            crystals = self._prior_crystals(condition, cond, n, generator)
            if self.periodic:
                first = [c for items in crystals for c in items]
                species = [c.species for c in first]
                cells = torch.as_tensor(np.stack([c.cell_parameters() for c in first])).to(cond)
                starts = [c.frac_positions for c in first]
            else:
                cuts = self._cuts(condition, cond, crystals, generator)
                species = [c.species for c in cuts]
                starts, cells = [c.positions for c in cuts], None
        cond = cond.repeat_interleave(n, 0)  # [B * n, C]
        coords: list[np.ndarray] = []
        chunk = int(self._hparams["sample_batch"])
        for start in range(0, len(species), chunk):
            sl = slice(start, start + chunk)
            coords += self._denoise(
                cond[sl],
                species[sl],
                None if cells is None else cells[sl],
                sampler,
                steps,
                generator,
                None if starts is None else starts[sl],
            )
        self.train(was_training)
        info = {"generator": self.name, "sampler": sampler, "steps": steps,
                "prior": self._hparams["prior"]}
        out: list[list[Structure]] = []
        for k, (z, xyz) in enumerate(zip(species, coords, strict=True)):
            if k % n == 0:
                out.append([])
            if not self.periodic:
                if starts is None:  # cuts from the prior are in the data's frame already
                    xyz = xyz - self._origin(z, xyz)
            elif self._hparams["cell_origin"] == "atom":
                xyz = np.mod(xyz - nearest_to_origin(xyz), 1.0)
            # atoms in ascending |r| of the task coordinates, the order CHILI sorts targets in
            order = np.argsort(np.linalg.norm(xyz, axis=1), kind="stable")
            z, xyz = z[order], xyz[order]
            if self.periodic:
                assert cells is not None
                params = cells[k].double().cpu().numpy()
                out[-1].append(Structure.from_cell_parameters(z, xyz, params, **info))
            else:
                out[-1].append(Structure(z, xyz, None, "particle", dict(info)))
        return out

    def _prior_crystals(
        self, condition: Condition, cond: torch.Tensor, n: int, generator: torch.Generator | None
    ) -> list[list[Structure]]:
        """B lists of n unit cells from the prior: the fitted prototypes, or the MLP's samples
        (for particles without the count, which picks the cut, not the cell)."""
        if self.prototype_head is not None:
            return self._prototype_crystals(condition, cond, n)
        assert self.prior is not None
        if not self.periodic:
            condition = Condition(condition.patterns, condition.composition,
                                  condition.cell_params, None)
        return self.prior.sample(condition, n, generator)

    def _cuts(
        self,
        condition: Condition,
        cond: torch.Tensor,
        crystals: list[list[Structure]],
        generator: torch.Generator | None,
    ) -> list[Structure]:
        """One particle per crystal (B lists of n), cut to the given count or, without one: with
        the prototype prior, the sphere whose simulated pattern fits the input best
        (`prototypes.best_cut`; the count head's choice where no sphere fits in max_atoms); with
        the cell prior, the sphere the count head finds most likely (candidate 0) or draws
        (candidates 1..n-1)."""
        top = float(self._hparams["max_radius"] or CUT_LARGEST)
        radii = np.arange(1.5, max(top, 1.5) + 1e-9, CUT_STEP)
        if condition.n_atoms is not None:
            counts = condition.n_atoms.long().cpu().tolist()
            return [cut_to_count(c, int(k), radii)
                    for items, k in zip(crystals, counts, strict=True) for c in items]
        log_p = self.count_head(cond).log_softmax(-1).double().cpu().numpy()
        if self.prototype_head is None:
            return [likely_cut(c, log_p[i], radii, k > 0, generator)
                    for i, items in enumerate(crystals) for k, c in enumerate(items)]
        name = self.task.patterns[0]
        values = condition.patterns[name].double().cpu().numpy()
        spec, device = pattern_spec(name), str(self.device)
        out = []
        for i, items in enumerate(crystals):
            for c in items:
                cut = best_cut(c, values[i], spec, radii, self.task.max_atoms, device)
                out.append(cut or likely_cut(c, log_p[i], radii, False, generator))
        return out

    def _prototype_crystals(
        self, condition: Condition, cond: torch.Tensor, n: int
    ) -> list[list[Structure]]:
        """B lists of n unit cells: the `prior_top_k` prototypes the classifier finds likeliest
        (unit cells: among those of the given atom count, if any), each with the elements of
        `_element_pairs` and the lattice scale whose cut's simulated
        pattern fits the input best (`prototypes.fit_lattice`); candidate j is the j-th best fit
        (cycling)."""
        assert self.prototype_head is not None
        name = self.task.patterns[0]
        spec = pattern_spec(name)
        values = condition.patterns[name].double().cpu().numpy()
        probs = self.prototype_head(cond).double().cpu().numpy()
        pairs = self._element_pairs(condition)
        counts = (None if condition.n_atoms is None or not self.periodic
                  else condition.n_atoms.long().cpu().tolist())
        top_k, device = int(self._hparams["prior_top_k"]), str(self.device)
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

    def _element_pairs(self, condition: Condition) -> list[tuple[int, int]]:
        """(cation, anion) atomic numbers per condition item for a prototype's sites: the two most
        abundant species of the given composition (`elements.cation_species` tells which is the
        cation; one species fills both), else the training vocabulary's reference pair
        (`reference_elements`). The pattern hardly tells the elements apart: on CHILI-3K's grouped
        test particles the composition head named no test cation right, and a fit with its
        elements picked the wrong prototype more often than one with a fixed mid-Z cation (Zn)."""
        if condition.composition is None:
            return [reference_elements(self._hparams["species_vocab"])] * condition.batch_size
        out = []
        for zs, fr in _composition_arrays(condition.composition):
            top = [int(z) for z in zs[np.argsort(-fr, kind="stable")][:2]]
            cations = elements.cation_species(top)
            anions = [z for z in top if z not in cations]
            out.append((cations[0], anions[0] if anions else top[-1]))
        return out

    def _counts(
        self, condition: Condition, cond: torch.Tensor, n: int, generator: torch.Generator | None
    ) -> torch.Tensor:
        """[B * n] atom counts: given, or drawn from the count head (fitting a composition)."""
        if condition.n_atoms is not None:
            counts = condition.n_atoms.long().cpu()
            if counts.min() < 1 or counts.max() > self.task.max_atoms:
                raise InvdesignError(f"n_atoms must be within 1..{self.task.max_atoms}")
            return counts.repeat_interleave(n)
        allowed = None
        if condition.composition is not None:
            m = self.task.max_atoms
            allowed = torch.as_tensor(
                np.stack([compatible_counts(list(c.values()), m) for c in condition.composition])
            )
            allowed = allowed.repeat_interleave(n, 0)
        return self.count_head.draw(cond.repeat_interleave(n, 0), allowed, generator)

    def _species(
        self,
        condition: Condition,
        cond: torch.Tensor,
        n_atoms: torch.Tensor,
        n: int,
        generator: torch.Generator | None,
    ) -> list[np.ndarray]:
        """Per structure [n_atoms] atomic numbers, random order (counts by largest remainder)."""
        if condition.composition is not None:
            comps = _composition_arrays(condition.composition)
            for zs, fr in comps:
                if (
                    len(zs) == 0
                    or (fr < 0).any()
                    or fr.sum() <= 0
                    or not (1 <= zs.min() and zs.max() <= 118)
                ):
                    bad = dict(zip(zs.tolist(), fr.tolist(), strict=True))
                    raise InvdesignError(
                        f"bad composition {bad}: need atomic numbers 1..118 and "
                        "non-negative fractions with a positive sum"
                    )
        else:
            vocab = np.array(self.composition_head.vocab, dtype=np.int64)
            comps = [(vocab, p.double().numpy()) for p in self.composition_head.fractions(cond)]
        out = []
        for k, count in enumerate(n_atoms.tolist()):
            zs, fr = comps[k // n]
            z = np.repeat(zs, counts_from_fractions(fr, count))
            out.append(z[torch.randperm(count, generator=generator).numpy()])
        return out

    def _cells(self, condition: Condition, cond: torch.Tensor) -> torch.Tensor:
        """[B, 6] cell parameters: given, or predicted by the cell head."""
        if condition.cell_params is not None:
            return condition.cell_params.to(cond.dtype)
        assert self.cell_head is not None
        return self.cell_head(cond)

    def _denoise(
        self,
        cond: torch.Tensor,
        species: list[np.ndarray],
        cells: torch.Tensor | None,
        sampler: str,
        steps: int,
        generator: torch.Generator | None,
        starts: list[np.ndarray] | None = None,
    ) -> list[np.ndarray]:
        """The reverse process for one chunk; per structure [n, 3] fractional or Å coordinates.
        `starts`: the prior's coordinates per structure (fractional, or Å), noised to
        `prior_sigma` and denoised from there (None: the whole reverse process from noise)."""
        device, dtype = cond.device, cond.dtype
        b, m = len(species), max(len(z) for z in species)
        mask = torch.zeros(b, m, dtype=torch.bool)
        z = torch.zeros(b, m, dtype=torch.long)
        for i, zi in enumerate(species):
            mask[i, : len(zi)] = True
            z[i, : len(zi)] = torch.as_tensor(zi)
        mask, z = mask.to(device), z.to(device)
        scheduler = schedule.build_sampler(sampler, self.train_scheduler, steps)
        corrector = {
            "corrector_steps": int(self._hparams["corrector_steps"]),
            "snr": float(self._hparams["corrector_snr"]),
            "mask": mask,
        }
        if self.periodic:
            assert cells is not None
            cell = periodic.cell_from_parameters(cells)
            if starts is None:
                x = torch.rand(b, m, 3, generator=generator).to(device, dtype)
                begin = None
            elif self._prior_begin() < 0:  # prior_sigma 0: the prior's cell as it is
                return [np.mod(np.asarray(f, dtype=np.float64), 1.0) for f in starts]
            else:
                x, begin = self._noised_starts(starts, mask, scheduler, generator)
            x = schedule.run_sampler(
                scheduler,
                lambda f, t: self.denoiser(f, t, z, mask, cond, cell),
                x,
                torus=True,
                generator=generator,
                start_timestep=begin,
                **corrector,
            )
        elif starts is not None:
            return self._refine_particles(starts, z, mask, cond, scheduler, generator, corrector)
        else:
            x = remove_mean(torch.randn(b, m, 3, generator=generator).to(device, dtype), mask)
            x = schedule.run_sampler(
                scheduler,
                lambda y, t: self.denoiser(y, t, z, mask, cond),
                x,
                project=lambda y: remove_mean(y, mask),
                generator=generator,
                max_norm=(None if self._hparams["max_radius"] is None
                          else float(self._hparams["max_radius"]) / self.denoiser.coord_scale),
                **corrector,
            )
            x = x * self.denoiser.coord_scale
        return [x[i, : len(zi)].double().cpu().numpy() for i, zi in enumerate(species)]

    def _noised_starts(
        self,
        starts: list[np.ndarray],
        mask: torch.Tensor,
        scheduler,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, int]:
        """The prior's fractional coordinates as a padded [B, M, 3] state noised to the first
        sampling step at or below `prior_sigma`, and the training step the reverse process starts
        at."""
        begin = self._prior_begin()
        first = schedule.first_timestep(scheduler, begin)
        x0 = _padded(starts, mask.shape)
        noise = torch.randn(x0.shape, generator=generator) * mask.cpu().unsqueeze(-1)
        x = periodic.wrap(x0 + float(self.sigmas[first]) * noise)
        return x.to(mask.device), begin

    def _refine_particles(
        self,
        starts: list[np.ndarray],
        z: torch.Tensor,
        mask: torch.Tensor,
        cond: torch.Tensor,
        scheduler,
        generator: torch.Generator | None,
        corrector: dict[str, Any],
    ) -> list[np.ndarray]:
        """Particles cut from the prior's crystals (Å), each noised to `prior_sigma` about its
        centroid and denoised from there, the centroid put back (so the frame stays the cut's);
        returned as they are with prior_sigma 0 or below the schedule's smallest noise."""
        begin = self._prior_begin()
        if begin < 0:
            return [np.asarray(s, dtype=np.float64) for s in starts]
        scale = self.denoiser.coord_scale
        cpu_mask = mask.cpu()
        x0 = _padded(starts, mask.shape)
        centred = remove_mean(x0, cpu_mask)
        noise = remove_mean(torch.randn(x0.shape, generator=generator), cpu_mask)
        first = torch.tensor([schedule.first_timestep(scheduler, begin)])
        x = self.train_scheduler.add_noise(centred / scale, noise, first)
        x = schedule.run_sampler(
            scheduler,
            lambda y, t: self.denoiser(y, t, z, mask, cond),
            x.to(cond.device, cond.dtype),
            project=lambda y: remove_mean(y, mask),
            generator=generator,
            start_timestep=begin,
            **corrector,
        )
        x = x.double().cpu() * scale + (x0 - centred).double()  # the centroid back
        return [x[i, : len(s)].numpy() for i, s in enumerate(starts)]

    def _prior_begin(self) -> int:
        """The last training step whose noise is at most `prior_sigma` (-1: none is)."""
        return int((self.noise_levels <= self._hparams["prior_sigma"]).sum()) - 1

    def _origin(self, species: np.ndarray, xyz: np.ndarray) -> np.ndarray:
        """[3] Å, the point of a sampled particle [n, 3] that becomes the origin (`centre`)."""
        centroid = xyz.mean(0)
        metals = np.array([elements.is_metal(int(z)) for z in species])
        if self._hparams["centre"] == "centroid" or not metals.any():
            return centroid
        candidates = xyz[metals]
        return candidates[np.argmin(np.linalg.norm(candidates - centroid, axis=1))]
