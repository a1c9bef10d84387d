"""The VAE-UNet generator on a tiny configuration (16^3 grid): loss, gradients, sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.spacegroup import crystal

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.core.tasks import Condition, TaskBatch, TaskSpec
from invdesign.generators.base import build_generator, generator_class
from invdesign.generators.vae import VAEGenerator
from invdesign.generators.vae.generator import FILL_DISTANCE, _fill
from invdesign.generators.vae.segmentation import Segmentation

TINY = {"grid": 16, "latent": 8, "emb": 16, "pooled": 32, "vae_channels": [4, 8],
        "unet_channels": [4, 8], "species_vocab": [8, 12, 22]}


def _task() -> TaskSpec:
    return TaskSpec.parse("xrd->unit_cell_pos_frac")


def _batch(task: TaskSpec) -> TaskBatch:
    cells = [
        Structure.from_ase(crystal(["Mg", "O"], [(0, 0, 0), (0.5, 0.5, 0.5)], spacegroup=225,
                                   cellpar=[4.213] * 3 + [90] * 3)),
        Structure.from_ase(crystal(["Ti", "O"], [(0, 0, 0), (0.3, 0.3, 0)], spacegroup=136,
                                   cellpar=[4.594, 4.594, 2.958, 90, 90, 90])),
    ]
    m = task.max_atoms
    target, mask = torch.zeros(2, m, 3), torch.zeros(2, m, dtype=torch.bool)
    species = torch.zeros(2, m, dtype=torch.long)
    for i, cell in enumerate(cells):
        n = cell.n_atoms
        target[i, :n] = torch.tensor(np.mod(cell.frac_positions, 1.0))
        mask[i, :n] = True
        species[i, :n] = torch.tensor(cell.species)
    params = torch.tensor(np.stack([c.cell_parameters() for c in cells]), dtype=torch.float32)
    condition = Condition({"xrd": torch.rand(2, 580)})
    return TaskBatch(condition, target, mask, species, mask.sum(1), params)


def test_registered_as_vae() -> None:
    assert generator_class("vae") is VAEGenerator and VAEGenerator.name == "vae"


def test_forward_backward_reaches_every_part() -> None:
    task = _task()
    model = build_generator("vae", task, **TINY)
    losses = model.loss(_batch(task))
    assert {"loss", "recon", "kl", "species", "mask", "cell"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    losses["loss"].backward()
    for part in (model.encoder, model.vae, model.unet, model.cell_head):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None for g in grads)
        assert any(float(g.abs().sum()) > 0 for g in grads)


@pytest.mark.parametrize("unet_on_recon", [True, "prior"])
def test_unet_also_trains_on_decoded_grids(unet_on_recon) -> None:
    task = _task()
    model = build_generator("vae", task, **TINY, unet_on_recon=unet_on_recon)
    seen = []
    model.unet.register_forward_hook(lambda mod, inputs, out: seen.append(inputs[0].shape))
    losses = model.loss(_batch(task))
    assert seen == [(4, 1, 16, 16, 16)]  # the 2 true grids + 2 decoded ones
    losses["loss"].backward()
    assert all(torch.isfinite(v) for v in losses.values())
    with pytest.raises(InvdesignError, match="unet_on_recon"):
        build_generator("vae", task, **TINY, unet_on_recon="posterior")


def test_ground_truth_grids_match_the_cells() -> None:
    task = _task()
    model = build_generator("vae", task, **TINY)
    batch = _batch(task)
    x, classes = model.grids(batch)
    assert x.shape == (2, 1, 16, 16, 16) and classes.shape == (2, 16, 16, 16)
    # class k stands for species_vocab[k - 1]: MgO holds O (1) and Mg (2), TiO2 O (1) and Ti (3)
    assert set(classes[0].unique().tolist()) == {0, 1, 2}
    assert set(classes[1].unique().tolist()) == {0, 1, 3}
    assert float(x.min()) >= 0.0


def test_sample_returns_valid_unit_cells() -> None:
    task = _task()
    model = build_generator("vae", task, **TINY).eval()
    condition = Condition({"xrd": torch.rand(2, 580)})
    out = model.sample(condition, 2, generator=torch.Generator().manual_seed(0))
    assert len(out) == 2 and all(len(items) == 2 for items in out)
    for items in out:
        for s in items:
            assert isinstance(s, Structure) and s.kind == "unit_cell"
            assert 1 <= s.n_atoms <= task.max_atoms
            assert set(s.species.tolist()) <= {8, 12, 22}
            frac = s.frac_positions  # voxel-centred home cell: [-1/2, N - 1/2) voxels
            assert np.all((frac >= -0.5 / 16 - 1e-9) & (frac < 1 - 0.5 / 16 + 1e-9))


def test_sample_honours_composition_cell_and_count() -> None:
    task = _task()
    model = build_generator("vae", task, **TINY).eval()
    params = torch.tensor([[4.2, 4.2, 4.2, 90.0, 90.0, 90.0]])
    condition = Condition({"xrd": torch.rand(1, 580)}, composition=[{12: 0.5, 8: 0.5}],
                          cell_params=params, n_atoms=torch.tensor([4]))
    for s in model.sample(condition, 2, generator=torch.Generator().manual_seed(1))[0]:
        assert s.n_atoms == 4  # a given count is met exactly (CHILI's MAE is at the true count)
        assert set(s.species.tolist()) <= {8, 12}
        counts = [int((s.species == z).sum()) for z in (8, 12)]
        assert abs(counts[0] - counts[1]) <= 1  # largest-remainder split of a 1:1 composition
        np.testing.assert_allclose(s.cell_parameters(), params[0].numpy(), atol=1e-5)


def test_sampling_is_reproducible_with_a_generator() -> None:
    task = _task()
    model = build_generator("vae", task, **TINY).eval()
    condition = Condition({"xrd": torch.rand(1, 580)})
    a = model.sample(condition, 1, generator=torch.Generator().manual_seed(3))[0][0]
    b = model.sample(condition, 1, generator=torch.Generator().manual_seed(3))[0][0]
    np.testing.assert_array_equal(a.species, b.species)
    np.testing.assert_allclose(a.positions, b.positions)


def test_temperature_scales_the_prior_draws() -> None:
    task = _task()
    model = build_generator("vae", task, **TINY).eval()
    condition = Condition({"xrd": torch.rand(2, 580)})
    seed = torch.Generator().manual_seed(5)
    hot = model.decode(condition, 3, generator=seed)["density"]
    model.temperature = 0.0  # every draw is the latent mean: one density per pattern
    cold = model.decode(condition, 3, generator=torch.Generator().manual_seed(5))["density"]
    assert float((hot[0] - hot[1]).abs().max()) > 1e-4
    torch.testing.assert_close(cold[0], cold[2])
    torch.testing.assert_close(cold[3], cold[5])
    assert float((cold[0] - cold[3]).abs().max()) > 1e-4  # the pattern still matters
    with pytest.raises(InvdesignError, match="temperature"):
        build_generator("vae", task, **{**TINY, "temperature": -1.0})


def test_hparams_rebuild_the_same_model() -> None:
    task = _task()
    model = build_generator("vae", task, **TINY)
    again = build_generator("vae", task, **model.hparams())
    assert again.hparams() == model.hparams()
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in again.state_dict().items()} == shapes


def test_particle_tasks_and_bad_grids_are_rejected() -> None:
    with pytest.raises(InvdesignError, match="unit cells"):
        build_generator("vae", TaskSpec.parse("xPDF->pos_abs"), **TINY)
    with pytest.raises(ValueError, match="divisible"):
        build_generator("vae", _task(), **{**TINY, "grid": 12, "vae_channels": [4, 8, 16]})


def test_fill_tops_up_at_the_densest_voxels_away_from_the_atoms() -> None:
    # 10 Å cubic cell on a 10^3 grid (1 Å voxels): one atom found at voxel (0, 0, 0); density peaks
    # at (0, 0, 1) (too close: 1 Å < FILL_DISTANCE), (5, 5, 5) and (2, 0, 0)
    density = np.zeros((10, 10, 10), dtype=np.float32)
    density[0, 0, 1], density[5, 5, 5], density[2, 0, 0] = 3.0, 2.0, 1.0
    logp = np.log(np.full((3, 10, 10, 10), 1 / 3))
    logp[2, 5, 5, 5] = 0.0  # class 2 (species 12) most likely at (5, 5, 5)
    found = Segmentation(np.zeros((1, 3)), np.array([8]), [np.array([0])], (10, 10, 10))
    out = _fill(found, density, logp, np.array([8, 12]), np.eye(3) * 10.0, 3)
    assert out.n_atoms == 3
    np.testing.assert_allclose(out.positions, [[0, 0, 0], [5, 5, 5], [2, 0, 0]])
    assert out.species.tolist() == [8, 12, 8]
    assert FILL_DISTANCE > 1.0


def test_perfect_unet_output_gives_the_cell_in_chili_convention() -> None:
    # the UNet output of a true grid (one-hot log-probabilities) goes through the segmentation to
    # the atoms. CHILI's targets lie in [0, 1) with many atoms at 0, and its MAE does not wrap, so
    # an atom a little below a cell corner must come out just below 0, not just below 1: atoms are
    # placed in the voxel-centred home cell [-1/2, N - 1/2) voxels
    from invdesign.evaluators.metrics.structure import matched_errors
    from invdesign.generators.vae.voxels import voxelise

    model = build_generator("vae", _task(), **TINY)
    base = Structure.from_ase(crystal(["Mg", "O"], [(0, 0, 0), (0.5, 0.5, 0.5)], spacegroup=225,
                                      cellpar=[4.213] * 3 + [90] * 3))
    shift = np.array([-0.3, 0.2, 0.0]) / 16  # voxels
    half = 0.5 / 16
    frac = np.mod(base.frac_positions + shift + half, 1.0) - half  # x = -0.3 voxel, not 15.7
    cell = Structure.from_cell_parameters(base.species, frac, base.cell_parameters())
    grid = voxelise(cell, (16, 16, 16), label_frac=0.8)
    classes = np.searchsorted([0, 8, 12, 22], grid.species)  # [16^3] class per voxel
    logp = np.where(np.arange(4)[:, None, None, None] == classes, 0.0, -30.0)
    mask = np.where(grid.species > 0, 5.0, -5.0)
    out = model._structure(logp, mask, grid.density, cell.cell_parameters(), 20, False, None)
    assert out.n_atoms == 8
    err = matched_errors(out.frac_positions, frac, periodic=False, pred_species=out.species,
                         true_species=cell.species)
    assert err["mae"] < 0.2 / 16 and err["species_accuracy"] == 1.0
    norms = np.linalg.norm(out.frac_positions, axis=1)
    assert np.all(np.diff(norms) >= 0)  # atoms sorted by |r|, as CHILI's targets


def test_model_card_names_where_the_vae_count_comes_from() -> None:
    from invdesign.training.model_card import model_card

    config = {"task": {"name": "xPDF->unit_cell_pos_frac"}, "data": {"root": "d", "batch_size": 16},
              "split": {"kind": "grouped", "seed": 42}, "seed": 42, "optimizer": {"name": "adam"},
              "trainer": {"patience": 5, "monitor": "val/loss", "max_time_minutes": 1.0}}
    metrics = {"test": {"count_accuracy": 0.5, "n_samples": 2}}
    vae = model_card({**config, "generator": {"name": "vae"}}, metrics, "cmd")
    mlp = model_card({**config, "generator": {"name": "mlp"}}, metrics, "cmd")
    assert "| atom-count accuracy (Algorithm S1 segmentation of the decoded grid) | 0.5000 |" in vae
    assert "count head" not in vae
    assert "| atom-count accuracy (count head) | 0.5000 |" in mlp
