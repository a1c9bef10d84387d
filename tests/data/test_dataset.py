"""ChiliDataset: official layout, writer round trip, index cache, task filters, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from invdesign.core.errors import InvdesignError
from invdesign.data.dataset import ChiliDataset
from invdesign.data.fields import FIELDS
from invdesign.data.hdf5_io import read_chili_file, write_chili_file
from invdesign.data.index import INDEX_NAME, cache_paths, save_cache
from invdesign.data.toy import toy_record

# ------------------------------------------------------------------ an official file by hand
UC_X = np.array([[12, 145, 24.305, 0], [8, 48, 15.999, 1.461]], dtype=np.float32)
UC_EDGES = np.array([[0, 1], [1, 0]], dtype=np.int64)
UC_DIST = np.array([2.1, 2.1], dtype=np.float32)
UC_FRAC = np.array([[0, 0, 0], [0.5, 0.5, 0.5]], dtype=np.float32)
UC_ABS = UC_FRAC * 4.2
NP_X = np.array([[12, 145, 24.305, 0], [8, 48, 15.999, 1.461], [8, 48, 15.999, 1.461]], np.float32)
NP_EDGES = np.array([[0, 1, 0, 2], [1, 0, 2, 0]], dtype=np.int64)
NP_DIST = np.array([2.1, 2.1, 2.1, 2.1], dtype=np.float32)
NP_ABS = np.array([[0, 0, 0], [2.1, 0, 0], [-2.1, 0, 0]], dtype=np.float32)
NP_FRAC = NP_ABS / 4.2
GRIDS = {"SAXS": 300, "SANS": 300, "XRD": 580, "ND": 580, "xPDF": 6000, "nPDF": 6000}


def pattern(n: int, scale: float) -> np.ndarray:
    return np.stack([np.arange(n) * 0.01, scale * np.ones(n)]).astype(np.float32)


def write_official(path: Path, skip: str | None = None) -> None:
    """Plain h5py, straight from the published layout (CHILI.md): not through our writer."""
    with h5py.File(path, "w") as f:
        if skip != "GlobalLabels":
            g = f.create_group("GlobalLabels")
            g["CellParameters"] = np.array([4.2, 4.2, 4.2, 90, 90, 90], dtype=np.float32)
            g["CrystalType"] = b"RockSalt"
            g["SpaceGroupSymbol"] = "F m -3 m"  # str: variable-length UTF-8, as CHILI writes
            g["SpaceGroupNumber"] = np.int64(225)
            g["CrystalSystem"] = np.bytes_("Cubic")
            g["ElementsPresent"] = np.array([8.0, 12.0])
        uc = f.create_group("UnitCellGraph")
        for key, value in (
            ("NodeFeatures", UC_X),
            ("EdgeFeatures", UC_DIST),
            ("EdgeDirections", UC_EDGES),
            ("FractionalCoordinates", UC_FRAC),
            ("AbsoluteCoordinates", UC_ABS),
        ):
            uc[key] = value
        # '10.00Å' before '5.00Å' in HDF5's name order: the dataset must order them numerically
        for size, scale in ((10.0, 2.0), (5.0, 1.0)):
            key = f"{size:.2f}Å"  # the official '%.2fÅ' group name
            p = f.create_group(f"DiscreteParticleGraphs/{key}")
            p["NP size (Å)"] = size
            n = 3 if size == 5.0 else 2
            p["NodeFeatures"] = NP_X[:n]
            p["EdgeFeatures"] = NP_DIST[: 2 * (n - 1)]
            p["EdgeDirections"] = NP_EDGES[:, : 2 * (n - 1)]
            p["FractionalCoordinates"] = NP_FRAC[:n]
            p["AbsoluteCoordinates"] = NP_ABS[:n]
            s = f.create_group(f"ScatteringData/{key}")
            for name, points in GRIDS.items():
                s[name] = pattern(points, scale)


def test_official_layout_reads_into_expected_data(tmp_path: Path) -> None:
    write_official(tmp_path / "RockSalt_Mg.h5")
    ds = ChiliDataset(tmp_path)
    assert len(ds) == 2
    assert [r.size_key for r in ds.records] == ["5.00Å", "10.00Å"]
    data = ds[0]
    assert torch.equal(data.x, torch.from_numpy(NP_X))
    assert torch.equal(data.edge_index, torch.from_numpy(NP_EDGES))
    assert data.edge_attr.shape == (4, 1)
    assert torch.equal(data.edge_attr[:, 0], torch.from_numpy(NP_DIST))
    assert torch.equal(data.pos_abs, torch.from_numpy(NP_ABS))
    assert torch.equal(data.pos_frac, torch.from_numpy(NP_FRAC))
    assert data.source == "RockSalt_Mg" and data.size_key == "5.00Å"
    y = data.y
    assert y["crystal_type"] == "RockSalt"
    assert y["space_group_symbol"] == "F m -3 m"
    assert y["space_group_number"] == 225
    assert (y["crystal_system"], y["crystal_system_number"]) == ("Cubic", 7)
    assert y["atomic_species"].tolist() == [8, 12] and y["n_atomic_species"] == 2
    assert y["np_size"] == 5.0
    assert (y["n_atoms"], y["n_bonds"]) == (3, 4)
    assert torch.allclose(y["cell_params"], torch.tensor([4.2, 4.2, 4.2, 90, 90, 90]))
    assert torch.equal(y["unit_cell_x"], torch.from_numpy(UC_X))
    assert torch.equal(y["unit_cell_edge_index"], torch.from_numpy(UC_EDGES))
    assert torch.equal(y["unit_cell_edge_attr"], torch.from_numpy(UC_DIST).view(-1, 1))
    assert torch.equal(y["unit_cell_pos_abs"], torch.from_numpy(UC_ABS))
    assert torch.equal(y["unit_cell_pos_frac"], torch.from_numpy(UC_FRAC))
    assert (y["unit_cell_n_atoms"], y["unit_cell_n_bonds"]) == (2, 2)
    shapes = {"saxs": 300, "sans": 300, "xrd": 580, "nd": 580, "xPDF": 6000, "nPDF": 6000}
    for name, points in shapes.items():
        assert y[name].shape == (2, points) and y[name].dtype == torch.float32
        assert torch.all(y[name][1] == 1.0)  # the 5 Å group's patterns, not the 10 Å ones
    big = ds[1]
    assert big.y["np_size"] == 10.0 and big.num_nodes == 2 and torch.all(big.y["xPDF"][1] == 2.0)
    row = ds.records[0]
    assert (row.n_atoms, row.n_bonds, row.unit_cell_n_atoms, row.elements) == (3, 4, 2, (8, 12))


def test_writer_round_trip_through_reader_and_dataset(tmp_path: Path) -> None:
    record = toy_record("Wurtzite_Zn", n_unit_cell=4, particle_atoms=(9, 21), sizes=(5.0, 10.0))
    write_chili_file(tmp_path / "sub" / "Wurtzite_Zn.h5", record)
    back = read_chili_file(tmp_path / "sub" / "Wurtzite_Zn.h5")
    assert (back.name, back.space_group_number) == ("Wurtzite_Zn", 225)
    np.testing.assert_array_equal(back.unit_cell.edge_index, record.unit_cell.edge_index)
    ds = ChiliDataset(tmp_path)
    assert len(ds) == 2
    for i, entry in enumerate(record.particles):
        data = ds[i]
        np.testing.assert_array_equal(data.x.numpy(), entry.graph.node_features)
        np.testing.assert_array_equal(data.edge_index.numpy(), entry.graph.edge_index)
        np.testing.assert_array_equal(data.edge_attr.numpy()[:, 0], entry.graph.edge_attr)
        np.testing.assert_array_equal(data.pos_abs.numpy(), entry.graph.pos_abs)
        np.testing.assert_array_equal(data.pos_frac.numpy(), entry.graph.pos_frac)
        for name, values in entry.patterns.items():
            np.testing.assert_array_equal(data.y[name].numpy(), values)
        uc_frac = data.y["unit_cell_pos_frac"].numpy()
        np.testing.assert_array_equal(uc_frac, record.unit_cell.pos_frac)
        assert data.y["np_size"] == entry.size and data.y["n_atoms"] == entry.graph.n_atoms


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_written_file_gets_the_umask_mode_and_no_part_file_stays(
    tmp_path: Path, umask: int
) -> None:
    old = os.umask(umask)
    try:
        path = write_chili_file(tmp_path / "A.h5", toy_record("A", 3, (5,)))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # 0644, 0640; mkstemp would give 0600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A.h5"]


def test_failed_write_keeps_the_old_file_and_leaves_no_part_file(tmp_path: Path) -> None:
    path = write_chili_file(tmp_path / "A.h5", toy_record("A", 3, (5,)))
    before = path.read_bytes()
    broken = toy_record("A", 3, (5,))
    broken.particles[0].patterns = {"no such pattern": np.zeros((2, 3))}
    with pytest.raises(KeyError):
        write_chili_file(path, broken)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A.h5"]


def _write_set(root: Path) -> None:
    write_chili_file(root / "a" / "A.h5", toy_record("A", 8, (7, 30, 250), seed=1))
    write_chili_file(root / "b" / "B.h5", toy_record("B", 24, (12, 199), seed=2))
    write_chili_file(root / "C.h5", toy_record("C", 20, (201,), seed=3))


def test_task_filters(tmp_path: Path) -> None:
    _write_set(tmp_path)
    ds = ChiliDataset(tmp_path)
    # order: C.h5 (201), a/A.h5 (7, 30, 250), b/B.h5 (12, 199): relative path order
    assert [r.source for r in ds.records] == ["C", "A", "A", "A", "B", "B"]
    assert ds.task_indices("pos_abs") == [1, 2, 4, 5]
    assert ds.task_indices("unit_cell_pos_frac") == [0, 1, 2, 3]  # unit cells 20, 8 (<= 20)
    assert ds.task_indices("pos_abs", max_atoms=30) == [1, 2, 4]
    with pytest.raises(InvdesignError, match="unknown target"):
        ds.task_indices("positions")


def test_index_cache_is_reused_and_invalidated_by_mtime(tmp_path: Path) -> None:
    _write_set(tmp_path)
    first = ChiliDataset(tmp_path)
    cache = tmp_path / INDEX_NAME
    assert first.index_report.indexed == 3 and first.index_report.reused == 0
    assert first.index_report.cache_path == cache and cache.is_file()
    assert set(json.loads(cache.read_text())["files"]) == {"C.h5", "a/A.h5", "b/B.h5"}
    stamp = cache.stat().st_mtime_ns

    second = ChiliDataset(tmp_path)
    assert (second.index_report.reused, second.index_report.indexed) == (3, 0)
    assert cache.stat().st_mtime_ns == stamp  # nothing changed: the cache is not even rewritten
    assert second.records == first.records and second.fingerprint == first.fingerprint

    changed = tmp_path / "b" / "B.h5"
    write_chili_file(changed, toy_record("B", 24, (12, 150, 199), seed=5))
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    third = ChiliDataset(tmp_path)
    assert (third.index_report.reused, third.index_report.indexed) == (2, 1)
    assert len(third) == 7 and third.fingerprint != first.fingerprint

    (tmp_path / "C.h5").unlink()
    fourth = ChiliDataset(tmp_path)
    assert (fourth.index_report.reused, fourth.index_report.indexed) == (2, 0)
    assert len(fourth) == 6 and "C.h5" not in json.loads(cache.read_text())["files"]


def test_index_cache_falls_back_when_the_data_folder_is_not_writable(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where a folder would be")
    user = tmp_path / "user-cache" / "index.json"
    where = save_cache([blocked / "sub" / INDEX_NAME, user], {"x.h5": {}})
    assert where == user and user.is_file()
    paths = cache_paths(tmp_path)
    assert paths[0] == tmp_path / INDEX_NAME and "invdesign" in paths[1].parts


def test_explicit_cache_dir(tmp_path: Path) -> None:
    write_chili_file(tmp_path / "data" / "A.h5", toy_record("A"))
    ds = ChiliDataset(tmp_path / "data", cache_dir=tmp_path / "cache")
    assert ds.index_report.cache_path.parent == tmp_path / "cache"
    assert not (tmp_path / "data" / INDEX_NAME).exists()
    assert ChiliDataset(tmp_path / "data", cache_dir=tmp_path / "cache").index_report.reused == 1


def test_task_arrays_equal_dataset_items_for_every_field(tmp_path: Path) -> None:
    write_official(tmp_path / "Official.h5")
    write_chili_file(tmp_path / "Ours.h5", toy_record("Ours", 6, (7, 30)))
    ds = ChiliDataset(tmp_path)
    idx = [3, 0, 2, 1]
    arrays = ds.cache_task_arrays(idx, FIELDS, cache=False)
    for k, i in enumerate(idx):
        data = ds[i]
        for name in FIELDS:
            value = (
                getattr(data, name)
                if name in ("x", "edge_index", "edge_attr", "pos_abs", "pos_frac")
                else data.y[name]
            )
            expected = value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
            got = arrays[name][k]
            assert got.dtype == expected.dtype, name
            np.testing.assert_array_equal(got, expected, err_msg=name)


def test_task_array_cache_is_reused_without_opening_hdf5(tmp_path: Path) -> None:
    _write_set(tmp_path)
    ds = ChiliDataset(tmp_path)
    idx, fields = [5, 1, 2], ["xPDF", "pos_abs", "n_atoms", "crystal_type", "edge_index"]
    arrays = ds.cache_task_arrays(idx, fields)
    assert len(list((tmp_path / ".invdesign-cache").glob("*.npz"))) == 1
    # break every data file: a second call must come from the .npz cache alone
    for path in {r.path for r in ds.records}:
        Path(path).write_bytes(b"not hdf5 any more")
    again = ds.cache_task_arrays(idx, fields)
    for f in fields:
        for a, b in zip(arrays[f], again[f], strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
    with pytest.raises(InvdesignError, match="not a readable HDF5"):
        ds.cache_task_arrays(idx, ["pos_abs"], cache=False)


def test_missing_patterns_are_absent_from_y_and_empty_in_task_arrays(tmp_path: Path) -> None:
    record = toy_record("NoPatterns", 4, (7,))
    record.particles[0].patterns = {}
    write_chili_file(tmp_path / "NoPatterns.h5", record)
    ds = ChiliDataset(tmp_path)
    assert "xPDF" not in ds[0].y and ds[0].y["n_atoms"] == 7
    assert ds.cache_task_arrays([0], ["xPDF"], cache=False)["xPDF"][0].shape == (2, 0)


def test_unknown_task_field(tmp_path: Path) -> None:
    write_chili_file(tmp_path / "A.h5", toy_record("A"))
    with pytest.raises(InvdesignError, match=r"unknown field\(s\) colour"):
        ChiliDataset(tmp_path).cache_task_arrays([0], ["colour"], cache=False)


# ------------------------------------------------------------------ errors: one line, the file
def _one_line_error(root: Path) -> str:
    with pytest.raises(InvdesignError) as info:
        ChiliDataset(root)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_error_for_missing_folder(tmp_path: Path) -> None:
    message = _one_line_error(tmp_path / "nowhere")
    assert message == f"{tmp_path / 'nowhere'}: data folder does not exist"


def test_error_for_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no data here")
    expected = f"{tmp_path}: no CHILI *.h5 files in this folder or below it"
    assert _one_line_error(tmp_path) == expected


def test_error_for_file_missing_a_group(tmp_path: Path) -> None:
    write_official(tmp_path / "NoLabels.h5", skip="GlobalLabels")
    message = _one_line_error(tmp_path)
    assert message.startswith(str(tmp_path / "NoLabels.h5")) and "'/GlobalLabels'" in message


def test_error_for_file_that_is_not_hdf5(tmp_path: Path) -> None:
    write_chili_file(tmp_path / "Good.h5", toy_record("Good"))
    (tmp_path / "Broken.h5").write_text("this is text, not HDF5")
    message = _one_line_error(tmp_path)
    assert message.startswith(f"{tmp_path / 'Broken.h5'}: not a readable HDF5 file")


def test_indexing_keeps_finished_files_when_a_later_file_is_bad(tmp_path: Path) -> None:
    write_chili_file(tmp_path / "A.h5", toy_record("A"))
    (tmp_path / "B.h5").write_text("not yet a CHILI file")
    _one_line_error(tmp_path)
    assert set(json.loads((tmp_path / INDEX_NAME).read_text())["files"]) == {"A.h5"}
    write_chili_file(tmp_path / "B.h5", toy_record("B"))
    report = ChiliDataset(tmp_path).index_report
    assert (report.reused, report.indexed) == (1, 1)
