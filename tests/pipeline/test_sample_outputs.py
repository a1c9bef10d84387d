"""`invdesign sample --out`: never over an input (symlinks and '..' resolved), one run per output,
SIGTERM/SIGINT clean up; each refusal is one line, exit 2, inputs unchanged, nothing left behind."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from invdesign.cli.main import main
from invdesign.io.outputs import Output


def checksums(folder: Path) -> dict[str, str]:
    """sha256 of every regular file under `folder` by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary files/folders, backups and locks the output discipline creates."""
    return sorted(p.name for p in folder.rglob(".*")
                  if p.name.endswith((".part", ".partial", ".lock")) or ".old" in p.name)


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("invdesign: error: "), err
    assert "Traceback" not in err
    return lines[0]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ZNO = EXAMPLES / "ZnO_wurtzite_1nm.gr"


@pytest.fixture
def same2(tmp_path: Path) -> Path:
    """`same2/x.gr` (an input) and `lnk` -> `same2`."""
    folder = tmp_path / "same2"
    folder.mkdir()
    shutil.copy(ZNO, folder / "x.gr")
    (tmp_path / "lnk").symlink_to(folder)
    return folder


def run_sample(tiny_checkpoint: Path, pdf: Path, out: Path | str, *extra: str) -> int:
    return main(["sample", "--pdf", str(pdf), "--checkpoint", str(tiny_checkpoint), "--n", "1",
                 "--out", str(out), *extra])


@pytest.mark.parametrize("how", ["symlink", "dotdot"])
def test_out_holding_the_input_is_refused_even_with_force(tmp_path, same2, tiny_checkpoint,
                                                          capsys, how) -> None:
    before = checksums(tmp_path)
    if how == "symlink":  # --pdf lnk/x.gr --out same2 --force: used to delete x.gr
        code = run_sample(tiny_checkpoint, tmp_path / "lnk" / "x.gr", same2, "--force")
    else:  # --out same2/../same2 --force: used to move the input folder aside, two tracebacks
        code = run_sample(tiny_checkpoint, same2 / "x.gr", f"{same2}/../same2", "--force")
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and f"--out holds the input {tmp_path if how == 'symlink' else same2}" in line
    assert checksums(tmp_path) == before and leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lnk", "same2"]


def test_out_over_the_checkpoint_is_refused(tmp_path, tiny_checkpoint, capsys) -> None:
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint.parent, ckpt)
    before = checksums(ckpt)
    code = run_sample(ckpt, ZNO, ckpt, "--force")
    assert code == 2 and f"--out is the input {ckpt}" in one_error_line(capsys.readouterr().err)
    code = run_sample(ckpt / tiny_checkpoint.name, ZNO, ckpt, "--force")
    assert code == 2 and "--out holds the input" in one_error_line(capsys.readouterr().err)
    assert checksums(ckpt) == before and leftovers(tmp_path) == []


def test_second_run_to_the_same_new_out_fails(tmp_path, tiny_checkpoint, capsys) -> None:
    out = tmp_path / "run"
    first = Output(out, folder=True)  # a first run, still writing
    (first.tmp / "candidate_000.xyz").write_text("first run's")
    code = run_sample(tiny_checkpoint, ZNO, out)
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and "another run is writing this --out" in line
    first.commit()
    assert checksums(out) == {"candidate_000.xyz": checksums(tmp_path)["run/candidate_000.xyz"]}
    code = run_sample(tiny_checkpoint, ZNO, out)  # after it: the output exists, no --force
    assert code == 2 and "use --force" in one_error_line(capsys.readouterr().err)
    assert (out / "candidate_000.xyz").read_text() == "first run's"
    assert leftovers(tmp_path) == []


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_sample_removes_the_partial_folder(tmp_path, tiny_checkpoint, capsys,
                                                         signum) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "old.txt").write_text("previous run")
    pdf = tmp_path / "x.gr"
    shutil.copy(ZNO, pdf)
    before = checksums(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "invdesign.cli.main", "sample", "--pdf", str(pdf), "--checkpoint",
         str(tiny_checkpoint), "--n", "400", "--out", str(out), "--force"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".run.*.partial/candidate_*.xyz")):  # mid-run, files written
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    # a second run to the same --out while the first is writing fails at once (the lock)
    assert run_sample(tiny_checkpoint, pdf, out, "--force") == 2
    assert "another run is writing this --out" in one_error_line(capsys.readouterr().err)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "invdesign: interrupted" and "Traceback" not in err
    assert leftovers(tmp_path) == [] and checksums(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "x.gr"]
    assert os.listdir(out) == ["old.txt"]
