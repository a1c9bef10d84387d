"""Value tests of the splits that kill the mutants surviving tests/data/test_splits.py
(benchmarks/mutation_score.py splits): defaults, the size boundaries, the val fraction, messages.

Expected memberships come from scikit-learn's `train_test_split` (the reference the splits follow)
or, for the 3-graph case, from numpy's `RandomState(42).permutation(3) == [0, 1, 2]` by hand.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from invdesign.core.errors import ConfigError, InvdesignError
from invdesign.data.splits import (
    chili_random_split,
    grouped_split,
    leave_type_out_split,
    split_indices,
)


def _fake_dataset(sources: list[str]) -> SimpleNamespace:
    """What split_indices reads of a ChiliDataset: `records[i].source`."""
    return SimpleNamespace(records=[SimpleNamespace(source=s) for s in sources])


def test_chili_random_split_default_seed_is_42() -> None:
    assert chili_random_split(range(40)) == chili_random_split(range(40), seed=42)
    assert chili_random_split(range(40)) != chili_random_split(range(40), seed=43)


def test_three_graphs_are_the_smallest_split_one_each() -> None:
    # RandomState(42).permutation(3) = [0, 1, 2]: test = [0]; then of [1, 2]: val = [2].
    assert np.random.RandomState(42).permutation(3).tolist() == [0, 1, 2]
    assert chili_random_split(range(3)) == {"train": [1], "val": [2], "test": [0]}
    with pytest.raises(InvdesignError, match="cannot split 2 graphs into train, validation"):
        chili_random_split(range(2))


def test_float_indices_come_back_as_python_ints() -> None:
    split = chili_random_split(np.arange(10, dtype=np.float64))
    assert split == chili_random_split(range(10))
    assert all(type(i) is int for part in split.values() for i in part)


def test_grouped_split_default_seed_is_42() -> None:
    idx, groups = list(range(40)), [f"g{i // 2}" for i in range(40)]
    assert grouped_split(idx, groups) == grouped_split(idx, groups, seed=42)
    assert grouped_split(idx, groups) != grouped_split(idx, groups, seed=43)


def test_grouped_split_three_sources_is_the_smallest() -> None:
    split = grouped_split([10, 11, 12, 13], ["a", "b", "c", "c"])
    # sources sorted [a, b, c], permutation [0, 1, 2]: test a, val c (second permutation of [b, c])
    assert split == {"train": [11], "val": [12, 13], "test": [10]}
    with pytest.raises(InvdesignError, match="cannot split 2 sources"):
        grouped_split([0, 1, 2], ["a", "b", "b"])


def test_grouped_split_length_mismatch_names_both_counts() -> None:
    with pytest.raises(ValueError, match="^3 indices but 2 groups$"):
        grouped_split([0, 1, 2], ["a", "b"])


def test_grouped_split_val_fraction_is_of_all_sources() -> None:
    """test 0.5 and val 0.25 of 8 sources: 4 test, 0.25 / (1 - 0.5) of the 4 left = 2 val."""
    why = "scikit-learn (a test extra) is missing; the reference split is its train_test_split"
    sklearn = pytest.importorskip("sklearn.model_selection", reason=why)
    sources = np.array(list("abcdefgh"), dtype=object)
    rest, test = sklearn.train_test_split(sources, test_size=0.5, random_state=42)
    train, val = sklearn.train_test_split(rest, test_size=0.5, random_state=42)
    ours = grouped_split(range(8), list("abcdefgh"), test_size=0.5, val_size=0.25)
    assert (len(ours["train"]), len(ours["val"]), len(ours["test"])) == (2, 2, 4)
    index = {s: i for i, s in enumerate("abcdefgh")}
    expected = {k: sorted(index[s] for s in v) for k, v in
                (("train", train), ("val", val), ("test", test))}
    assert ours == expected


def test_split_indices_defaults_and_seed_pass_through() -> None:
    sources = [f"S{i // 3:02d}" for i in range(36)]  # 12 sources x 3 graphs
    ds = _fake_dataset(sources)
    assert split_indices(ds) == chili_random_split(range(36), seed=42)
    assert split_indices(ds, "chili_random", seed=7) == chili_random_split(range(36), seed=7)
    assert split_indices(ds, "grouped", seed=7) == grouped_split(range(36), sources, seed=7)
    assert split_indices(ds, "grouped", seed=7) != grouped_split(range(36), sources, seed=42)
    assert split_indices(ds, "chili_random", seed=7) != chili_random_split(range(36), seed=42)


def test_split_indices_unknown_kind_lists_the_kinds() -> None:
    with pytest.raises(InvdesignError, match="^unknown split kind 'x'; choose from chili_random, "
                                             "grouped, leave_type_out:<Type>$"):
        split_indices(_fake_dataset(["a", "b", "c"]), "x")


def test_grouped_split_float_indices_come_back_as_python_ints() -> None:
    groups = ["a", "b", "c", "c"]
    split = grouped_split(np.array([10.0, 11.0, 12.0, 13.0]), groups)
    assert split == grouped_split([10, 11, 12, 13], groups)
    assert all(type(i) is int for part in split.values() for i in part)


def test_leave_type_out_two_remaining_sources_and_default_seed() -> None:
    """The smallest split: 2 sources of the other types, one each for train and validation
    (RandomState(42).permutation(2) = [1, 0]: validation b2); the default seed is 42."""
    assert np.random.RandomState(42).permutation(2).tolist() == [1, 0]
    args = ([0, 1, 2, 3], ["A", "B", "B", "B"], ["a", "b1", "b2", "b2"], "A")
    assert leave_type_out_split(*args) == {"train": [1], "val": [2, 3], "test": [0]}
    types = [t for t in "ABCD" for _ in range(6)]
    groups = [f"{t}{i}" for i, t in enumerate(types)]
    assert leave_type_out_split(range(24), types, groups, "B") == leave_type_out_split(
        range(24), types, groups, "B", seed=42)
    assert leave_type_out_split(range(24), types, groups, "B") != leave_type_out_split(
        range(24), types, groups, "B", seed=43)


def test_leave_type_out_refusals_say_why() -> None:
    with pytest.raises(ValueError) as err:
        leave_type_out_split([0, 1, 2], ["A", "B"], ["a", "b", "c"], "A")
    assert str(err.value) == "3 indices but 2 types and 3 groups"
    with pytest.raises(InvdesignError) as err:
        leave_type_out_split([0, 1], ["A", "B"], ["a", "b"], "A")
    assert str(err.value) == ("cannot split 1 sources of the types other than A into train and "
                              "validation")


def test_leave_type_out_fold_is_everything_after_the_first_colon() -> None:
    """'leave_type_out:Rutile:x' names the fold 'Rutile:x' (refused), not 'Rutile'."""
    ds = SimpleNamespace(records=[SimpleNamespace(source=f"s{i}", crystal_type="Rutile")
                                  for i in range(4)])
    for kind, fold in (("leave_type_out:Rutile:x", "Rutile:x"),
                       ("leave_type_out:x:Rutile", "x:Rutile")):
        with pytest.raises(ConfigError) as err:
            split_indices(ds, kind)
        assert str(err.value).endswith(f"index 0-11, not {fold!r}")
