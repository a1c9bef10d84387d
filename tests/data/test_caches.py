"""Poisoned caches (issue 22): a damaged, garbage or edited index cache or task-array `.npz` is
detected and rebuilt from the HDF5 files, never a traceback, never silently wrong data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from invdesign.cli.main import main
from invdesign.data.dataset import ChiliDataset
from invdesign.data.hdf5_io import write_chili_file
from invdesign.data.index import INDEX_NAME, load_cache, save_cache
from invdesign.data.task_arrays import CACHE_FOLDER
from invdesign.data.toy import toy_record


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "ds"
    write_chili_file(folder / "a" / "A.h5", toy_record("A", 8, (7, 30), seed=1))
    write_chili_file(folder / "B.h5", toy_record("B", 12, (12,), seed=2))
    return folder


def atoms_per_graph(ds: ChiliDataset) -> list[int]:
    return [r.n_atoms for r in ds.records]


# ---------------------------------------------------------------------------------- the index
def poison(doc: dict) -> None:
    """The fuzz campaign's edit: every particle size's atom count replaced by a word."""
    for entry in doc["files"].values():
        for size in entry["sizes"]:
            size["n_atoms"] = "many"


def recount(doc: dict) -> None:
    """A well-typed but wrong edit: one more atom in every particle."""
    for entry in doc["files"].values():
        for size in entry["sizes"]:
            size["n_atoms"] += 1


@pytest.mark.parametrize("damage", ["poison", "recount", "garbage", "truncated", "list"])
def test_damaged_index_cache_is_rebuilt(root: Path, damage: str) -> None:
    first = ChiliDataset(root)
    cache = root / INDEX_NAME
    if damage in ("poison", "recount"):
        doc = json.loads(cache.read_text())
        {"poison": poison, "recount": recount}[damage](doc)
        cache.write_text(json.dumps(doc))
    elif damage == "garbage":
        cache.write_bytes(b"\x00\xff garbage \x89PNG")
    elif damage == "truncated":
        cache.write_text(cache.read_text()[:40])
    else:
        cache.write_text("[1, 2, 3]")
    again = ChiliDataset(root)
    assert (again.index_report.reused, again.index_report.indexed) == (0, 2)
    assert atoms_per_graph(again) == atoms_per_graph(first) == [12, 7, 30]
    assert again.records == first.records
    assert len(load_cache([cache])) == 2  # rewritten, valid again
    assert ChiliDataset(root).index_report.reused == 2


def test_wrongly_typed_entry_with_a_valid_checksum_is_reindexed_alone(root: Path) -> None:
    ChiliDataset(root)
    cache = root / INDEX_NAME
    files = json.loads(cache.read_text())["files"]
    files["B.h5"]["elements"] = "Mg O"
    save_cache([cache], files)  # a writer with a bug: checksum right, content wrong
    again = ChiliDataset(root)
    assert (again.index_report.reused, again.index_report.indexed) == (1, 1)
    assert again.records[0].source == "B" and again.records[0].elements == (8, 12)


def test_cli_data_info_on_a_poisoned_index_cache(root: Path, capsys) -> None:
    ChiliDataset(root)
    cache = root / INDEX_NAME
    doc = json.loads(cache.read_text())
    poison(doc)
    cache.write_text(json.dumps(doc))
    assert main(["data", "info", str(root)]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert len(load_cache([cache])) == 2


# ---------------------------------------------------------------------------- the task arrays
FIELDS = ["pos_abs", "n_atoms", "crystal_type"]


def npz_of(root: Path) -> Path:
    (path,) = (root / CACHE_FOLDER).glob("*.npz")
    return path


def rewrite(path: Path, edit) -> None:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    edit(arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def assert_same(a: dict, b: dict) -> None:
    for name in FIELDS:
        for x, y in zip(a[name], b[name], strict=True):
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "edited", "other key", "no meta"])
def test_damaged_task_array_cache_is_ignored_and_rewritten(root: Path, damage: str) -> None:
    ds = ChiliDataset(root)
    expected = ds.cache_task_arrays([2, 0], FIELDS, cache=False)
    ds.cache_task_arrays([2, 0], FIELDS)
    path = npz_of(root)
    if damage == "garbage":
        path.write_bytes(b"PK\x03\x04 not a zip at all")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "edited":
        rewrite(path, lambda a: a.update({"pos_abs/data": a["pos_abs/data"] + 1.0}))
    elif damage == "other key":
        ds.cache_task_arrays([1], FIELDS)  # a second .npz, then copied over the first
        other = next(p for p in (root / CACHE_FOLDER).glob("*.npz") if p != path)
        path.write_bytes(other.read_bytes())
        other.unlink()
    else:
        rewrite(path, lambda a: a.pop("__meta__"))
    assert_same(ds.cache_task_arrays([2, 0], FIELDS), expected)
    # rewritten from the HDF5 files: now served from the cache even with the HDF5 files gone
    for record_path in {r.path for r in ds.records}:
        Path(record_path).write_bytes(b"not hdf5 any more")
    assert_same(ds.cache_task_arrays([2, 0], FIELDS), expected)
