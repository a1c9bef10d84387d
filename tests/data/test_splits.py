"""Splits: CHILI's random split (sizes of CHILI Table 1) and the grouped split by source file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from invdesign.core.errors import InvdesignError
from invdesign.data.dataset import ChiliDataset
from invdesign.data.hdf5_io import write_chili_file
from invdesign.data.splits import chili_random_split, grouped_split, split_indices
from invdesign.data.toy import toy_record


def _check_partition(split: dict[str, list[int]], indices: list[int]) -> None:
    parts = [split["train"], split["val"], split["test"]]
    assert sorted(i for part in parts for i in part) == sorted(indices)  # all, each once


@pytest.mark.parametrize(
    ("n", "sizes"), [(3180, (2544, 318, 318)), (104408, (83526, 10441, 10441))]
)
def test_chili_random_split_has_the_sizes_of_chili_table_1(n: int, sizes: tuple[int, ...]) -> None:
    split = chili_random_split(range(n), seed=42)
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == sizes
    _check_partition(split, list(range(n)))


def test_chili_random_split_is_deterministic_and_seeded() -> None:
    a, b = chili_random_split(range(500), seed=42), chili_random_split(range(500), seed=42)
    assert a == b
    assert chili_random_split(range(500), seed=7)["test"] != a["test"]


def test_chili_random_split_equals_scikit_learn_train_test_split() -> None:
    why = "scikit-learn (a test extra) is missing; the reference split is its train_test_split"
    sklearn = pytest.importorskip("sklearn.model_selection", reason=why)
    idx = np.arange(3180)
    train, test = sklearn.train_test_split(idx, test_size=0.1, random_state=42)
    train, val = sklearn.train_test_split(train, test_size=0.1 / 0.9, random_state=42)
    ours = chili_random_split(idx, seed=42)
    assert ours == {"train": train.tolist(), "val": val.tolist(), "test": test.tolist()}


def test_grouped_split_keeps_each_group_in_one_part() -> None:
    indices = list(range(100))
    groups = [f"cif{i // 5}" for i in indices]  # 20 sources x 5 particle sizes
    split = grouped_split(indices, groups, seed=42)
    _check_partition(split, indices)
    part_groups = {k: {groups[i] for i in v} for k, v in split.items()}
    assert not part_groups["train"] & part_groups["test"]
    assert not part_groups["train"] & part_groups["val"]
    assert not part_groups["val"] & part_groups["test"]
    # ceil(0.1 * 20) sources for test, 10 % of all sources for val
    assert (len(part_groups["test"]), len(part_groups["val"])) == (2, 2)
    assert grouped_split(indices, groups, seed=42) == split
    assert grouped_split(indices[::-1], groups[::-1], seed=42) == split  # order of input irrelevant


def _dataset(root: Path, n_sources: int = 12) -> ChiliDataset:
    for k in range(n_sources):
        write_chili_file(root / f"S{k:02d}.h5", toy_record(f"S{k:02d}", 4, (5, 9, 15), seed=k))
    return ChiliDataset(root)


def test_split_indices_on_a_dataset(tmp_path: Path) -> None:
    ds = _dataset(tmp_path)
    everything = list(range(len(ds)))
    for kind in ("chili_random", "grouped"):
        split = split_indices(ds, kind)
        _check_partition(split, everything)
        assert split_indices(ds, kind, seed=42) == split
    grouped = split_indices(ds, "grouped")
    sources = {k: {ds.records[i].source for i in v} for k, v in grouped.items()}
    assert not (sources["train"] & sources["test"]) and not (sources["val"] & sources["test"])
    assert not sources["train"] & sources["val"]
    subset = ds.task_indices("pos_abs", max_atoms=9)
    _check_partition(split_indices(ds, "grouped", indices=subset), subset)
    _check_partition(split_indices(ds, "chili_random", indices=subset), subset)


def test_unknown_split_kind(tmp_path: Path) -> None:
    ds = _dataset(tmp_path, 3)
    with pytest.raises(InvdesignError, match="unknown split kind 'stratified'"):
        split_indices(ds, "stratified")
    with pytest.raises(InvdesignError, match="cannot split 2 sources"):
        split_indices(ds, "grouped", indices=[0, 1, 2, 3, 4, 5])
