"""CHILI Table 1 statistics and `invdesign data info` (including its errors: one line, exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from invdesign.cli.main import main
from invdesign.data.dataset import ChiliDataset
from invdesign.data.hdf5_io import write_chili_file
from invdesign.data.stats import dataset_stats
from invdesign.data.toy import toy_record


def _write_set(root: Path) -> None:
    # toy graphs are rings: n atoms -> 2 n directed edges
    write_chili_file(root / "A.h5", toy_record("A", 8, (7, 30, 250), space_group_number=225))
    write_chili_file(root / "B.h5", toy_record("B", 4, (12, 199), space_group_number=194))


def test_stats_from_the_index(tmp_path: Path) -> None:
    _write_set(tmp_path)
    stats = dataset_stats(ChiliDataset(tmp_path))
    assert (stats.n_sources, stats.n_graphs) == (2, 5)
    assert sum(stats.split.values()) == 5 and stats.split["test"] == 1  # ceil(0.1 * 5)
    assert (stats.nodes.min, stats.nodes.median, stats.nodes.max) == (7, 30.0, 250)
    assert stats.nodes.total == 7 + 30 + 250 + 12 + 199
    assert (stats.edges.min, stats.edges.max, stats.edges.total) == (14, 500, 2 * stats.nodes.total)
    assert stats.crystal_systems["Cubic"] == 3 and stats.crystal_systems["Hexagonal"] == 2
    assert list(stats.crystal_systems)[:7] == [
        "Triclinic",
        "Monoclinic",
        "Orthorhombic",
        "Tetragonal",
        "Trigonal",
        "Hexagonal",
        "Cubic",
    ]


def test_cli_prints_the_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _write_set(tmp_path / "data")
    out_json = tmp_path / "out" / "stats.json"
    assert main(["data", "info", str(tmp_path / "data"), "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "# of graphs" in text and "# of nodes" in text and "Cubic" in text
    payload = json.loads(out_json.read_text())
    assert payload["n_graphs"] == 5 and payload["nodes"]["max"] == 250
    assert payload["crystal_systems"]["Hexagonal"] == 2


def _cli_error(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("invdesign: error: ")
    assert "Traceback" not in err
    return err


def test_cli_error_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    err = _cli_error(["data", "info", str(tmp_path / "nope")], capsys)
    assert str(tmp_path / "nope") in err and "does not exist" in err


def test_cli_error_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    err = _cli_error(["data", "info", str(tmp_path)], capsys)
    assert str(tmp_path) in err and "no CHILI *.h5 files" in err


def test_cli_error_file_missing_a_group(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import h5py

    with h5py.File(tmp_path / "Half.h5", "w") as f:
        f.create_group("GlobalLabels")
    err = _cli_error(["data", "info", str(tmp_path)], capsys)
    assert str(tmp_path / "Half.h5") in err and "missing" in err


def test_cli_error_not_hdf5(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "fake.h5").write_text("plain text")
    err = _cli_error(["data", "info", str(tmp_path)], capsys)
    assert err.startswith(f"invdesign: error: {tmp_path / 'fake.h5'}: not a readable HDF5")
