"""Resumable, atomic, deterministic builds; bad builder input through the CLI; the clusters
builder."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from invdesign.cli.main import main
from invdesign.data.build.clusters import (
    ClusterSource,
    build_cluster_source,
    cluster_sources,
    polyhedra,
)
from invdesign.data.build.runner import REPORT_NAME, broken_reason
from invdesign.data.hdf5_io import read_chili_file
from invdesign.testing import make_tiny_chili3k


def h5_contents(path: Path) -> dict[str, bytes]:
    """Every dataset of an HDF5 file by path, as bytes (contents, not timestamps)."""
    out: dict[str, bytes] = {}
    with h5py.File(path, "r") as h5:
        h5.visititems(
            lambda name, obj: (
                out.__setitem__(name, np.asarray(obj[()]).tobytes())
                if isinstance(obj, h5py.Dataset)
                else None
            )
        )
    return out


def folder_contents(folder: Path) -> dict[str, dict[str, bytes]]:
    return {p.name: h5_contents(p) for p in sorted(folder.glob("*.h5"))}


def test_interrupted_build_resumes_to_identical_dataset(tmp_path) -> None:
    full = make_tiny_chili3k(tmp_path / "full", metals=["Zn"], radii=(3.0,))
    resumed = make_tiny_chili3k(tmp_path / "resumed", metals=["Zn"], radii=(3.0,))
    # Simulate an interruption: one output lost mid-write, its temporary file left behind.
    victim = resumed / "Wurtzite_ZnO.h5"
    victim.unlink()
    stray = resumed / ".Wurtzite_ZnO.h5.abc123.part"
    stray.write_bytes(b"half-written")
    kept_mtime = (resumed / "RockSalt_ZnO.h5").stat().st_mtime_ns
    make_tiny_chili3k(resumed, metals=["Zn"], radii=(3.0,))
    assert not stray.exists() and victim.exists()
    assert (resumed / "RockSalt_ZnO.h5").stat().st_mtime_ns == kept_mtime  # skipped, not rebuilt
    assert folder_contents(resumed) == folder_contents(full)
    report = (resumed / REPORT_NAME).read_text()
    assert "RockSalt_ZnO\texists" in report and "Wurtzite_ZnO\twritten" in report


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["chili3k", "--metals", "Xx"], "unknown CHILI-3K metal 'Xx'"),
        (
            ["chili3k", "--metals", "Zn", "--crystal-types", "Spinel"],
            "unknown crystal type 'Spinel'",
        ),
        (["chili3k", "--metals", "Zn", "--radii", "-5"], "radii must be in (0, 100]"),
        (["chili3k", "--metals", "Zn", "--radii", "0"], "radii must be in (0, 100]"),
        (["chili3k", "--metals", "Zn", "--radii", "5", "10", "5"], "particle radii repeat"),
        (["clusters", "--metals", "Au", "--radii", "3", "3"], "particle radii repeat"),
        (["cifs", "--cif-dir", ".", "--radii", "-1"], "radii must be in (0, 100]"),
        (["chili3k", "--metals", "Zn", "--workers", "0"], "--workers must be at least 1"),
        (["clusters", "--metals", "Xx"], "unknown cluster metal 'Xx'"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, needle) -> None:
    code = main(["data", "build", *argv, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and needle in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not list((tmp_path).glob("out/*.h5"))


def test_killed_build_leaves_no_broken_file_and_resumes_to_identical_dataset(tmp_path) -> None:
    """A real interruption: the CLI build is SIGKILLed as soon as its first file exists."""
    types = ["RockSalt", "Wurtzite", "CaesiumChloride", "Rutile"]
    argv = ["data", "build", "chili3k", "--metals", "Zn", "--crystal-types", *types]
    argv += ["--radii", "3", "--no-progress", "--out", str(tmp_path / "killed")]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "invdesign.cli.main", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while not list(killed.glob("*.h5")):
            assert proc.poll() is None, "the build ended before its first file appeared"
            assert time.monotonic() < deadline, "no file after 300 s"
            time.sleep(0.01)
    finally:
        proc.kill()
        proc.wait()
    finished = sorted(killed.glob("*.h5"))
    assert 1 <= len(finished) < len(types), "the build was not interrupted"
    for path in finished:
        read_chili_file(path)  # every .h5 left behind is complete
    assert main(argv) == 0
    full = make_tiny_chili3k(tmp_path / "full", metals=["Zn"], crystal_types=types, radii=(3.0,))
    assert folder_contents(killed) == folder_contents(full)
    assert not list(killed.glob(".*.part"))
    report = (killed / REPORT_NAME).read_text()
    assert report.count("\texists") == len(finished)
    assert report.count("\twritten") == len(types) - len(finished)


def test_cli_empty_and_unreadable_cif_folders(tmp_path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (
        main(["data", "build", "cifs", "--cif-dir", str(empty), "--out", str(tmp_path / "o1")]) == 2
    )
    assert "no *.cif files" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.cif").write_text("garbage\nloop_\n")
    code = main(
        [
            "data",
            "build",
            "cifs",
            "--cif-dir",
            str(bad),
            "--out",
            str(tmp_path / "o2"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "no usable CIF" in err and "broken: unreadable CIF" in err
    assert err.count("\n") == 1
    assert (
        main(
            [
                "data",
                "build",
                "cifs",
                "--cif-dir",
                str(tmp_path / "missing"),
                "--out",
                str(tmp_path / "o3"),
            ]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err


def test_polyhedra_magic_numbers_centred() -> None:
    counts = [p.n_atoms for p in polyhedra("Icosahedron", "Au")]
    assert counts == [13, 55, 147, 309, 561, 923]
    for p in polyhedra("Octahedron", "Pt")[:3]:
        assert np.linalg.norm(p.positions, axis=1).min() < 1e-9


def test_cluster_sources_and_sphere_file(tmp_path) -> None:
    names = [s.name for s in cluster_sources(["Au", "Fe"])]
    assert names == [
        "fcc_Au",
        "bcc_Fe",
        "sc_Fe",
        "sc_Au",
        "Icosahedron_Au",
        "Decahedron_Au",
        "Octahedron_Au",
    ]
    build_cluster_source(ClusterSource("bcc", "Fe", radii=(3.0, 5.0), simulate=False), tmp_path)
    record = read_chili_file(tmp_path / "bcc_Fe.h5")
    assert record.space_group_number == 229 and record.crystal_type == "bcc"
    # bcc shells at a * (sqrt(3)/2, 1, sqrt(2), sqrt(11)/2, sqrt(3)) = 2.49 .. 4.97 Å
    assert [p.graph.n_atoms for p in record.particles] == [1 + 8 + 6, 1 + 8 + 6 + 12 + 24 + 8]


def _never_called(task, out_dir):
    raise AssertionError("work ran although the output exists")


def test_worker_skips_output_that_appeared_after_queueing(tmp_path) -> None:
    from invdesign.data.build.chili3k import Chili3kSource
    from invdesign.data.build.runner import _safe

    source = Chili3kSource("RockSalt", "Zn")
    (tmp_path / f"{source.name}.h5").write_bytes(b"kept")
    assert _safe(_never_called, source, tmp_path).status == "exists"
    assert (tmp_path / f"{source.name}.h5").read_bytes() == b"kept"
    assert _safe(_never_called, Chili3kSource("Wurtzite", "Zn"), tmp_path).status == "failed"


def test_rerun_rebuilds_a_truncated_file_and_says_so(tmp_path, capsys) -> None:
    """A rerun over a truncated .h5 used to count it as 'exists' and never rebuild it."""
    out = make_tiny_chili3k(tmp_path / "out", metals=["Zn"], crystal_types=["RockSalt", "Wurtzite"],
                            radii=(3.0,))
    good = folder_contents(out)
    victim, other = out / "RockSalt_ZnO.h5", out / "Wurtzite_ZnO.h5"
    kept_mtime = other.stat().st_mtime_ns
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    assert broken_reason(victim).startswith("not a readable HDF5 file")
    code = main(["data", "build", "chili3k", "--metals", "Zn", "--crystal-types", "RockSalt",
                 "Wurtzite", "--radii", "3", "--out", str(out), "--no-progress"])
    printed = capsys.readouterr()
    assert code == 0 and "Traceback" not in printed.err
    assert "1 written (1 rebuilt over a broken file), 1 exists" in printed.out
    assert folder_contents(out) == good and other.stat().st_mtime_ns == kept_mtime
    report = (out / REPORT_NAME).read_text()
    assert "RockSalt_ZnO\twritten\trebuilt: not a readable HDF5 file" in report
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no lock or .part left


def test_a_file_missing_a_group_is_broken(tmp_path) -> None:
    out = make_tiny_chili3k(tmp_path / "out", metals=["Zn"], crystal_types=["RockSalt"],
                            radii=(3.0,), simulate=False)
    path = out / "RockSalt_ZnO.h5"
    assert broken_reason(path) is None
    with h5py.File(path, "a") as h5:
        del h5["UnitCellGraph"]["AbsoluteCoordinates"]
    assert broken_reason(path) == "not a CHILI file: missing '/UnitCellGraph/AbsoluteCoordinates'"


def test_concurrent_build_and_bad_out_are_one_line(tmp_path, capsys) -> None:
    from invdesign.io.outputs import locked_folder

    argv = ["data", "build", "clusters", "--metals", "Au", "--radii", "3", "--no-progress",
            "--out"]
    with locked_folder(tmp_path / "out"):  # another build is running
        assert main([*argv, str(tmp_path / "out")]) == 2
    (tmp_path / "file").write_text("keep")
    assert main([*argv, str(tmp_path / "file")]) == 2
    assert main([*argv, str(tmp_path / ("o" * 300))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "Traceback" not in "".join(err)
    assert "another run is writing this --out" in err[0]
    assert "exists and is not a folder" in err[1] and "too long" in err[2]
    assert (tmp_path / "file").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "out"]
    assert list((tmp_path / "out").iterdir()) == []
