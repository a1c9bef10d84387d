"""`data.in_memory=false`: batches read from the files through the on-disk index
(`LazyTaskData`) hold exactly the values of the in-memory `TaskData`, for unit-cell and particle
tasks (parent cells padded alike), with augmentation folders, through the data module's loaders;
'auto' chooses by the estimated size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from invdesign.core.errors import InvdesignError
from invdesign.core.tasks import TaskBatch, TaskSpec
from invdesign.data import datamodule
from invdesign.data.datamodule import ChiliTaskDataModule, LazyTaskData, WholeDataRequired
from invdesign.data.hdf5_io import write_chili_file
from invdesign.data.toy import toy_record


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> tuple[Path, Path]:
    """Eight sources (one with a 24-atom cell: the particles' parent cells then need more than
    CHILI's 20 atoms of padding) and an augmentation folder of the same sources."""
    root = tmp_path_factory.mktemp("lazy")
    extra = tmp_path_factory.mktemp("extra")
    for k in range(8):
        n = 24 if k == 3 else 4 + k
        write_chili_file(root / f"Toy{k}.h5", toy_record(
            name=f"Toy{k}", n_unit_cell=n, particle_atoms=(7, 12), seed=k))
        write_chili_file(extra / f"Toy{k}.h5", toy_record(
            name=f"Toy{k}", n_unit_cell=n, particle_atoms=(5, 9), sizes=(3.0, 4.0),
            seed=50 + k))
    return root, extra


def assert_same(a: TaskBatch, b: TaskBatch) -> None:
    assert a.condition.patterns.keys() == b.condition.patterns.keys()
    for name in a.condition.patterns:
        assert torch.equal(a.condition.patterns[name], b.condition.patterns[name])
    assert a.condition.composition == b.condition.composition
    for x, y in ((a.condition.cell_params, b.condition.cell_params),
                 (a.condition.n_atoms, b.condition.n_atoms)):
        assert (x is None and y is None) or torch.equal(x, y)
    for name in ("target", "mask", "species", "n_atoms", "cell_params"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.meta == b.meta
    assert (a.parent is None) == (b.parent is None)
    if a.parent is not None:
        assert_same(a.parent, b.parent)


def modules(root: Path, task: str, **kw) -> tuple[ChiliTaskDataModule, ChiliTaskDataModule]:
    spec = TaskSpec.parse(task)
    eager = ChiliTaskDataModule(str(root), spec, "grouped", in_memory="true", **kw)
    lazy = ChiliTaskDataModule(str(root), spec, "grouped", in_memory="false", **kw)
    eager.setup()
    lazy.setup()
    assert not eager.lazy and lazy.lazy
    return eager, lazy


@pytest.mark.parametrize("task", ["xPDF->unit_cell_pos_frac", "saxs->pos_abs"])
def test_lazy_batches_equal_in_memory_batches(roots, task) -> None:
    eager, lazy = modules(roots[0], task)
    rng = np.random.default_rng(0)
    cond = ("composition", "cell", "n_atoms")
    for part in ("train", "val", "test"):
        e, z = eager.parts[part], lazy.parts[part]
        assert isinstance(z, LazyTaskData) and len(z) == len(e)
        assert z.indices == e.indices and z.meta == e.meta
        assert torch.equal(z.n_atoms, e.n_atoms)
        assert z.species_vocab() == e.species_vocab()
        rows = rng.integers(0, len(e), size=7).tolist() + [0, 0]  # shuffled, with repeats
        assert_same(z.batch(rows, cond), e.batch(rows, cond))
        assert np.array_equal(z.raw_pattern(e.task.patterns[0], rows[0]),
                              e.raw_pattern(e.task.patterns[0], rows[0]))
        assert z.compositions(rows) == e.compositions(rows)
    if task.endswith("pos_abs"):  # the 24-atom cell sets the parents' padding in both
        batch = lazy.parts["train"].batch([0])
        assert batch.parent is not None and batch.parent.target.shape[1] == 24


def test_lazy_loaders_and_augmentation_equal_in_memory(roots) -> None:
    """The data module's loaders (the same seeded shuffle) and an augmented training part (two
    folders, rows of both in one batch)."""
    eager, lazy = modules(roots[0], "xPDF->pos_abs", batch_size=5, eval_batch_size=4,
                          augment=[str(roots[1])])
    assert eager.n_augment == lazy.n_augment > 0
    assert lazy.parts["train"].indices == eager.parts["train"].indices
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        torch.manual_seed(3)
        a = list(getattr(eager, loader)())
        torch.manual_seed(3)
        b = list(getattr(lazy, loader)())
        assert len(a) == len(b) > 0
        for x, y in zip(a, b, strict=True):
            assert_same(y, x)
    n = len(eager.parts["train"])
    mixed = [n - 1, 0, n - 2, 1]  # augmentation rows (second folder) around the first folder's
    assert_same(lazy.parts["train"].batch(mixed), eager.parts["train"].batch(mixed))


def test_lazy_data_refuses_whole_set_statistics(roots) -> None:
    _, lazy = modules(roots[0], "xPDF->unit_cell_pos_frac")
    with pytest.raises(WholeDataRequired, match="data.in_memory=true"):
        lazy.parts["train"].target  # noqa: B018
    with pytest.raises(IndexError):
        lazy.parts["val"].batch([len(lazy.parts["val"])])


def test_auto_reads_batch_by_batch_above_the_size_limit(roots, monkeypatch) -> None:
    task = TaskSpec.parse("xPDF->unit_cell_pos_frac")
    small = ChiliTaskDataModule(str(roots[0]), task, in_memory="auto")
    small.setup()
    assert not small.lazy  # a few kB
    monkeypatch.setattr(datamodule, "IN_MEMORY_LIMIT_BYTES", 1000)
    large = ChiliTaskDataModule(str(roots[0]), task, in_memory="auto")
    large.setup()
    assert large.lazy
    assert datamodule.estimated_bytes(task, 1) > 1000
    with pytest.raises(InvdesignError, match="in_memory must be auto, true or false"):
        ChiliTaskDataModule(str(roots[0]), task, in_memory="sometimes")


def test_the_auto_limit_is_a_share_of_the_available_memory(monkeypatch) -> None:
    from types import SimpleNamespace

    from invdesign.data import task_data

    assert task_data.in_memory_limit(12345) == 12345  # a set limit wins
    gib = 1 << 30
    memory = SimpleNamespace(available=20 * gib)
    monkeypatch.setattr(task_data.psutil, "virtual_memory", lambda: memory)
    assert task_data.in_memory_limit() == 5 * gib  # a quarter of 20 GiB
    memory.available = gib
    assert task_data.in_memory_limit() == task_data.IN_MEMORY_FLOOR_BYTES


def test_auto_counts_the_training_only_folders(roots, tmp_path, monkeypatch) -> None:
    """`data.extra` graphs weigh in the 'auto' decision: a small data folder with a large
    training-only folder is read batch by batch, and the training part is the same either way."""
    task = TaskSpec.parse("xPDF->unit_cell_pos_frac")
    broad = tmp_path / "broad"
    broad.mkdir()
    for k in range(4):
        write_chili_file(broad / f"Syn{k}.h5", toy_record(name=f"Syn{k}", n_unit_cell=3 + k,
                                                          particle_atoms=(6, 8), seed=70 + k))
    from invdesign.data.dataset import ChiliDataset

    n_root = len(ChiliDataset(roots[0]).task_indices(task.target, task.max_atoms))
    limit = datamodule.estimated_bytes(task, n_root) + 1
    monkeypatch.setattr(datamodule, "IN_MEMORY_LIMIT_BYTES", limit)
    alone = ChiliTaskDataModule(str(roots[0]), task, in_memory="auto")
    alone.setup()
    assert not alone.lazy
    lazy = ChiliTaskDataModule(str(roots[0]), task, in_memory="auto", extra=[str(broad)])
    lazy.setup()
    eager = ChiliTaskDataModule(str(roots[0]), task, in_memory="true", extra=[str(broad)])
    eager.setup()
    assert lazy.lazy and not eager.lazy and lazy.n_extra == eager.n_extra == 8
    rows = list(range(len(eager.parts["train"])))
    assert_same(lazy.parts["train"].batch(rows), eager.parts["train"].batch(rows))


def test_evaluation_of_lazy_data_equals_in_memory(roots) -> None:
    """`evaluate_generator` (the metrics after training, Rw of a few samples included) gives the
    same figures on a part left on disk as on the same part in memory."""
    from invdesign.generators.base import build_generator
    from invdesign.training.evaluate import evaluate_generator

    eager, lazy = modules(roots[0], "xPDF->unit_cell_pos_frac")
    torch.manual_seed(0)
    generator = build_generator("mlp", eager.task, hidden=16, aux_hidden=16,
                                species_vocab=eager.parts["train"].species_vocab())
    a = evaluate_generator(generator, eager.parts["test"], batch_size=3, rw_items=2)
    b = evaluate_generator(generator, lazy.parts["test"], batch_size=3, rw_items=2)
    assert a["rw_items"] == 2 and np.isfinite(a["rw_median"])
    assert a == b


def test_unit_cell_targets_are_wrapped_into_the_cell(tmp_path) -> None:
    """A file that keeps atoms across a cell face (fractional -0.25 or 1.25, as relaxed synthetic
    cells did) gives the same unit-cell targets as its wrapped copy, in memory and lazily."""
    import h5py

    from invdesign.data.dataset import ChiliDataset
    from invdesign.data.task_data import in_unit_cell, load_task_data

    plain, shifted = tmp_path / "plain", tmp_path / "shifted"
    for folder in (plain, shifted):
        folder.mkdir()
        write_chili_file(folder / "Toy0.h5", toy_record(name="Toy0", n_unit_cell=6,
                                                        particle_atoms=(7,), seed=3))
    with h5py.File(shifted / "Toy0.h5", "r+") as handle:
        frac = handle["UnitCellGraph/FractionalCoordinates"]
        moved = frac[()]
        moved[0, 0] -= 1.0
        moved[1, 2] += 1.0
        frac[...] = moved
    task = TaskSpec.parse("xPDF->unit_cell_pos_frac")
    want = load_task_data(ChiliDataset(plain), task)
    got = load_task_data(ChiliDataset(shifted), task)
    assert torch.allclose(got.target, want.target, atol=1e-6)
    lazy = LazyTaskData(task, [(ChiliDataset(shifted), [0])], None)
    assert torch.allclose(lazy.read([0]).target, want.target[:1], atol=1e-6)
    edge = in_unit_cell(np.array([[-1e-9, 0.5, 1.0]], dtype=np.float64))
    assert edge.tolist() == [[0.0, 0.5, 0.0]]
