"""The diffusion generator's MLP prior (unit cells) and cell prior (particles): starts, losses,
cuts and bad options, on tiny configs and random batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.core.tasks import Condition, TaskBatch, TaskSpec
from invdesign.generators.base import Generator, build_generator
from invdesign.generators.diffusion import DiffusionGenerator
from invdesign.testing import TINY_DIFFUSION, random_batch, random_condition

TINY = TINY_DIFFUSION
MAX_ATOMS = 8


def _condition(task: TaskSpec, b: int) -> Condition:
    return random_condition(task, b)


def _batch(task: TaskSpec) -> TaskBatch:
    return random_batch(task, MAX_ATOMS)


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
