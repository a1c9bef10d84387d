"""Noise schedules and the sampling loop, built from `diffusers` schedulers.

Training uses a `DDPMScheduler` (its `alphas_cumprod` define the forward process). Sampling uses any
of `SAMPLERS` built from the same configuration, with the number of steps a sampling option.

Two geometries share the loop:
- Euclidean (particles): the variance-preserving process of the scheduler, x_t = sqrt(abar) x0 +
  sqrt(1-abar) eps.
- Torus (fractional coordinates): the variance-exploding form y_t = x_t / sqrt(abar) = x0 + sigma_t
  eps with sigma_t = sqrt((1 - abar) / abar), wrapped into [0, 1). Every scheduler update written in
  y is x0-affine with unit coefficient on y, so it commutes with integer shifts: the loop converts y
  -> x, calls the scheduler's `step`, converts back and wraps after each step; stored multistep
  history (DPM-Solver++'s data predictions, which live in y coordinates) is shifted with the state
  so it stays in the same image. The 've_geometric' schedule gives the torus geometric sigmas
  (DiffCSP-like) as `trained_betas`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

from invdesign.core.errors import ConfigError

if TYPE_CHECKING:
    from invdesign.generators.diffusion import guidance
    from invdesign.generators.diffusion.resampling import Resampler

SAMPLERS: dict[str, type] = {
    "ddpm": DDPMScheduler,
    "ddim": DDIMScheduler,
    "dpmsolver": DPMSolverMultistepScheduler,
}
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "ve_geometric")

# Overrides: every scheduler a plain epsilon-prediction sampler, no clipping or thresholding.
_SAMPLER_OPTIONS: dict[str, dict[str, Any]] = {
    "ddpm": {"clip_sample": False, "variance_type": "fixed_small"},
    "ddim": {"clip_sample": False, "set_alpha_to_one": True, "timestep_spacing": "leading"},
    "dpmsolver": {
        "algorithm_type": "dpmsolver++",
        "solver_order": 2,
        "final_sigmas_type": "zero",
        "use_karras_sigmas": False,
        "timestep_spacing": "linspace",
    },
}


def ve_geometric_betas(num_train_timesteps: int, sigma_min: float, sigma_max: float) -> list[float]:
    """Betas whose VE sigmas sqrt((1-abar)/abar) grow geometrically from sigma_min to sigma_max."""
    sigma = sigma_min * (sigma_max / sigma_min) ** np.linspace(0, 1, num_train_timesteps)
    abar = 1.0 / (1.0 + sigma**2)
    prev = np.concatenate([[1.0], abar[:-1]])
    return (1.0 - abar / prev).tolist()


def build_train_scheduler(
    num_train_timesteps: int = 1000,
    beta_schedule: str = "linear",
    sigma_min: float = 0.005,
    sigma_max: float = 1.0,
) -> DDPMScheduler:
    """The training (forward-process) scheduler; `sigma_min`/`sigma_max` for 've_geometric'."""
    if beta_schedule not in BETA_SCHEDULES:
        raise ConfigError(
            f"unknown beta_schedule {beta_schedule!r}; choose from {', '.join(BETA_SCHEDULES)}"
        )
    if num_train_timesteps < 2:
        raise ConfigError(f"num_train_timesteps must be >= 2, got {num_train_timesteps}")
    options: dict[str, Any] = {
        "num_train_timesteps": num_train_timesteps,
        "prediction_type": "epsilon",
        **_SAMPLER_OPTIONS["ddpm"],
    }
    if beta_schedule == "ve_geometric":
        if not 0 < sigma_min < sigma_max:
            raise ConfigError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        options["trained_betas"] = ve_geometric_betas(num_train_timesteps, sigma_min, sigma_max)
    else:
        options["beta_schedule"] = beta_schedule
    return DDPMScheduler(**options)


def build_sampler(name: str, train_scheduler: DDPMScheduler, steps: int):
    """A fresh diffusers scheduler `name` (see `SAMPLERS`) on the training betas, `steps` steps."""
    if name not in SAMPLERS:
        raise ConfigError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}")
    n_train = train_scheduler.config.num_train_timesteps
    if not 1 <= steps <= n_train:
        raise ConfigError(f"sampling steps must be in 1..{n_train}, got {steps}")
    if name == "dpmsolver" and steps == n_train:  # linspace spacing then repeats a timestep,
        raise ConfigError(  # a zero step that DPM-Solver++ divides by (NaN samples)
            f"dpmsolver takes at most {n_train - 1} steps (got {steps}); use ddpm for all {n_train}"
        )
    config = dict(train_scheduler.config)
    keep = {
        "num_train_timesteps",
        "beta_start",
        "beta_end",
        "beta_schedule",
        "trained_betas",
        "prediction_type",
    }
    options = {k: v for k, v in config.items() if k in keep}
    scheduler = SAMPLERS[name](**options, **_SAMPLER_OPTIONS[name])
    scheduler.set_timesteps(steps)
    return scheduler


def ve_sigmas(scheduler: DDPMScheduler) -> torch.Tensor:
    """[T] sigma_t = sqrt((1 - abar_t) / abar_t) of the training scheduler."""
    abar = scheduler.alphas_cumprod.double()
    return ((1 - abar) / abar).sqrt().float()


ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: (state [B, M, 3], noise prediction [B, M, 3], cumulative alpha []) -> step of the clean estimate
Guide = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def run_sampler(
    scheduler,
    model_fn: ModelFn,
    x: torch.Tensor,
    *,
    torus: bool = False,
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
    max_norm: float | None = None,
    corrector_steps: int = 0,
    snr: float = 0.1,
    mask: torch.Tensor | None = None,
    start_timestep: int | None = None,
    guide: Guide | None = None,
    guide_start: float = 0.0,
    resampler: Resampler | None = None,
) -> torch.Tensor:
    """The reverse process with a diffusers scheduler, optionally predictor-corrector, optionally
    guided by a forward model.

    Args:
        scheduler: from `build_sampler` (timesteps already set).
        model_fn: (state [B, M, 3], t [B] long) -> predicted noise [B, M, 3]. For the torus the
            state passed is the wrapped fractional coordinate y_t in [0, 1).
        x: [B, M, 3] initial state: N(0, 1) (Euclidean) or uniform on [0, 1) (torus).
        torus: run in the wrapped variance-exploding coordinates (see the module docstring).
        project: Euclidean only; applied after each step (e.g. remove the centre of mass).
        generator: randomness of stochastic samplers (DDPM).
        max_norm: Euclidean only; the clean-state estimate x0 implied by each noise prediction is
            shrunk onto the ball |x0_i| <= max_norm per atom (rotation-equivariant) and the noise
            re-derived from it. At high noise x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar)
            amplifies prediction errors up to 1 / sqrt(abar) (~160x for the linear schedule), which
            the deterministic samplers (DDIM, DPM-Solver++) carry into the sample as atoms flung
            far from the particle; DDPM's injected noise hides it at 20x the steps.
        corrector_steps: Langevin corrector steps before each scheduler step (predictor-corrector
            sampling, Song et al. 2021, as DiffCSP samples fractional coordinates; 0: none). Each
            costs one more network call per step; see `langevin_step`.
        snr: the corrector's signal-to-noise ratio (its step size).
        mask: [B, M] real atoms, for the corrector's per-structure norms (None: all atoms).
        start_timestep: begin the reverse process part-way (SDEdit, Meng et al. 2022; truncated
            diffusion, Zheng et al. 2023): only the scheduler's timesteps <= this training step
            are run, and `x` must already be noised to the first of them (`first_timestep`).
            None: the whole schedule.
        guide: (state, noise prediction, cumulative alpha) -> a step [B, M, 3] of the clean
            estimate towards the data (`guidance.Guide`); the next state's clean-signal part
            (sqrt(abar) x0 on the Euclidean process, x0 on the torus) moves by it. None: unguided.
        guide_start: the fraction of the (run) steps after which `guide` is applied, 0..1.
        resampler: with `guide`: population resampling by the guided steps' misfits
            (`resampling.Resampler`), after the step at every `resampler.every`-th guided step but
            the last. None: none.

    Returns:
        [B, M, 3] the final state x_0 (wrapped into [0, 1) on the torus).
    """
    if corrector_steps < 0:
        raise ConfigError(f"corrector_steps must be >= 0, got {corrector_steps}")
    abar = scheduler.alphas_cumprod.to(x.device)
    betas = scheduler.betas.to(x.device)
    begin = 0 if start_timestep is None else first_index(scheduler, start_timestep)
    if begin and hasattr(scheduler, "set_begin_index"):  # schedulers that count their steps
        scheduler.set_begin_index(begin)
    timesteps = scheduler.timesteps[begin:]
    guide_from = math.ceil(guide_start * len(timesteps) - 1e-9)
    for i, t in enumerate(timesteps):
        t_batch = torch.full((x.shape[0],), int(t), dtype=torch.long, device=x.device)
        # corrector: the score of the state is -eps / (noise std of the state's own coordinates)
        std = ((1 - abar[int(t)]) / abar[int(t)]).sqrt() if torus else (1 - abar[int(t)]).sqrt()
        alpha = 1.0 if torus else 1 - betas[int(t)]
        for _ in range(corrector_steps):
            x = langevin_step(x, -model_fn(x, t_batch) / std, snr, mask, generator, alpha)
            x = _wrap_state(x, scheduler) if torus else (x if project is None else project(x))
        eps = model_fn(x, t_batch)
        if not torus and max_norm is not None:
            eps = clip_x0(x, eps, abar[int(t)], max_norm)
        a_now = abar[int(t)]
        a_next = abar[int(timesteps[i + 1])] if i + 1 < len(timesteps) else abar.new_tensor(1.0)
        shift = guide(x, eps, a_now) if guide is not None and i >= guide_from else None
        if not torus:
            x = scheduler.step(eps, t, x, generator=generator).prev_sample
            if shift is not None:  # the clean-signal part of the next state moves by the shift
                x = x + a_next.sqrt() * shift
            if project is not None:
                x = project(x)
            if shift is not None and resampler is not None and i + 1 < len(timesteps):
                x = _resample(x, scheduler, guide, resampler)
            continue
        x_vp = scheduler.step(eps, t, x * a_now.sqrt(), generator=generator).prev_sample
        x = x_vp / a_next.sqrt() + (0.0 if shift is None else shift)
        x = _wrap_state(x, scheduler)
        if shift is not None and resampler is not None and i + 1 < len(timesteps):
            x = _resample(x, scheduler, guide, resampler)
    return x


def _resample(x: torch.Tensor, scheduler, guide: guidance.Guide,
              resampler: Resampler) -> torch.Tensor:
    """The state x [B, M, 3] after a due population resampling by the guide's last misfits, the
    guide's per-structure state and a multistep scheduler's history carried along."""
    if not resampler.due():
        return x
    parents = resampler.ancestors(guide.history[-1], guide.valid())
    if parents == list(range(len(parents))):
        return x
    guide.adopt(parents)
    history = getattr(scheduler, "model_outputs", None)
    if history is not None:
        for j, past in enumerate(history):
            if past is not None:
                history[j] = resampler.apply(past, parents)
    return resampler.apply(x, parents)


def first_index(scheduler, start_timestep: int) -> int:
    """Index of the first of the scheduler's timesteps at or below training step
    `start_timestep` (the scheduler's timesteps descend)."""
    below = (scheduler.timesteps <= start_timestep).nonzero()
    if len(below) == 0:
        raise ConfigError(
            f"no sampling step at or below training step {start_timestep}: use more steps"
        )
    return int(below[0])


def first_timestep(scheduler, start_timestep: int) -> int:
    """The training step the reverse process started at `start_timestep` begins from."""
    return int(scheduler.timesteps[first_index(scheduler, start_timestep)])


def _wrap_state(y: torch.Tensor, scheduler) -> torch.Tensor:
    """Torus state y wrapped into [0, 1), with a multistep scheduler's stored history (DPM-Solver++:
    data predictions in y) shifted by the same integers so it stays in the state's image."""
    shift = torch.floor(y)
    history = getattr(scheduler, "model_outputs", None)
    if history is not None:
        for j, past in enumerate(history):
            if past is not None:
                history[j] = past - shift
    return y - shift


def langevin_step(
    x: torch.Tensor,
    score: torch.Tensor,
    snr: float,
    mask: torch.Tensor | None,
    generator: torch.Generator | None,
    alpha: float | torch.Tensor = 1.0,
) -> torch.Tensor:
    """One Langevin step x + e score + sqrt(2 e) z, z ~ N(0, 1) on the real atoms, with the step e
    = 2 alpha (snr |z| / |score|)^2 set per structure (Song et al. 2021, Algorithms 4-5; alpha =
    1 - beta_t for the variance-preserving process, 1 for the variance-exploding one).

    Args:
        x, score: [B, M, 3]; mask: [B, M] real atoms or None (all).
    """
    m = (torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if mask is None
         else mask).unsqueeze(-1).to(x.dtype)
    z = torch.randn(x.shape, generator=generator).to(x) * m
    z_norm = z.flatten(1).norm(dim=1)  # [B]
    g_norm = (score * m).flatten(1).norm(dim=1).clamp_min(1e-12)
    step = (2 * alpha * (snr * z_norm / g_norm) ** 2).view(-1, 1, 1)  # [B, 1, 1]
    return x + step * score * m + (2 * step).sqrt() * z


def clip_x0(x: torch.Tensor, eps: torch.Tensor, abar: torch.Tensor,
            max_norm: float) -> torch.Tensor:
    """The noise prediction `eps` [B, M, 3] at state `x` with its implied x0 shrunk onto the ball of
    radius `max_norm` per atom (variance-preserving process, cumulative alpha `abar`)."""
    a, s = abar.sqrt(), (1 - abar).sqrt()
    x0 = (x - s * eps) / a
    norm = x0.norm(dim=-1, keepdim=True)
    x0 = x0 * torch.clamp(max_norm / norm.clamp_min(1e-12), max=1.0)
    return (x - a * x0) / s
