"""The diffusion generator through the `Generator` contract, on tiny configs and random batches."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.core.tasks import Condition, TaskBatch, TaskSpec
from invdesign.generators.base import Generator, build_generator, generator_class
from invdesign.generators.diffusion import DiffusionGenerator
from invdesign.testing import TINY_DIFFUSION, random_batch, random_condition

TINY = TINY_DIFFUSION
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
    return random_condition(task, b)


def _batch(task: TaskSpec) -> TaskBatch:
    return random_batch(task, MAX_ATOMS)


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
