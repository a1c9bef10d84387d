"""The output discipline (`invdesign.io.outputs`) on its own and through `screen` and `evaluate`:
resolved paths, no overlap with inputs, no special files, a lock, `--force`, one-line errors."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

import pytest

from invdesign.cli.main import main
from invdesign.core.errors import InvdesignError
from invdesign.io import outputs
from invdesign.io.outputs import Output, locked_folder

LEFTOVER_SUFFIXES = (".part", ".partial", ".lock", ".old")


def checksums(folder: Path) -> dict[str, str]:
    """sha256 of every regular file under `folder` by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary files/folders and locks the discipline creates."""
    return sorted(p.name for p in folder.rglob(".*") if p.name.endswith(LEFTOVER_SUFFIXES)
                  or ".old" in p.name)


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("invdesign: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def candidates(tmp_path: Path) -> Path:
    folder = tmp_path / "cands"
    folder.mkdir()
    (folder / "input.xyz").write_text("1\n\nCu 0 0 0\n")
    (folder / "other.xyz").write_text("1\n\nAu 0 0 0\n")
    return folder


# -------------------------------------------------------------------------------- the module
def test_commit_swaps_in_a_file_and_discard_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "a.csv"
    with Output(target) as out:
        out.tmp.write_text("new")
        assert not target.exists() and (tmp_path / ".a.csv.lock").exists()
        assert out.commit() == target
    assert target.read_text() == "new" and leftovers(tmp_path) == []
    with pytest.raises(InvdesignError, match="exists; use --force"):
        Output(target)
    with pytest.raises(RuntimeError), Output(target, force=True) as out:
        out.tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]


def test_folder_output_keeps_the_old_one_until_commit(tmp_path: Path) -> None:
    old = tmp_path / "run"
    old.mkdir()
    (old / "keep.txt").write_text("old")
    with Output(old, force=True, folder=True) as out:
        (out.tmp / "new.txt").write_text("new")
        assert checksums(old) == {"keep.txt": hashlib.sha256(b"old").hexdigest()}
        out.commit()
    assert sorted(p.name for p in old.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_an_empty_folder_needs_no_force(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with Output(tmp_path / "empty", folder=True) as out:
        (out.tmp / "x").write_text("x")
        out.commit()
    assert (tmp_path / "empty" / "x").read_text() == "x"


def test_overlap_with_inputs_is_checked_on_resolved_paths(tmp_path: Path) -> None:
    same = tmp_path / "same"
    same.mkdir()
    (same / "x.gr").write_text("1 2\n")
    (tmp_path / "lnk").symlink_to(same)
    cases = [
        (same, [tmp_path / "lnk" / "x.gr"], "holds the input"),  # through a symlink
        (same / ".." / "same", [same / "x.gr"], "holds the input"),  # through '..'
        (tmp_path / "lnk" / "x.gr", [same / "x.gr"], "is the input"),
        (same / "sub" / "o.csv", [tmp_path / "lnk"], "inside the input folder"),
    ]
    for out, inputs, message in cases:
        with pytest.raises(InvdesignError, match=message):
            Output(out, inputs, force=True, folder=out.suffix == "")
    assert checksums(tmp_path) == {"same/x.gr": hashlib.sha256(b"1 2\n").hexdigest()}
    assert leftovers(tmp_path) == []


def test_current_folder_is_never_an_output(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f").write_text("f")
    for out in (".", ".."):
        with pytest.raises(InvdesignError, match="holds the current folder"):
            Output(out, force=True, folder=True)
    assert (tmp_path / "f").read_text() == "f"


def test_special_files_are_refused_and_never_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(InvdesignError, match="is a FIFO"):
        Output(fifo, force=True)
    with pytest.raises(InvdesignError, match="is a device"):
        Output("/dev/null", force=True)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    from invdesign.io.atomic import atomic_write_text

    with pytest.raises(InvdesignError, match="not a regular file"):
        atomic_write_text(fifo, "x")  # the low-level writer refuses too
    assert stat.S_ISFIFO(fifo.stat().st_mode) and leftovers(tmp_path) == []


def test_a_second_writer_of_the_same_output_fails_at_once(tmp_path: Path) -> None:
    target = tmp_path / "run"
    first = Output(target, folder=True)
    with pytest.raises(InvdesignError, match="another run is writing this --out"):
        Output(target, folder=True)
    with pytest.raises(InvdesignError, match="another run is writing"), locked_folder(target):
        pass
    (first.tmp / "a").write_text("a")
    first.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # lock removed
    with locked_folder(target) as folder:  # free again
        assert folder == target


def test_stale_lock_file_of_a_killed_run_is_taken_over(tmp_path: Path) -> None:
    (tmp_path / ".out.csv.lock").write_text("")  # left by SIGKILL: a file without a lock
    with Output(tmp_path / "out.csv") as out:
        out.tmp.write_text("x")
        out.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_too_long_and_unwritable_paths_are_one_line(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(InvdesignError, match=r"name in the path is too long \(300 bytes"):
        Output(tmp_path / ("a" * 300) / "x.csv")
    (tmp_path / "file").write_text("f")
    with pytest.raises(InvdesignError, match="cannot write the output"):
        Output(tmp_path / "file" / "x.csv")

    def denied(*_args, **_kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path))

    monkeypatch.setattr(outputs, "_Lock", denied)
    with pytest.raises(InvdesignError, match=r"cannot write the output \(Permission denied\)"):
        Output(tmp_path / "y.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_full_disk_while_writing_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InvdesignError, match=r"y.csv: cannot write the output \(No space"), \
            Output(tmp_path / "y.csv") as out:
        out.tmp.write_text("partial")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------------------------- through the CLI
def test_screen_out_over_an_input_is_refused(candidates: Path, tmp_path: Path, capsys) -> None:
    before = checksums(candidates)
    code = main(["screen", str(candidates), "--out", str(candidates / "input.xyz"), "--force"])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and f"--out is inside the input folder {candidates}" in line
    assert checksums(candidates) == before and leftovers(tmp_path) == []


def test_screen_out_to_a_fifo_or_device_is_refused(candidates: Path, tmp_path: Path,
                                                   capsys) -> None:
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    for out in (fifo, Path("/dev/null")):
        code = main(["screen", str(candidates), "--out", str(out), "--force"])
        line = one_error_line(capsys.readouterr().err)
        assert code == 2 and ("is a FIFO" in line or "is a device" in line)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert leftovers(tmp_path) == []


def test_screen_existing_csv_needs_force(candidates: Path, tmp_path: Path, capsys) -> None:
    old = tmp_path / "pred.csv"
    old.write_text("old results\n")
    code = main(["screen", str(candidates), "--out", str(old)])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and "use --force" in line and old.read_text() == "old results\n"
    long = tmp_path / ("p" * 300 + ".csv")
    assert main(["screen", str(candidates), "--out", str(long)]) == 2
    assert "too long" in one_error_line(capsys.readouterr().err)
    assert leftovers(tmp_path) == []


def test_evaluate_out_refuses_fifo_and_data_folder(tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.h5").write_bytes(b"not read: refused before")
    fifo = tmp_path / "m.json"
    os.mkfifo(fifo)
    for out, message in ((fifo, "is a FIFO"), (data / "m.json", "inside the input folder")):
        code = main(["evaluate", "--checkpoint", str(tmp_path / "ck"), "--data", str(data),
                     "--out", str(out)])
        assert code == 2 and message in one_error_line(capsys.readouterr().err)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and sorted(p.name for p in data.iterdir()) == ["a.h5"]
