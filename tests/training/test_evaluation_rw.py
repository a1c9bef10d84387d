"""Rw of generated structures' forward-simulated patterns against the stored input patterns
(`generators.evaluation.pattern_rw`), on a tiny CHILI-3K folder built here with real patterns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.geometry import cellpar_to_cell

from invdesign.core.structure import Structure
from invdesign.core.tasks import TaskSpec
from invdesign.data.build.chili3k import Chili3kSource, build_chili3k_source
from invdesign.data.datamodule import load_task_data
from invdesign.data.dataset import ChiliDataset
from invdesign.generators.base import build_generator
from invdesign.training.evaluate import evaluate_generator, pattern_rw

TASKS = ("xPDF->pos_abs", "xrd->pos_abs", "xPDF->unit_cell_pos_frac", "saxs->unit_cell_pos_frac")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> ChiliDataset:
    """Three CHILI-3K cells, each cut at CHILI's radii 5 and 10 Å, all six patterns simulated."""
    root: Path = tmp_path_factory.mktemp("chili3k_tiny")
    for crystal_type, metal in (("RockSalt", "Mg"), ("Wurtzite", "Zn"), ("Fluorite", "Zr")):
        build_chili3k_source(Chili3kSource(crystal_type, metal, radii=(5.0, 10.0)), root)
    return ChiliDataset(root)


def true_structures(data) -> list[Structure]:
    out = []
    for r in range(len(data)):
        m = data.mask[r]
        z, xyz = data.species[r][m].numpy(), data.target[r][m].double().numpy()
        if data.task.kind == "unit_cell":
            cell = cellpar_to_cell(data.cell_params[r].double().numpy())
            out.append(Structure.from_fractional(z, xyz, cell))
        else:
            out.append(Structure(z, xyz, None, "particle"))
    return out


@pytest.mark.parametrize("task", TASKS)
def test_true_structures_reproduce_their_input_and_perturbed_ones_do_not(dataset, task):
    data = load_task_data(dataset, TaskSpec.parse(task))
    rows = list(range(len(data)))
    truth = true_structures(data)
    assert len(rows) == (6 if data.task.kind == "unit_cell" else 3)  # <= 200-atom particles
    assert max(pattern_rw(truth, data, rows)) < 1e-3
    rng = np.random.default_rng(0)
    moved = [Structure(s.species, s.positions + rng.normal(0.0, 0.4, s.positions.shape), s.cell,
                       s.kind) for s in truth]
    assert min(pattern_rw(moved, data, rows)) > 1e-3
    if task.startswith(("xPDF", "xrd")):
        assert np.median(pattern_rw(moved, data, rows)) > 0.05


def test_raw_pattern_undoes_the_normalisation(dataset):
    data = load_task_data(dataset, TaskSpec.parse("xPDF->pos_abs"))
    raw = data.raw_pattern("xPDF", 0)
    assert raw.min() < 0 < raw.max()  # G(r) oscillates; the model input is scaled to [0, 1]
    assert float(data.patterns["xPDF"][0].min()) == 0.0


def test_evaluate_generator_reports_rw_of_free_samples(dataset):
    task = TaskSpec.parse("xPDF->pos_abs")
    data = load_task_data(dataset, task)
    gen = build_generator("mlp", task, hidden=16, aux_hidden=16, species_vocab=data.species_vocab())
    out = evaluate_generator(gen, data, rw_items=2)
    assert out["rw_items"] == 2
    assert 0.0 < out["rw_median"] <= 1.0 and 0.0 < out["rw_mean"] <= 1.0
    assert "rw_median" not in evaluate_generator(gen, data)


def test_a_collapsed_cell_scores_one_without_being_cut(dataset):
    data = load_task_data(dataset, TaskSpec.parse("xPDF->unit_cell_pos_frac"))
    cell = true_structures(data)[0]
    squeezed = Structure.from_fractional(cell.species, cell.frac_positions, cell.cell * 0.5)
    assert pattern_rw([squeezed], data, [0]) == [1.0]  # 8x denser than the true cell
