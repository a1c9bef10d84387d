"""The diffusion generator's prototype prior: a training prototype fitted to the pattern by forward
simulation, unit cells taken from it and particles cut from it (real patterns of real cuts)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from invdesign.core.conditions import minmax
from invdesign.core.errors import InvdesignError
from invdesign.core.patterns import pattern_spec
from invdesign.core.tasks import Condition, TaskBatch, TaskSpec
from invdesign.crystals import prototypes as P
from invdesign.crystals.cuts import CUT_LARGEST, CUT_STEP, cut_to_count, sphere_cuts
from invdesign.generators.base import build_generator
from invdesign.generators.diffusion import DiffusionGenerator
from invdesign.generators.diffusion.priors import NoPrior, reference_elements
from invdesign.physics.calculator import simulate
from invdesign.testing import CellRows, caesium_chloride_cell, rock_salt_cell

TINY = {"cond_dim": 16, "species_dim": 8, "time_dim": 16, "scalar_dim": 8, "vector_dim": 4,
        "n_layers": 1, "radial_hidden": 16, "n_radial": 8, "num_train_timesteps": 50,
        "sampling_steps": 4, "k_neighbors": 4, "species_vocab": [8, 12], "sampler": "ddpm"}
A_TRUE = 4.3


@pytest.fixture(scope="module")
def library() -> list[dict]:
    cells = [rock_salt_cell(4.0), rock_salt_cell(4.6), caesium_chloride_cell(3.0),
             caesium_chloride_cell(3.4)]
    return [p.to_dict() for p in P.prototype_library(CellRows(cells))]


@pytest.fixture(scope="module")
def salt_pattern() -> torch.Tensor:
    """[1, L] the model-ready xPDF of a 7 Å rock-salt MgO particle, a = 4.3 Å."""
    particle = sphere_cuts(rock_salt_cell(A_TRUE), np.array([7.0]))[0]
    return torch.as_tensor(minmax(simulate(particle, pattern_spec("xPDF"))[1]),
                           dtype=torch.float32)[None]


def _gen(task: str, library: list[dict], **options) -> DiffusionGenerator:
    torch.manual_seed(0)
    max_atoms = 200 if task.endswith("pos_abs") else 8
    hp = {**TINY, "prior": "prototype", "prototypes": library, "prior_top_k": 2,
          "prior_sigma": 0.0, "prior_train_sigma": 1.0, **options}
    return build_generator("diffusion", TaskSpec.parse(task, max_atoms), **hp)


def test_particle_samples_are_cuts_of_the_fitted_prototype(library, salt_pattern) -> None:
    gen = _gen("xPDF->pos_abs", library)
    cond = Condition({"xPDF": salt_pattern}, composition=[{12: 0.5, 8: 0.5}],
                     n_atoms=torch.tensor([43]))
    [[s]] = gen.sample(cond, 1, generator=torch.Generator().manual_seed(0))
    truth = cut_to_count(rock_salt_cell(A_TRUE), 43, np.arange(1.5, CUT_LARGEST, CUT_STEP))
    assert s.info["prior"] == "prototype" and s.n_atoms == truth.n_atoms
    assert sorted(s.species.tolist()) == sorted(truth.species.tolist())
    # the fitted lattice is within 0.6 % of the truth: radii agree to 0.6 % of ~7 Å
    np.testing.assert_allclose(np.sort(np.linalg.norm(s.positions, axis=1)),
                               np.sort(np.linalg.norm(truth.positions, axis=1)), atol=0.05)
    assert np.linalg.norm(s.positions, axis=1).min() < 1e-6  # a metal at the origin, as CHILI
    refined = _gen("xPDF->pos_abs", library, prior_sigma=0.3).sample(
        cond, 1, generator=torch.Generator().manual_seed(0))[0][0]
    gap = np.linalg.norm(refined.positions[:, None] - s.positions[None], axis=-1).min(1)
    assert refined.n_atoms == s.n_atoms and 0 < gap.max() < 3.0  # refined, not redrawn


def test_without_a_count_the_particle_is_the_best_fitting_sphere(library) -> None:
    spec = pattern_spec("xPDF")
    truth = sphere_cuts(rock_salt_cell(A_TRUE), np.array([6.0]))[0]  # 135 atoms
    target = minmax(simulate(truth, spec)[1])
    gen = _gen("xPDF->pos_abs", library)
    cond = Condition({"xPDF": torch.as_tensor(target, dtype=torch.float32)[None]},
                     composition=[{12: 0.5, 8: 0.5}])
    [[s]] = gen.sample(cond, 1, generator=torch.Generator().manual_seed(0))
    assert s.n_atoms == truth.n_atoms  # the count head is untrained: the fit chose the size
    radii = np.arange(1.5, 9.0, CUT_STEP)
    big = sphere_cuts(rock_salt_cell(A_TRUE), np.array([7.0]))[0]  # 219 atoms
    target = minmax(simulate(big, spec)[1])
    short = rock_salt_cell(A_TRUE * 0.994)  # 0.6 % off: as cut, a 51-atom sphere fits best
    assert P.best_cut(short, target, spec, radii, 300).n_atoms == big.n_atoms
    assert P.best_cut(short, target, spec, radii, 1) is None


def test_unit_cells_are_the_fitted_prototype_of_the_given_count(library, salt_pattern) -> None:
    gen = _gen("xPDF->unit_cell_pos_frac", library)
    pattern = salt_pattern.repeat(2, 1)
    cond = Condition({"xPDF": pattern}, composition=[{12: 0.5, 8: 0.5}] * 2,
                     n_atoms=torch.tensor([8, 2]))
    [[salt], [cscl]] = gen.sample(cond, 1, generator=torch.Generator().manual_seed(0))
    assert salt.n_atoms == 8 and cscl.n_atoms == 2  # the count picks the prototypes tried
    assert salt.cell_parameters()[0] == pytest.approx(A_TRUE, rel=0.006)
    assert P.prototype_labels(CellRows([salt, cscl]), P.prototype_library(
        CellRows([rock_salt_cell(), caesium_chloride_cell()]))).tolist() == [0, 1]
    # without a count the candidates are the fits, best first, cycling; without a composition
    # the sites hold the vocabulary's reference pair
    gen = _gen("xPDF->unit_cell_pos_frac", library, species_vocab=[8, 12, 30, 56])
    free = Condition({"xPDF": salt_pattern})
    first, second, third = gen.sample(free, 3, generator=torch.Generator().manual_seed(0))[0]
    assert (first.n_atoms, second.n_atoms, third.n_atoms) == (8, 2, 8)
    assert set(first.species.tolist()) == {30, 8}


def test_reference_elements_are_a_mid_cation_and_the_anion() -> None:
    assert reference_elements([8, 12, 30, 56]) == (30, 8)
    assert reference_elements([8, 16, 12, 30]) == (12, 8)  # O is more electronegative than S
    assert reference_elements([8, 14]) == (14, 8)  # SiO2: Si is the cation
    assert reference_elements([26]) == (26, 8)
    # the training cells' commonest anion, where known, wins over the most electronegative
    assert reference_elements([8, 9, 12, 30, 56], anion=8) == (30, 8)
    assert reference_elements([8, 9, 12, 30, 56]) == (30, 9)


def test_training_data_give_the_prior_its_reference_anion(library, salt_pattern) -> None:
    cells = CellRows([rock_salt_cell(4.0, 12, 8), rock_salt_cell(4.4, 30, 8),
                      rock_salt_cell(4.2, 56, 9)])
    cells.task = TaskSpec.parse("xPDF->unit_cell_pos_frac", 8)
    cells.species_vocab = lambda: [8, 9, 12, 30, 56]
    read = DiffusionGenerator.hparams_from_data(cells)
    assert read["reference_anion"] == 8 and read["species_vocab"] == [8, 9, 12, 30, 56]
    gen = _gen("xPDF->unit_cell_pos_frac", library, **read)
    assert gen.hparams()["reference_anion"] == 8
    [[s]] = gen.sample(Condition({"xPDF": salt_pattern}), 1,
                       generator=torch.Generator().manual_seed(0))
    assert set(s.species.tolist()) == {30, 8}  # not F, the vocabulary's most electronegative
    # other priors keep their configs free of it
    assert build_generator("diffusion", TaskSpec.parse("xPDF->unit_cell_pos_frac", 8),
                           **{**TINY, **read}).hparams()["reference_anion"] is None


def test_prototype_loss_trains_the_classifier_on_the_parent_cells(library) -> None:
    gen = _gen("xPDF->pos_abs", library, prior_train_sigma=0.5)
    gen.train()
    n = torch.tensor([3, 5])
    mask = torch.arange(200) < n[:, None]
    batch = TaskBatch(Condition({"xPDF": torch.rand(2, 6000)}), torch.rand(2, 200, 3) * 4 * mask[
        ..., None], mask, torch.where(mask, 12, 0), n, torch.tensor([[4.3] * 3 + [90.0] * 3] * 2))
    with pytest.raises(InvdesignError, match="parent unit cells"):
        gen.loss(batch)
    parent = CellRows([rock_salt_cell(4.4), caesium_chloride_cell(3.1)])
    batch.parent = TaskBatch(batch.condition, parent.target, parent.mask, parent.species,
                             parent.mask.sum(1), parent.cell_params.float())
    losses = gen.loss(batch)
    assert set(losses) == {"diffusion", "count", "prototype", "loss"}
    torch.testing.assert_close(losses["loss"], losses["diffusion"] + 0.1 * losses["count"]
                               + losses["prototype"])
    expected = torch.nn.functional.cross_entropy(
        gen.prior.prototype_head(gen.encoder(batch.condition.patterns)), torch.tensor([0, 1]))
    torch.testing.assert_close(losses["prototype"], expected)
    losses["loss"].backward()
    assert gen.prior.prototype_head.net[0].weight.grad.abs().sum() > 0
    assert gen.prior.train_steps < 50  # the denoiser learns the low noise levels only


def test_library_is_read_from_the_training_cells_and_kept_in_the_hparams(library) -> None:
    class Data:  # particle task data whose parent cells are rock salt and CsCl
        task = TaskSpec.parse("xPDF->pos_abs", 8)
        target = torch.ones(2, 8, 3)
        mask = torch.ones(2, 8, dtype=torch.bool)
        parent = CellRows([rock_salt_cell(4.0), caesium_chloride_cell(3.0)])
        parent.task = TaskSpec.parse("xPDF->unit_cell_pos_frac", 20)

        def species_vocab(self):
            return [8, 12]

    hp = DiffusionGenerator.hparams_from_data(Data())
    assert [p["n_cells"] for p in hp["prototypes"]] == [1, 1]
    gen = _gen("xPDF->pos_abs", library)
    again = build_generator("diffusion", gen.task, **gen.hparams())
    counts = [p.n_atoms for p in gen.prior.prototypes]
    assert [p.n_atoms for p in again.prior.prototypes] == counts == [8, 2]
    plain = build_generator("diffusion", gen.task, **{**TINY, "prototypes": library})
    assert plain.hparams()["prototypes"] is None and isinstance(plain.prior, NoPrior)


def test_bad_prototype_options_raise(library) -> None:
    with pytest.raises(InvdesignError, match="needs the training cells' prototypes"):
        _gen("xPDF->pos_abs", [])
    with pytest.raises(InvdesignError, match="prior_top_k must be positive"):
        _gen("xPDF->pos_abs", library, prior_top_k=0)
