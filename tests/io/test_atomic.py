"""Atomic writes: umask-derived modes, nothing left behind on errors, replaced only on success."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from invdesign.io import atomic
from invdesign.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text, make_temp_dir

UMASKS = [0o022, 0o027]


@pytest.fixture(params=UMASKS, ids=["022", "027"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run the test under the given process umask (restored afterwards)."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------------- modes
def test_text_and_bytes_get_the_umask_mode(tmp_path: Path, umask: int) -> None:
    text = atomic_write_text(tmp_path / "a.json", '{"x": "±"}\n')
    raw = atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    expected = {0o022: 0o644, 0o027: 0o640}[umask]  # mkstemp would give 0o600
    assert mode(text) == mode(raw) == expected
    assert text.read_text(encoding="utf-8") == '{"x": "±"}\n'
    assert raw.read_bytes() == b"\x00\x01"
    assert names(tmp_path) == ["a.json", "b.bin"]


def test_libraries_writing_by_file_name_get_the_umask_mode(tmp_path: Path, umask: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from safetensors.torch import load_file, save_file

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    with atomic_path(tmp_path / "plot.png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    with atomic_path(tmp_path / "w.safetensors") as tmp:
        save_file({"w": torch.arange(3.0)}, str(tmp))
    with atomic_path(tmp_path / "a.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, a=np.arange(4))

    assert names(tmp_path) == ["a.npz", "plot.png", "w.safetensors"]
    for path in tmp_path.iterdir():
        assert mode(path) == 0o666 & ~umask
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load_file(tmp_path / "w.safetensors")["w"].tolist() == [0.0, 1.0, 2.0]
    with np.load(tmp_path / "a.npz") as z:
        assert z["a"].tolist() == [0, 1, 2, 3]


def test_temp_dir_gets_the_umask_mode(tmp_path: Path, umask: int) -> None:
    folder = make_temp_dir(tmp_path / "run")
    assert folder.parent == tmp_path and folder.name.startswith(".run.")
    assert folder.name.endswith(".partial") and list(folder.iterdir()) == []
    assert mode(folder) == 0o777 & ~umask  # 0755, 0750; mkdtemp would give 0700


def test_writers_of_the_package_give_the_umask_mode(tmp_path: Path, umask: int) -> None:
    from invdesign.cli.evaluate import write_json
    from invdesign.data.build.runner import Outcome, write_report
    from invdesign.data.index import save_cache
    from invdesign.io.fgr import write_fgr
    from invdesign.pipeline.outputs import OutputFolder
    from invdesign.testing import dimer

    r = np.linspace(1.0, 2.0, 5)
    written = [
        write_fgr(tmp_path / "fit.fgr", r, np.sin(r), np.cos(r)),
        write_report(tmp_path / "build_report.tsv", [Outcome("a", "written")]),
        save_cache([tmp_path / "index.json"], {"a.h5": {"stat": [1, 2]}}),
    ]
    write_json(tmp_path / "metrics.json", {"n_samples": 3})
    written.append(tmp_path / "metrics.json")
    with OutputFolder(tmp_path / "run") as out:
        out.write_structure("candidate_000", dimer(1.5))
        run = out.commit()
    written.append(run / "candidate_000.xyz")

    assert names(tmp_path) == ["build_report.tsv", "fit.fgr", "index.json", "metrics.json", "run"]
    assert names(run) == ["candidate_000.xyz"]
    for path in written:
        assert mode(path) == 0o666 & ~umask, path.name
    assert mode(run) == 0o777 & ~umask
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"n_samples": 3}


# ------------------------------------------------------------------------ success and errors
def test_success_replaces_the_old_file_only_at_the_end(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.txt.")
        assert tmp.name.endswith(".part") and tmp.read_bytes() == b""
        tmp.write_text("new")
        assert target.read_text() == "old"  # still the old content while writing
    assert target.read_text() == "new"
    assert names(tmp_path) == ["out.txt"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_error_inside_keeps_the_old_file_and_leaves_no_temp_file(
    tmp_path: Path, error: type[BaseException]
) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(error), atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        raise error("stop")
    assert target.read_text() == "old"
    assert names(tmp_path) == ["out.txt"]


def test_error_inside_without_old_file_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "new.bin") as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("stop")
    assert names(tmp_path) == []


def test_failed_text_encoding_keeps_the_old_file(tmp_path: Path) -> None:
    target = atomic_write_text(tmp_path / "a.txt", "old")
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(target, "caf\udce9")  # a lone surrogate cannot be encoded
    assert target.read_text() == "old"
    assert names(tmp_path) == ["a.txt"]


def test_missing_folder_is_an_oserror_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write_text(tmp_path / "missing" / "a.txt", "x")
    assert names(tmp_path) == []


def test_taken_temporary_name_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = iter(["0" * 16, "0" * 16, "1" * 16])
    monkeypatch.setattr(atomic.secrets, "token_hex", lambda n: next(tokens))
    taken = tmp_path / f".a.txt.{'0' * 16}.part"
    taken.write_text("someone else's")
    atomic_write_text(tmp_path / "a.txt", "mine")
    assert (tmp_path / "a.txt").read_text() == "mine"
    assert taken.read_text() == "someone else's"
    assert names(tmp_path) == [taken.name, "a.txt"]
