"""The diffusion generator through the `Generator` contract, on tiny configs and random batches."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from invdesign.core.errors import InvdesignError
from invdesign.core.patterns import pattern_spec
from invdesign.core.structure import Structure
from invdesign.core.tasks import Condition, TaskBatch, TaskSpec
from invdesign.generators.base import Generator, build_generator, generator_class
from invdesign.generators.diffusion import DiffusionGenerator

TINY = {"cond_dim": 16, "species_dim": 8, "time_dim": 16, "scalar_dim": 8, "vector_dim": 4,
        "n_layers": 1, "radial_hidden": 16, "n_radial": 8, "num_train_timesteps": 50,
        "sampling_steps": 4, "k_neighbors": 4, "species_vocab": [8, 30]}
MAX_ATOMS = 8


@pytest.fixture(scope="module")
def particle_gen() -> Generator:
    torch.manual_seed(0)
    return build_generator("diffusion", TaskSpec.parse("xPDF->pos_abs", MAX_ATOMS), **TINY)


@pytest.fixture(scope="module")
def cell_gen() -> Generator:
    torch.manual_seed(0)
    return build_generator("diffusion", TaskSpec.parse("saxs->unit_cell_pos_frac", MAX_ATOMS),
                           **TINY)


def _condition(task: TaskSpec, b: int) -> Condition:
    name = task.patterns[0]
    return Condition({name: torch.rand(b, pattern_spec(name).n_points)})


def _batch(task: TaskSpec) -> TaskBatch:
    n = torch.tensor([3, 8, 5])
    mask = torch.arange(MAX_ATOMS) < n[:, None]
    scale = 1.0 if task.kind == "unit_cell" else 6.0
    target = torch.rand(3, MAX_ATOMS, 3) * scale * mask.unsqueeze(-1)
    species = torch.where(mask, 30, 0)
    species[:, 0] = 8
    cell = torch.tensor([[4.0, 4.0, 5.0, 90.0, 90.0, 120.0]]).expand(3, 6)
    return TaskBatch(_condition(task, 3), target, mask, species, n, cell)


def test_registered_under_its_name() -> None:
    assert generator_class("diffusion") is DiffusionGenerator


@pytest.mark.parametrize("which", ["particle_gen", "cell_gen"])
def test_loss_forward_backward(which: str, request: pytest.FixtureRequest) -> None:
    gen = request.getfixturevalue(which)
    gen.zero_grad()
    losses = gen.loss(_batch(gen.task))
    assert {"loss", "diffusion", "count", "composition"} <= set(losses)
    assert ("cell" in losses) == (gen.task.kind == "unit_cell")
    assert all(torch.isfinite(v) for v in losses.values())
    losses["loss"].backward()
    tp_grad = gen.denoiser.net.layers[0].radial.parameters().__next__().grad
    assert tp_grad is not None and tp_grad.abs().sum() > 0  # the e3nn network is trained


@pytest.mark.parametrize("which", ["particle_gen", "cell_gen"])
def test_loss_ignores_padding(which: str, request: pytest.FixtureRequest) -> None:
    gen = request.getfixturevalue(which)
    batch = _batch(gen.task)
    junk = TaskBatch(batch.condition, batch.target.clone(), batch.mask, batch.species.clone(),
                     batch.n_atoms, batch.cell_params)
    junk.target[~batch.mask] = 42.0
    junk.species[~batch.mask] = 79
    torch.manual_seed(5)
    a = gen.loss(batch)
    torch.manual_seed(5)
    b = gen.loss(junk)
    for key in a:
        torch.testing.assert_close(a[key], b[key])


def _check_structures(gen: Generator, out: list[list[Structure]], b: int, n: int) -> None:
    assert len(out) == b and all(len(items) == n for items in out)
    for s in (s for items in out for s in items):
        assert 1 <= s.n_atoms <= MAX_ATOMS
        assert np.isfinite(s.positions).all()
        if gen.task.kind == "unit_cell":
            assert s.kind == "unit_cell"
            frac = s.frac_positions
            assert frac.min() > -1e-9 and frac.max() < 1 + 1e-9
        else:
            assert s.kind == "particle" and s.cell is None
            np.testing.assert_allclose(s.positions.mean(0), 0.0, atol=1e-4)
        coords = s.frac_positions if gen.task.kind == "unit_cell" else s.positions
        assert np.all(np.diff(np.linalg.norm(coords, axis=1)) >= -1e-7)  # CHILI's |r| order


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpmsolver"])
@pytest.mark.parametrize("which", ["particle_gen", "cell_gen"])
def test_sample_returns_valid_structures(which: str, sampler: str,
                                         request: pytest.FixtureRequest) -> None:
    gen = request.getfixturevalue(which)
    out = gen.sample(_condition(gen.task, 2), 3, generator=torch.Generator().manual_seed(0),
                     sampler=sampler, steps=3)
    _check_structures(gen, out, 2, 3)
    assert out[0][0].info["sampler"] == sampler


@pytest.mark.parametrize("which", ["particle_gen", "cell_gen"])
def test_sampling_is_reproducible_with_a_seed(which: str, request: pytest.FixtureRequest) -> None:
    gen = request.getfixturevalue(which)
    cond = _condition(gen.task, 2)

    def run(seed: int) -> list[np.ndarray]:
        out = gen.sample(cond, 2, generator=torch.Generator().manual_seed(seed), sampler="ddpm")
        return [s.positions for items in out for s in items]

    first, again, other = run(7), run(7), run(8)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(a.shape != c.shape or not np.allclose(a, c) for a, c in zip(first, other,
                                                                           strict=True))


def test_given_counts_composition_and_cell_are_used(cell_gen: Generator) -> None:
    cond = _condition(cell_gen.task, 2)
    cond.n_atoms = torch.tensor([6, 3])
    cond.composition = [{22: 1 / 3, 8: 2 / 3}, {30: 0.5, 8: 0.5}]
    cond.cell_params = torch.tensor([[3.0, 4.0, 5.0, 90.0, 90.0, 90.0],
                                     [6.0, 6.0, 6.0, 60.0, 60.0, 60.0]])
    out = cell_gen.sample(cond, 2, generator=torch.Generator().manual_seed(0))
    for s in out[0]:
        assert Counter(s.species.tolist()) == {22: 2, 8: 4}
        np.testing.assert_allclose(s.cell_parameters(), [3.0, 4.0, 5.0, 90.0, 90.0, 90.0],
                                   atol=1e-4)
    for s in out[1]:
        assert s.n_atoms == 3 and set(s.species.tolist()) <= {30, 8}


def test_composition_restricts_drawn_counts(particle_gen: Generator) -> None:
    cond = _condition(particle_gen.task, 1)
    cond.composition = [{22: 1 / 3, 8: 2 / 3}]
    out = particle_gen.sample(cond, 6, generator=torch.Generator().manual_seed(1), steps=2)
    for s in out[0]:
        assert s.n_atoms in (3, 6)  # multiples of the formula unit within max_atoms = 8
        assert Counter(s.species.tolist())[8] == 2 * Counter(s.species.tolist())[22]


def test_bad_sampling_options_raise(particle_gen: Generator) -> None:
    cond = _condition(particle_gen.task, 1)
    with pytest.raises(InvdesignError, match="unknown sampler"):
        particle_gen.sample(cond, 1, sampler="euler")
    with pytest.raises(InvdesignError, match="steps must be in"):
        particle_gen.sample(cond, 1, steps=10_000)
    with pytest.raises(InvdesignError, match="bad composition"):
        particle_gen.sample(Condition(cond.patterns, composition=[{0: 1.0}]), 1)
    with pytest.raises(InvdesignError, match="n_atoms"):
        particle_gen.sample(Condition(cond.patterns, n_atoms=torch.tensor([MAX_ATOMS + 1])), 1)


def test_hparams_rebuild_the_same_model(cell_gen: Generator) -> None:
    clone = build_generator("diffusion", cell_gen.task, **cell_gen.hparams())
    clone.load_state_dict(cell_gen.state_dict(), strict=True)
    assert clone.hparams() == cell_gen.hparams()
    cond = _condition(cell_gen.task, 1)
    a = cell_gen.sample(cond, 1, generator=torch.Generator().manual_seed(0))[0][0]
    b = clone.sample(cond, 1, generator=torch.Generator().manual_seed(0))[0][0]
    np.testing.assert_allclose(a.positions, b.positions)


def test_atom_cell_origin_shifts_the_sample_onto_an_atom() -> None:
    task = TaskSpec.parse("saxs->unit_cell_pos_frac", MAX_ATOMS)
    torch.manual_seed(0)
    free = build_generator("diffusion", task, **TINY)
    snapped = build_generator("diffusion", task, **{**TINY, "cell_origin": "atom"})
    snapped.load_state_dict(free.state_dict())
    cond = _condition(task, 2)
    a = free.sample(cond, 2, generator=torch.Generator().manual_seed(3))
    b = snapped.sample(cond, 2, generator=torch.Generator().manual_seed(3))
    for sa, sb in zip(sum(a, []), sum(b, []), strict=True):
        fa, fb = sa.frac_positions, sb.frac_positions
        assert np.linalg.norm(fb, axis=1).min() < 1e-12  # one atom on the origin ...
        assert fb.min() >= 0.0 and fb.max() < 1.0
        # ... by one translation of the whole sample (same draws): minus the atom nearest the origin
        offset = fa - np.round(fa)
        moved = fa - fa[np.argmin((offset**2).sum(1))]  # [n, 3]
        gap = np.mod(moved[:, None, :] - fb[None, :, :] + 0.5, 1.0) - 0.5  # [n, n, 3]
        pairs = np.abs(gap).max(-1) < 1e-9
        assert pairs.any(1).all() and pairs.any(0).all()
        assert sorted(sa.species.tolist()) == sorted(sb.species.tolist())
    with pytest.raises(InvdesignError, match="cell_origin must be"):
        build_generator("diffusion", task, **{**TINY, "cell_origin": "centre"})


@pytest.mark.parametrize("task_name", ["xPDF->pos_abs", "saxs->unit_cell_pos_frac"])
def test_corrector_steps_change_the_samples_and_keep_them_valid(task_name: str) -> None:
    """Same weights and draws: a Langevin corrector step per sampler step gives valid, different
    samples; without it (the default, so older checkpoints) the sampler is the plain one."""
    task = TaskSpec.parse(task_name, MAX_ATOMS)
    torch.manual_seed(0)
    plain = build_generator("diffusion", task, **TINY)
    assert plain.hparams()["corrector_steps"] == 0
    corrected = build_generator("diffusion", task, **{**TINY, "corrector_steps": 1,
                                                      "corrector_snr": 0.3})
    corrected.load_state_dict(plain.state_dict())
    cond = _condition(task, 2)
    a = plain.sample(cond, 2, generator=torch.Generator().manual_seed(3), sampler="ddpm")
    b = corrected.sample(cond, 2, generator=torch.Generator().manual_seed(3), sampler="ddpm")
    _check_structures(corrected, b, 2, 2)
    assert any(not np.allclose(sa.positions, sb.positions)
               for sa, sb in zip(sum(a, []), sum(b, []), strict=True) if sa.n_atoms == sb.n_atoms)
    for bad in ({"corrector_steps": -1}, {"corrector_snr": 0.0}):
        with pytest.raises(InvdesignError, match="corrector_steps >= 0 and corrector_snr > 0"):
            build_generator("diffusion", task, **{**TINY, **bad})


def test_metal_centre_puts_the_central_metal_at_the_origin() -> None:
    gen = build_generator("diffusion", TaskSpec.parse("xrd->pos_abs", MAX_ATOMS),
                          **{**TINY, "centre": "metal"})
    cond = _condition(gen.task, 1)
    cond.composition = [{30: 0.5, 8: 0.5}]
    for s in gen.sample(cond, 3, generator=torch.Generator().manual_seed(0), steps=2)[0]:
        zn = s.positions[s.species == 30]
        distance = np.linalg.norm(zn, axis=1)
        assert distance.min() < 1e-9  # one Zn sits on the origin ...
        centroid = s.positions.mean(0)
        nearest = np.argmin(np.linalg.norm(zn - centroid, axis=1))
        assert distance[nearest] < 1e-9  # ... the one nearest the centroid
    with pytest.raises(InvdesignError, match="centre must be"):
        build_generator("diffusion", gen.task, **{**TINY, "centre": "middle"})


@pytest.mark.parametrize("which", ["particle_gen", "cell_gen"])
def test_evaluation_loss_is_a_function_of_the_weights(which: str,
                                                       request: pytest.FixtureRequest) -> None:
    """In eval mode the same batch draws the same timesteps and noise (a comparable validation
    loss); in training mode the draws change from call to call."""
    gen = request.getfixturevalue(which)
    batch = _batch(gen.task)
    gen.eval()
    first, second = gen.loss(batch)["diffusion"], gen.loss(batch)["diffusion"]
    gen.train()
    third, fourth = gen.loss(batch)["diffusion"], gen.loss(batch)["diffusion"]
    assert torch.equal(first, second)
    assert not torch.equal(third, fourth)


def test_particle_samples_stay_within_max_radius() -> None:
    """An untrained denoiser with a tiny `max_radius`: DDIM ends on the last clipped estimate, so
    no atom ends farther than it from the centroid (up to the re-centring of that estimate, a few
    per cent); DPM-Solver++ (2nd order) extrapolates from the last two clipped estimates, at most
    1.5 times as far."""
    torch.manual_seed(0)
    gen = build_generator("diffusion", TaskSpec.parse("xPDF->pos_abs", MAX_ATOMS),
                          **{**TINY, "max_radius": 1.0})
    cond = Condition(_condition(gen.task, 2).patterns, None, None, torch.tensor([8, 6]))
    for sampler, bound in (("ddim", 1.1), ("dpmsolver", 1.6)):
        out = gen.sample(cond, 2, generator=torch.Generator().manual_seed(0), sampler=sampler)
        for s in (s for items in out for s in items):
            r = np.linalg.norm(s.positions - s.positions.mean(0), axis=1)
            assert r.max() <= bound
    unclipped = build_generator("diffusion", TaskSpec.parse("xPDF->pos_abs", MAX_ATOMS), **TINY)
    unclipped.load_state_dict(gen.state_dict())
    out = unclipped.sample(cond, 2, generator=torch.Generator().manual_seed(0), sampler="ddim")
    assert max(np.linalg.norm(s.positions - s.positions.mean(0), axis=1).max()
               for items in out for s in items) > 1.5  # the limit is what kept them in


def test_max_radius_is_read_from_particle_data() -> None:
    class Data:
        task = TaskSpec.parse("xPDF->pos_abs", MAX_ATOMS)
        target = torch.zeros(2, MAX_ATOMS, 3)
        mask = torch.zeros(2, MAX_ATOMS, dtype=torch.bool)

        def species_vocab(self):
            return [8]

    data = Data()
    data.mask[0, :2] = data.mask[1, :3] = True
    data.target[0, 1] = torch.tensor([4.0, 0.0, 0.0])  # centroid (2, 0, 0): largest distance 2
    data.target[1, :3] = torch.tensor([[1.0, 1, 1], [1, 1, 1], [1, 1, 1]])
    hp = DiffusionGenerator.hparams_from_data(data)
    assert hp["max_radius"] == pytest.approx(2.0 * 1.25)


@pytest.mark.parametrize("which", ["particle_gen", "cell_gen"])
def test_noise_prediction_error_against_predicting_zero(which: str,
                                                        request: pytest.FixtureRequest) -> None:
    """At a small noise level the target is (for cells, up to wrapping) the standard normal noise
    itself, so predicting zero scores about 1 per coordinate (particles: centre-of-mass-free noise,
    (n - 1) / n); the same generator seed gives the same figures and the model keeps its mode."""
    gen = request.getfixturevalue(which)
    gen.train()
    batch = _batch(gen.task)
    err, zero = gen.noise_prediction_error(batch, 0, torch.Generator().manual_seed(0))
    assert gen.training
    n = batch.n_atoms.double()
    expected = float((n - 1).sum() / n.sum()) if which == "particle_gen" else 1.0
    assert zero == pytest.approx(expected, rel=0.35)  # 48 noisy coordinates
    assert err > 0 and np.isfinite(err)
    again = gen.noise_prediction_error(batch, 0, torch.Generator().manual_seed(0))
    assert again == (err, zero)
    assert gen.noise_level(0) < gen.noise_level(gen.train_scheduler.config.num_train_timesteps - 1)
    with pytest.raises(InvdesignError, match="timestep"):
        gen.noise_prediction_error(batch, 10_000)


PRIOR = {**TINY, "prior": "mlp", "prior_hparams": {"hidden": 16, "aux_hidden": 16},
         "sampler": "ddpm", "sampling_steps": 50, "prior_sigma": 0.01, "prior_train_sigma": 0.05}


@pytest.fixture(scope="module")
def prior_gen() -> Generator:
    torch.manual_seed(0)
    return build_generator("diffusion", TaskSpec.parse("saxs->unit_cell_pos_frac", MAX_ATOMS),
                           **PRIOR)


def test_prior_sample_starts_from_the_prior_estimate(prior_gen: Generator) -> None:
    """Count, species and cell come from the MLP prior; the coordinates stay within a few
    prior_sigma of its estimate (an untrained denoiser moves them by about the noise it removes),
    where the whole reverse process from uniform noise lands anywhere in the cell."""
    cond = _condition(prior_gen.task, 3)
    cond.cell_params = torch.tensor([[4.0, 4.0, 5.0, 90.0, 90.0, 120.0]]).expand(3, 6)
    out = prior_gen.sample(cond, 1, generator=torch.Generator().manual_seed(0))
    first = prior_gen.prior.mlp.sample(cond, 1, generator=torch.Generator().manual_seed(0))
    for [s], [p] in zip(out, first, strict=True):
        assert s.info["prior"] == "mlp"
        assert sorted(s.species.tolist()) == sorted(p.species.tolist())
        np.testing.assert_allclose(s.cell_parameters(), p.cell_parameters(), atol=1e-4)
        gap = np.mod(s.frac_positions[:, None] - p.frac_positions[None] + 0.5, 1.0) - 0.5
        assert np.abs(gap).max(-1).min(1).max() < 0.08  # every atom next to a prior atom
    free = build_generator("diffusion", prior_gen.task, **{**PRIOR, "prior": "none"})
    free.load_state_dict(prior_gen.state_dict(), strict=False)
    same = Condition(cond.patterns, None, cond.cell_params,
                     torch.tensor([p.n_atoms for [p] in first]))
    far = free.sample(same, 1, generator=torch.Generator().manual_seed(0))
    gaps = [np.mod(s.frac_positions[:, None] - p.frac_positions[None] + 0.5, 1.0) - 0.5
            for [s], [p] in zip(far, first, strict=True)]
    assert max(float(np.abs(g).max(-1).min(1).max()) for g in gaps) > 0.08


def test_prior_loss_trains_the_prior_and_the_denoiser(prior_gen: Generator) -> None:
    prior_gen.zero_grad()
    prior_gen.train()
    losses = prior_gen.loss(_batch(prior_gen.task))
    assert set(losses) == {"diffusion", "prior", "prior_coord_mae", "loss"}
    torch.testing.assert_close(losses["loss"], losses["diffusion"] + losses["prior"])
    losses["loss"].backward()
    assert prior_gen.prior.mlp.coords[0].weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in prior_gen.denoiser.parameters())
    clone = build_generator("diffusion", prior_gen.task, **prior_gen.hparams())
    clone.load_state_dict(prior_gen.state_dict(), strict=True)


def test_prior_denoiser_trains_only_at_low_noise(prior_gen: Generator) -> None:
    """The noise in the training targets of a prior model never exceeds prior_train_sigma's
    step: the noise-prediction MSE of an all-zero predictor is the same as a plain model's at
    those steps, and the loss is drawn from those steps only."""
    gen = prior_gen
    seen: list[int] = []
    original = gen._noise_and_prediction

    def spy(batch, cond, t, noise):
        seen.extend(t.tolist())
        return original(batch, cond, t, noise)

    gen._noise_and_prediction = spy  # type: ignore[method-assign]
    try:
        gen.train()
        for _ in range(20):
            gen.loss(_batch(gen.task))
    finally:
        del gen._noise_and_prediction
    limit = int((gen.space.noise_levels <= PRIOR["prior_train_sigma"]).sum())
    assert 0 < limit < TINY["num_train_timesteps"]
    assert max(seen) < limit and len(set(seen)) > 1


def test_bad_prior_options_raise() -> None:
    cell = TaskSpec.parse("saxs->unit_cell_pos_frac", MAX_ATOMS)
    with pytest.raises(InvdesignError, match="prior must be one of"):
        build_generator("diffusion", cell, **{**PRIOR, "prior": "vae"})
    with pytest.raises(InvdesignError, match="prior 'mlp' is for unit-cell tasks"):
        build_generator("diffusion", TaskSpec.parse("xPDF->pos_abs", MAX_ATOMS), **PRIOR)
    with pytest.raises(InvdesignError, match="prior_sigma <= prior_train_sigma"):
        build_generator("diffusion", cell, **{**PRIOR, "prior_sigma": 0.1})


CELL_PRIOR = {**TINY, "prior": "cell", "prior_hparams": {"hidden": 16, "aux_hidden": 16},
              "prior_max_atoms": MAX_ATOMS, "sampler": "ddpm", "sampling_steps": 50,
              "species_vocab": [8, 12], "prior_sigma": 0.0, "prior_train_sigma": 1.0}


def test_cut_to_count_is_the_cutters_sphere_nearest_the_count() -> None:
    from invdesign.crystals.cuts import cut_to_count
    from invdesign.physics.cutter import cut_particles
    from invdesign.testing import rock_salt_cell

    cell = rock_salt_cell()
    radii = np.arange(1.5, 8.0, 0.25)
    spheres = cut_particles(cell, [4.0, 6.0], [12])
    for sphere in spheres:
        got = cut_to_count(cell, sphere.n_atoms + 1, radii)
        assert got.n_atoms == sphere.n_atoms  # the nearest count the cutter can give
        np.testing.assert_allclose(np.sort(np.linalg.norm(got.positions, axis=1)),
                                   np.sort(np.linalg.norm(sphere.positions, axis=1)), atol=1e-5)
        assert np.linalg.norm(got.positions, axis=1).min() < 1e-6  # a metal at the origin
    collapsed = Structure.from_cell_parameters(np.array([12, 8]), np.array([[0, 0, 0],
                                               [0.5, 0.5, 0.5]]), np.array([0.2, 0.2, 0.2,
                                                                            90, 90, 90]))
    stand_in = cut_to_count(collapsed, 9, radii)  # no supercell of ~10^8 atoms is built
    assert stand_in.n_atoms == 9 and np.linalg.norm(stand_in.positions, axis=1).min() == 0


def test_likely_cut_takes_the_count_heads_favourite_sphere() -> None:
    from invdesign.crystals.cuts import likely_cut, sphere_cuts
    from invdesign.testing import rock_salt_cell

    cell, radii = rock_salt_cell(), np.arange(1.5, 8.0, 0.25)
    cuts = sphere_cuts(cell, radii)
    counts = [c.n_atoms for c in cuts]
    assert counts == sorted(set(counts)) and len(counts) > 3
    favourite = counts[2]
    log_p = np.full(200, -30.0)
    log_p[favourite - 1] = 0.0  # the head is sure of a count the cutter can give
    log_p[favourite] = -1.0  # and likes a count it cannot give next best
    assert likely_cut(cell, log_p, radii, draw=False).n_atoms == favourite
    drawn = {likely_cut(cell, log_p, radii, True, torch.Generator().manual_seed(k)).n_atoms
             for k in range(5)}
    assert drawn == {favourite}
    log_p[counts[0] - 1] = 0.0  # two favourites: draws reach both, never a third
    drawn = {likely_cut(cell, log_p, radii, True, torch.Generator().manual_seed(k)).n_atoms
             for k in range(40)}
    assert drawn == {counts[0], favourite}
    small = likely_cut(cell, log_p[: counts[1]], radii, draw=False)  # max_atoms below favourite
    assert small.n_atoms == counts[0]


def _cell_prior_gen(monkeypatch: pytest.MonkeyPatch, **options) -> DiffusionGenerator:
    """A cell-prior generator whose prior always predicts rock salt (the cut is then real)."""
    from invdesign.testing import rock_salt_cell

    torch.manual_seed(0)
    gen = build_generator("diffusion", TaskSpec.parse("xPDF->pos_abs", 200),
                          **{**CELL_PRIOR, **options})

    def rock_salt(condition, n, generator=None):
        return [[rock_salt_cell() for _ in range(n)] for _ in range(condition.batch_size)]

    monkeypatch.setattr(gen.prior.mlp, "sample", rock_salt)
    return gen


def test_cell_prior_samples_are_cuts_of_the_prior_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    """prior_sigma 0: the sample is the cut sphere nearest the count, in the cut's frame; with
    prior_sigma > 0 the denoiser moves its atoms by about that noise and keeps the frame."""
    from invdesign.crystals.cuts import CUT_LARGEST, CUT_STEP, cut_to_count
    from invdesign.testing import rock_salt_cell

    cond = _condition(TaskSpec.parse("xPDF->pos_abs", 200), 2)
    cond.n_atoms = torch.tensor([19, 43])
    gen = _cell_prior_gen(monkeypatch)
    out = gen.sample(cond, 1, generator=torch.Generator().manual_seed(0))
    for [s], n in zip(out, cond.n_atoms.tolist(), strict=True):
        cut = cut_to_count(rock_salt_cell(), n, np.arange(1.5, CUT_LARGEST + 1e-9, CUT_STEP))
        assert s.info["prior"] == "cell" and s.n_atoms == cut.n_atoms
        np.testing.assert_allclose(np.sort(np.linalg.norm(s.positions, axis=1)),
                                   np.sort(np.linalg.norm(cut.positions, axis=1)), atol=1e-6)
    # a unit-cell-only option leaves particle cuts alone (no wrapping into [0, 1))
    same = _cell_prior_gen(monkeypatch, cell_origin="atom").sample(
        cond, 1, generator=torch.Generator().manual_seed(0))
    for [s], [c] in zip(same, out, strict=True):
        np.testing.assert_allclose(s.positions, c.positions)
    noisy = _cell_prior_gen(monkeypatch, prior_sigma=0.3)
    moved = noisy.sample(cond, 1, generator=torch.Generator().manual_seed(0))
    for [s], [c] in zip(moved, out, strict=True):
        assert s.n_atoms == c.n_atoms
        gap = np.linalg.norm(s.positions[:, None] - c.positions[None], axis=-1).min(1)
        assert 0 < gap.max() < 3.0  # refined, not redrawn
        assert np.linalg.norm(s.positions.mean(0) - c.positions.mean(0)) < 0.3


def test_cell_prior_loss_trains_the_prior_on_the_parent_cells() -> None:
    gen = build_generator("diffusion", TaskSpec.parse("xPDF->pos_abs", MAX_ATOMS), **CELL_PRIOR)
    gen.train()
    parent = _batch(TaskSpec.parse("xPDF->unit_cell_pos_frac", MAX_ATOMS))
    plain = _batch(TaskSpec.parse("xPDF->pos_abs", MAX_ATOMS))
    with pytest.raises(InvdesignError, match="parent unit cells"):
        gen.loss(plain)
    plain.parent = parent
    losses = gen.loss(plain)
    assert set(losses) == {"diffusion", "prior", "prior_coord_mae", "count", "loss"}
    torch.testing.assert_close(
        losses["loss"], losses["diffusion"] + losses["prior"] + 0.1 * losses["count"])
    losses["loss"].backward()
    assert gen.prior.mlp.coords[0].weight.grad.abs().sum() > 0
    assert gen.prior.mlp.task.target == "unit_cell_pos_frac"
    with pytest.raises(InvdesignError, match="prior 'cell' is for particle tasks"):
        build_generator("diffusion", TaskSpec.parse("xPDF->unit_cell_pos_frac", MAX_ATOMS),
                        **CELL_PRIOR)
