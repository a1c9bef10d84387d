"""Train / validation / test splits of a `ChiliDataset`.

- 'chili_random': CHILI's own split, per graph (benchmark/dataset_class.py `create_data_split`):
  scikit-learn's `train_test_split(idx, test_size=0.1, random_state=42)`, then
  `train_test_split(train, test_size=0.1 / 0.9, random_state=42)`, i.e. 10 % of all graphs for test
  and 10 % of all graphs (1/9 of the rest) for validation (CHILI-3K: 2,544 / 318 / 318, as in CHILI
  Table 1). Reproduced here without scikit-learn, with the same arithmetic (test = ceil(f * n),
  numpy `RandomState(seed).permutation`, first part test, rest train). Particles of one unit cell
  land in train and test alike, so unit-cell tasks leak: use it for comparison.
- 'grouped': by source file (one source CIF / unit cell), no source in two parts: the same two-step
  procedure applied to the sorted unique sources, each graph following its source. The honest
  default.
- 'leave_type_out:<Type>' (config: `split.kind: leave_type_out`, `split.fold: <Type>`): one of
  CHILI-3K's twelve crystal types (`crystal_types.CRYSTAL_TYPES`, by name or by its index 0-11 in
  that order) is held out: test = every graph of that type, and the other types' sources are split
  into train and validation (`val_size` of those sources, seeded shuffle, no source in both). A
  lookup of the training structures scores nothing here: the test of generalisation to a new type.
  Sources with another label whose unit cell is the held-out type all the same (its AFLOW
  prototype label, `held_out_lookalikes`: e.g. a synthetic or COD rock salt labelled 'Unknown')
  are left out of all three parts, so data beyond CHILI-3K cannot leak the held-out type.
  Training-only folders (`training_only_graphs`, the config's `data.extra`) are filtered alike.

All are deterministic: the same dataset, indices and seed give the same split.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

import numpy as np

from invdesign.core.errors import ConfigError, InvdesignError
from invdesign.crystals.crystal_types import CRYSTAL_TYPES

if TYPE_CHECKING:
    from invdesign.data.dataset import ChiliDataset

SPLIT_KINDS = ("chili_random", "grouped", "leave_type_out")
#: the split kind that needs a fold (the held-out crystal type)
LEAVE_TYPE_OUT = "leave_type_out"


def _shuffle_split(items: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's `train_test_split(items, test_size=f, random_state=seed)` -> (train, test)."""
    n = len(items)
    n_test = math.ceil(test_size * n)
    perm = np.random.RandomState(seed).permutation(n)
    return items[perm[n_test:]], items[perm[:n_test]]


def chili_random_split(
    indices: Sequence[int], seed: int = 42, test_size: float = 0.1, val_size: float = 0.1
) -> dict[str, list[int]]:
    """CHILI's random split: `test_size` of `indices` for test, `val_size` (of all) for val."""
    items = np.asarray(list(indices), dtype=np.int64)
    if len(items) < 3:
        raise InvdesignError(f"cannot split {len(items)} graphs into train, validation and test")
    train, test = _shuffle_split(items, test_size, seed)
    train, val = _shuffle_split(train, val_size / (1.0 - test_size), seed)
    return {"train": train.tolist(), "val": val.tolist(), "test": test.tolist()}


def grouped_split(
    indices: Sequence[int],
    groups: Sequence[str],
    seed: int = 42,
    test_size: float = 0.1,
    val_size: float = 0.1,
) -> dict[str, list[int]]:
    """Split `indices` so that no group (source) is in two parts.

    `groups[k]` is the group of `indices[k]`.

    The fractions apply to the groups; each part keeps its graphs in ascending index order.
    """
    items = np.asarray(list(indices), dtype=np.int64)
    if len(groups) != len(items):
        raise ValueError(f"{len(items)} indices but {len(groups)} groups")
    unique = np.array(sorted(set(groups)), dtype=object)
    if len(unique) < 3:
        raise InvdesignError(f"cannot split {len(unique)} sources into train, validation and test")
    rest, test = _shuffle_split(unique, test_size, seed)
    train, val = _shuffle_split(rest, val_size / (1.0 - test_size), seed)
    part_of = {
        g: name for name, part in (("train", train), ("val", val), ("test", test)) for g in part
    }
    out: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for i, g in sorted(zip(items.tolist(), groups, strict=True)):
        out[part_of[g]].append(i)
    return out


def type_fold(fold: str | int) -> str:
    """The CHILI-3K crystal type named by a leave-type-out fold: its name (case-insensitive) or its
    index 0-11 in `CRYSTAL_TYPES` order. Raises `ConfigError` naming `split.fold` otherwise."""
    names = list(CRYSTAL_TYPES)
    text = str(fold).strip()
    if text.lstrip("-").isdigit():
        k = int(text)
        if 0 <= k < len(names):
            return names[k]
    else:
        for name in names:
            if name.lower() == text.lower():
                return name
    raise ConfigError(
        f"split.fold must be one of CHILI-3K's crystal types ({', '.join(names)}) or their "
        f"index 0-{len(names) - 1}, not {fold!r}")


def split_name(kind: str, fold: str | int | None = None) -> str:
    """The one-string split name passed to `split_indices`: `kind`, or 'leave_type_out:<Type>'.

    Raises:
        ConfigError: leave_type_out without a fold, or a fold given to another kind.
    """
    if kind == LEAVE_TYPE_OUT:
        if fold is None:
            raise ConfigError("split.fold: leave_type_out needs the held-out crystal type")
        return f"{LEAVE_TYPE_OUT}:{type_fold(fold)}"
    if fold is not None:
        raise ConfigError(f"split.fold is only for leave_type_out, not for split {kind!r}")
    return kind


def leave_type_out_split(
    indices: Sequence[int],
    types: Sequence[str],
    groups: Sequence[str],
    held_out: str,
    seed: int = 42,
    val_size: float = 0.1,
    exclude: Collection[str] = (),
) -> dict[str, list[int]]:
    """Test = the graphs of type `held_out`; the other graphs' groups (sources) split into train
    and validation, `val_size` of those groups for validation (at least one); the groups in
    `exclude` (lookalikes of the held-out type) are in no part.

    `types[k]` and `groups[k]` are the crystal type and group of `indices[k]`. Each part keeps its
    graphs in ascending index order.
    """
    items = [int(i) for i in indices]
    if not len(types) == len(groups) == len(items):
        raise ValueError(f"{len(items)} indices but {len(types)} types and {len(groups)} groups")
    dropped = set(exclude)
    rest = np.array(sorted({g for g, t in zip(groups, types, strict=True)
                            if t != held_out and g not in dropped}), dtype=object)
    if len(rest) < 2:
        raise InvdesignError(
            f"cannot split {len(rest)} sources of the types other than {held_out} into train "
            "and validation")
    train, val = _shuffle_split(rest, val_size, seed)
    part_of = {g: name for name, part in (("train", train), ("val", val)) for g in part}
    out: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for i, t, g in sorted(zip(items, types, groups, strict=True)):
        if t == held_out:
            out["test"].append(i)
        elif g not in dropped:
            out[part_of[g]].append(i)
    return out


def held_out_lookalikes(ds: ChiliDataset, indices: Sequence[int], held_out: str,
                        symprec: float = 0.1,
                        among: tuple[ChiliDataset, Sequence[int]] | None = None) -> dict[str, str]:
    """Sources labelled other than `held_out` whose unit cell has the AFLOW prototype label
    (`crystals.symmetry.aflow_prototype`) of one of the `held_out` sources among `indices` of
    `ds`: source -> that label. The sources looked at are those of `indices` of `ds`, or of the
    graphs `among` = (dataset, indices) when given (e.g. training-only folders).

    The label holds the space group, so only the sources filed under the space-group number of a
    held-out source are read (the number in the file, from the build's symmetry tolerance)."""
    # lazy: spglib and pymatgen's prototype tables only for leave-type-out splits
    from invdesign.crystals.symmetry import aflow_prototype  # noqa: PLC0415
    from invdesign.data.hdf5_io import read_chili_file  # noqa: PLC0415

    def first_graphs(data: ChiliDataset, chosen: Sequence[int]) -> dict[str, int]:
        first: dict[str, int] = {}
        for i in chosen:
            first.setdefault(data.records[i].source, int(i))
        return first

    def label(data: ChiliDataset, i: int) -> str:
        return aflow_prototype(read_chili_file(data.records[i].path, sizes=[]).cell(), symprec)

    first = first_graphs(ds, indices)
    held = [i for i in first.values() if ds.records[i].crystal_type == held_out]
    groups = {ds.records[i].space_group_number for i in held}
    labels = {label(ds, i) for i in held} - {""}
    other_ds, other_first = (ds, first) if among is None else (among[0],
                                                               first_graphs(*among))
    others = [(s, i) for s, i in other_first.items()
              if other_ds.records[i].crystal_type != held_out
              and other_ds.records[i].space_group_number in groups]
    return {s: found for s, i in others if (found := label(other_ds, i)) in labels}


def training_only_graphs(ds: ChiliDataset, indices: Sequence[int], kind: str,
                         extra: ChiliDataset, extra_indices: Sequence[int]) -> list[int]:
    """The graphs `extra_indices` of `extra` (folders of other sources, training only) that may
    join the training part of split `kind` of `indices` of `ds`: all of them, except under
    'leave_type_out:<Type>' those labelled the held-out type and those of sources that look like
    a held-out source (`held_out_lookalikes`), so training-only data cannot leak the test type."""
    chosen = [int(i) for i in extra_indices]
    if not kind.startswith(f"{LEAVE_TYPE_OUT}:"):
        return chosen
    held_out = type_fold(kind.split(":", 1)[1])
    lookalikes = held_out_lookalikes(ds, indices, held_out, among=(extra, chosen))
    return [i for i in chosen if extra.records[i].crystal_type != held_out
            and extra.records[i].source not in lookalikes]


def split_indices(
    ds: ChiliDataset,
    kind: str = "chili_random",
    seed: int = 42,
    indices: Sequence[int] | None = None,
) -> dict[str, list[int]]:
    """{'train': [...], 'val': [...], 'test': [...]} graph indices of `ds`.

    Args:
        ds: the dataset (its `records` give the sources for 'grouped').
        kind: 'chili_random' (per graph, CHILI's), 'grouped' (by source file) or
            'leave_type_out:<Type>' (`split_name`; the type's graphs are the test part).
        seed: CHILI uses 42.
        indices: split only these graphs (e.g. `ds.task_indices(...)`); default all graphs.
    """
    chosen = list(range(len(ds.records))) if indices is None else [int(i) for i in indices]
    if kind == "chili_random":
        return chili_random_split(chosen, seed)
    if kind == "grouped":
        return grouped_split(chosen, [ds.records[i].source for i in chosen], seed)
    if kind.startswith(f"{LEAVE_TYPE_OUT}:"):
        held_out = type_fold(kind.split(":", 1)[1])
        lookalikes = held_out_lookalikes(ds, chosen, held_out)
        return leave_type_out_split(chosen, [ds.records[i].crystal_type for i in chosen],
                                    [ds.records[i].source for i in chosen], held_out, seed,
                                    exclude=lookalikes)
    if kind == LEAVE_TYPE_OUT:
        split_name(kind)  # raises: the fold is missing
    raise InvdesignError(f"unknown split kind {kind!r}; choose from chili_random, grouped, "
                         f"{LEAVE_TYPE_OUT}:<Type>")
