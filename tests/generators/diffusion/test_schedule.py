"""Diffusion schedules, the diffusers sampling loop, torus utilities and graphs (small inputs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.geometry import cellpar_to_cell
from e3nn import o3

from invdesign.core.errors import ConfigError
from invdesign.generators.diffusion import periodic, schedule
from invdesign.generators.diffusion.denoisers import remove_mean
from invdesign.generators.diffusion.graph import full_graph, knn_graph


# ---------------------------------------------------------------------------- torus utilities
def test_wrap_and_wrapped_difference_exact() -> None:
    torch.testing.assert_close(periodic.wrap(torch.tensor([-0.25, 1.5, 3.0])),
                               torch.tensor([0.75, 0.5, 0.0]))
    torch.testing.assert_close(periodic.wrapped_difference(torch.tensor([0.97, -0.9, 2.2])),
                               torch.tensor([-0.03, 0.1, 0.2]), atol=1e-6, rtol=0)


def test_wrapped_noise_target_is_the_noise_at_small_sigma_and_fades_when_wrapping_hides_it(
) -> None:
    torch.manual_seed(0)
    f0, eps = torch.rand(500, 3), torch.randn(500, 3)
    small = torch.tensor(0.02)
    target = periodic.wrapped_noise_target(periodic.wrap(f0 + small * eps) - f0, small)
    torch.testing.assert_close(target, eps, atol=1e-4, rtol=0)
    shifted = periodic.wrapped_noise_target(periodic.wrap(f0 + small * eps) - f0 + 3.0, small)
    torch.testing.assert_close(shifted, target, atol=1e-4, rtol=0)  # lattice translations
    big = torch.tensor(1.0)  # the wrapped normal is ~uniform: nothing left to predict
    assert periodic.wrapped_noise_target(periodic.wrap(f0 + big * eps) - f0, big).abs().max() < 0.01
    mid = torch.tensor(0.3)  # per axis the best guess of eps given f_t: E[eps^2] > E[target^2]
    target = periodic.wrapped_noise_target(periodic.wrap(f0 + mid * eps) - f0, mid)
    assert 0.05 < float((target**2).mean()) < 0.9


def test_edge_vectors_use_the_nearest_image() -> None:
    cell = torch.diag(torch.tensor([4.0, 5.0, 6.0])).expand(2, 3, 3)
    frac = torch.tensor([[0.05, 0.5, 0.5], [0.95, 0.5, 0.9]])
    edges = torch.tensor([[1], [0]])  # source 1 -> target 0
    vec, dfrac = periodic.edge_vectors(frac, cell, edges)
    torch.testing.assert_close(dfrac, torch.tensor([[-0.1, 0.0, 0.4]]), atol=1e-6, rtol=0)
    torch.testing.assert_close(vec, torch.tensor([[-0.4, 0.0, 2.4]]), atol=1e-5, rtol=0)
    shifted, _ = periodic.edge_vectors(frac + torch.tensor([[2.0, -1.0, 0.0], [0.0, 3.0, -4.0]]),
                                       cell, edges)
    torch.testing.assert_close(shifted, vec, atol=1e-5, rtol=0)


def test_cell_from_parameters_matches_ase_and_invariants_ignore_rotation() -> None:
    params = torch.tensor([[4.0, 5.0, 6.0, 80.0, 95.0, 105.0]], dtype=torch.float64)
    cell = periodic.cell_from_parameters(params)
    np.testing.assert_allclose(cell[0].numpy(), cellpar_to_cell(params[0].numpy()))
    inv = periodic.cell_invariants(cell)
    np.testing.assert_allclose(inv[0, :3].exp().numpy(), [4.0, 5.0, 6.0])
    np.testing.assert_allclose(inv[0, 3:6].numpy(), np.cos(np.radians([80.0, 95.0, 105.0])))
    rot = o3.rand_matrix(dtype=torch.float64)
    torch.testing.assert_close(periodic.cell_invariants(cell @ rot.T), inv)


def test_fourier_features_are_periodic() -> None:
    f = torch.rand(4, 3, dtype=torch.float64)
    torch.testing.assert_close(periodic.fourier_features(f + 3.0, 3),
                               periodic.fourier_features(f, 3))
    assert periodic.fourier_features(f, 3).shape == (4, 18)


# ---------------------------------------------------------------------------- graphs
def test_knn_graph_on_a_line_ignores_padding() -> None:
    pos = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0], [3.0, 0, 0], [7.0, 0, 0], [1.1, 0, 0]]])
    mask = torch.tensor([[True, True, True, True, False]])  # the padded atom sits next to atom 1
    edges = knn_graph(pos, mask, k=1)
    assert sorted(zip(edges[0].tolist(), edges[1].tolist(), strict=True)) == [
        (0, 1), (1, 0), (1, 2), (2, 3)]  # (source, target): each atom hears its nearest real atom


def test_full_graph_counts_pairs_within_structures() -> None:
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    edges = full_graph(mask)
    assert edges.shape == (2, 3 * 2 + 2 * 1)
    pairs = set(zip(edges[0].tolist(), edges[1].tolist(), strict=True))
    assert (3, 4) in pairs and (4, 3) in pairs and not any(a == b for a, b in pairs)
    assert all((a < 3) == (b < 3) for a, b in pairs)  # never across structures


# ---------------------------------------------------------------------------- noise
def test_com_free_noise_has_zero_mean_over_real_atoms_and_ignores_padding() -> None:
    noise = torch.randn(3, 6, 3)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1] * 6, [1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    out = remove_mean(noise, mask)
    torch.testing.assert_close(out.sum(1), torch.zeros(3, 3), atol=1e-6, rtol=0)
    assert torch.all(out[~mask] == 0)
    noisy_padding = noise.clone()
    noisy_padding[~mask] = 1e3
    torch.testing.assert_close(remove_mean(noisy_padding, mask), out)
    # real atoms keep their differences
    torch.testing.assert_close(out[0, 1] - out[0, 0], noise[0, 1] - noise[0, 0])


# ---------------------------------------------------------------------------- schedules
def test_ve_geometric_schedule_reaches_its_sigmas() -> None:
    train = schedule.build_train_scheduler(200, "ve_geometric", 0.01, 0.8)
    sigmas = schedule.ve_sigmas(train)
    assert sigmas[0].item() == pytest.approx(0.01, rel=1e-3)
    assert sigmas[-1].item() == pytest.approx(0.8, rel=1e-3)
    ratios = sigmas[1:] / sigmas[:-1]
    assert torch.allclose(ratios, ratios.mean(), rtol=1e-3)


def test_bad_scheduler_options_raise() -> None:
    train = schedule.build_train_scheduler(100)
    with pytest.raises(ConfigError, match="unknown sampler 'euler'"):
        schedule.build_sampler("euler", train, 10)
    with pytest.raises(ConfigError, match="steps must be in 1..100"):
        schedule.build_sampler("ddim", train, 500)
    with pytest.raises(ConfigError, match="dpmsolver takes at most 99 steps"):
        schedule.build_sampler("dpmsolver", train, 100)  # would repeat a timestep: NaN samples
    assert len(set(schedule.build_sampler("dpmsolver", train, 99).timesteps.tolist())) == 99
    with pytest.raises(ConfigError, match="unknown beta_schedule"):
        schedule.build_train_scheduler(100, "cubic")


@pytest.mark.parametrize("beta_schedule", ["linear", "squaredcos_cap_v2", "ve_geometric"])
@pytest.mark.parametrize("sampler", list(schedule.SAMPLERS))
def test_samplers_with_an_exact_denoiser_recover_the_data(sampler: str, beta_schedule: str) -> None:
    """With the true noise as the model output every sampler must land on the data point, in both
    geometries; on the torus the data sit next to the cell faces so the state wraps many times."""
    train = schedule.build_train_scheduler(400, beta_schedule)
    abar = train.alphas_cumprod
    sigma = schedule.ve_sigmas(train)
    x0 = torch.randn(2, 4, 3)

    def euclid(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = abar[t].view(-1, 1, 1)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()

    out = schedule.run_sampler(schedule.build_sampler(sampler, train, 12), euclid,
                               torch.randn(2, 4, 3), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=0)

    f0 = torch.tensor([0.01, 0.99, 0.5]).expand(2, 4, 3).clone()
    f0[:, :, 2] = torch.rand(2, 4)

    def torus(f: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return periodic.wrapped_difference(f - f0) / sigma[t].view(-1, 1, 1)

    out = schedule.run_sampler(schedule.build_sampler(sampler, train, 12), torus,
                               torch.rand(2, 4, 3), torus=True,
                               generator=torch.Generator().manual_seed(0))
    assert out.min() >= 0 and out.max() < 1
    torch.testing.assert_close(periodic.wrapped_difference(out - f0), torch.zeros_like(f0),
                               atol=1e-4, rtol=0)


@pytest.mark.parametrize("sampler", ["ddpm", "dpmsolver"])
def test_predictor_corrector_with_an_exact_denoiser_recovers_the_data(sampler: str) -> None:
    """With two Langevin corrector steps per step, DDPM and DPM-Solver++ still land on the data
    in both geometries (real atoms of padded structures in the Euclidean case)."""
    train = schedule.build_train_scheduler(400, "linear")
    abar = train.alphas_cumprod
    x0 = torch.randn(2, 4, 3)
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])

    def euclid(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = abar[t].view(-1, 1, 1)
        return (x - a.sqrt() * x0) / (1 - a).sqrt() * mask.unsqueeze(-1)

    start = torch.randn(2, 4, 3)
    start[1, 2:] = 0.0
    out = schedule.run_sampler(schedule.build_sampler(sampler, train, 12), euclid, start,
                               generator=torch.Generator().manual_seed(0), corrector_steps=2,
                               snr=0.2, mask=mask)
    torch.testing.assert_close(out[mask], x0[mask], atol=1e-3, rtol=0)

    ve = schedule.build_train_scheduler(400, "ve_geometric")
    sigma = schedule.ve_sigmas(ve)
    f0 = torch.tensor([0.01, 0.99, 0.5]).expand(2, 4, 3).clone()

    def torus(f: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return periodic.wrapped_difference(f - f0) / sigma[t].view(-1, 1, 1)

    out = schedule.run_sampler(schedule.build_sampler(sampler, ve, 12), torus,
                               torch.rand(2, 4, 3), torus=True, corrector_steps=2, snr=0.2,
                               generator=torch.Generator().manual_seed(0))
    assert out.min() >= 0 and out.max() < 1
    torch.testing.assert_close(periodic.wrapped_difference(out - f0), torch.zeros_like(f0),
                               atol=1e-3, rtol=0)
    with pytest.raises(ConfigError, match="corrector_steps must be >= 0"):
        schedule.run_sampler(schedule.build_sampler(sampler, ve, 12), torus, torch.rand(1, 4, 3),
                             torus=True, corrector_steps=-1)


@pytest.mark.parametrize("sampler", list(schedule.SAMPLERS))
def test_reverse_process_started_part_way_runs_only_the_low_noise_steps(sampler: str) -> None:
    """With `start_timestep` the loop runs the sampler's steps at or below it, from a state noised
    to the first of them, lands on the data with an exact denoiser, and schedulers that count
    their steps (DPM-Solver++) stay aligned with the timesteps they are given."""
    ve = schedule.build_train_scheduler(400, "ve_geometric")
    sigma = schedule.ve_sigmas(ve)
    f0 = torch.rand(2, 4, 3)
    seen: list[int] = []

    def torus(f: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        seen.append(int(t[0]))
        return periodic.wrapped_difference(f - f0) / sigma[t].view(-1, 1, 1)

    scheduler = schedule.build_sampler(sampler, ve, 40)
    first = schedule.first_timestep(scheduler, 150)
    assert first <= 150 and (scheduler.timesteps > first).sum() > 0
    start = periodic.wrap(f0 + sigma[first] * torch.randn(2, 4, 3))
    out = schedule.run_sampler(scheduler, torus, start, torus=True, start_timestep=150,
                               generator=torch.Generator().manual_seed(0))
    assert seen == [int(t) for t in scheduler.timesteps if t <= 150]
    if hasattr(scheduler, "step_index"):
        assert scheduler.step_index == len(scheduler.timesteps)
    torch.testing.assert_close(periodic.wrapped_difference(out - f0), torch.zeros_like(f0),
                               atol=1e-4, rtol=0)


def test_a_start_below_every_sampling_step_is_refused() -> None:
    ve = schedule.build_train_scheduler(400, "ve_geometric")
    scheduler = schedule.build_sampler("dpmsolver", ve, 2)  # linspace steps end above 0
    last = int(scheduler.timesteps[-1])
    assert last > 0
    with pytest.raises(ConfigError, match="no sampling step at or below"):
        schedule.first_timestep(scheduler, last - 1)


def test_langevin_steps_sample_a_gaussian_from_its_score() -> None:
    """With the exact score of N(mu, s^2), repeated corrector steps reach that distribution (up to
    the known bias of unadjusted Langevin; the step is set per structure from its norms, steady
    for structures of many atoms) and leave padding atoms where they are."""
    mu, s = 1.5, 0.4
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 41, 3, generator=gen) - 1.0  # far from the target
    mask = torch.ones(200, 41, dtype=torch.bool)
    mask[:, -1] = False
    pad = x[:, -1].clone()
    for _ in range(300):
        x = schedule.langevin_step(x, -(x - mu) / s**2, 0.3, mask, gen)
    real = x[:, :-1]
    assert abs(real.mean().item() - mu) < 0.02
    # unadjusted Langevin with step e = 2 r^2 s^2 (the snr rule at equilibrium) has the stationary
    # variance s^2 / (1 - e / 2 s^2) = s^2 / (1 - r^2)
    assert real.std().item() == pytest.approx(s / (1 - 0.3**2) ** 0.5, rel=0.02)
    torch.testing.assert_close(x[:, -1], pad)


@pytest.mark.parametrize("sampler", list(schedule.SAMPLERS))
def test_wrapping_each_step_equals_the_unwrapped_process(sampler: str) -> None:
    """An imperfect but periodic model: wrapping the state (and DPM-Solver's history) after every
    step must give the unwrapped variance-preserving run, modulo 1."""
    train = schedule.build_train_scheduler(300, "ve_geometric", 0.01, 1.0)
    abar = train.alphas_cumprod.double()
    sigma = schedule.ve_sigmas(train).double()
    f0 = torch.rand(2, 5, 3, dtype=torch.float64)

    def model(f: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return 0.7 * periodic.wrapped_difference(periodic.wrap(f) - f0) / sigma[t].view(-1, 1, 1)

    start = torch.rand(2, 5, 3, dtype=torch.float64)
    wrapped = schedule.run_sampler(schedule.build_sampler(sampler, train, 15), model, start,
                                   torus=True, generator=torch.Generator().manual_seed(3))
    reference = schedule.build_sampler(sampler, train, 15)
    x = start * abar[int(reference.timesteps[0])].sqrt()
    rng = torch.Generator().manual_seed(3)
    for t in reference.timesteps:
        t_batch = torch.full((2,), int(t))
        eps = model(x / abar[int(t)].sqrt(), t_batch)
        x = reference.step(eps, t, x, generator=rng).prev_sample
    assert x.abs().max() > 1.0  # the unwrapped run left the cell: wrapping really happened
    torch.testing.assert_close(periodic.wrapped_difference(wrapped - x), torch.zeros_like(x),
                               atol=1e-4, rtol=0)
