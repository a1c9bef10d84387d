"""`invdesign train --out`: an existing checkpoint is replaced only with `--force`, and only by a
complete new one (the model card inside); refusals are one line, before training starts."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from invdesign.cli.main import main
from invdesign.data.hdf5_io import write_chili_file
from invdesign.data.toy import toy_record

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
CONFIG = next(p for p in (CONFIGS / "experiment" / "mlp_xpdf_pos_abs.yaml",
                          CONFIGS / "mlp_xpdf_pos_abs.yaml") if p.exists())
FILES = ("model.safetensors", "metrics.json", "config.yaml", "MODEL_CARD.md")


def checksums(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for k in range(6):
        write_chili_file(root / f"Toy{k}.h5",
                         toy_record(name=f"Toy{k}", n_unit_cell=4 + k, particle_atoms=(7, 12),
                                    seed=k))
    return root


@pytest.fixture
def old_checkpoint(tmp_path: Path) -> Path:
    out = tmp_path / "ckpt"
    out.mkdir()
    for name in FILES:
        (out / name).write_text(f"old {name}\n")
    return out


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("invdesign: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_existing_checkpoint_needs_force(data, old_checkpoint, tmp_path, capsys) -> None:
    before = checksums(old_checkpoint)
    code = main(["train", "--config", str(CONFIG), "--data", str(data), "--out",
                 str(old_checkpoint), "trainer.max_epochs=1"])
    line = one_error_line(capsys.readouterr().err)  # before training: no epoch lines
    assert code == 2 and "output folder exists; use --force" in line
    assert checksums(old_checkpoint) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "data"]


def test_out_inside_the_data_folder_is_refused(data, tmp_path, capsys) -> None:
    code = main(["train", "--config", str(CONFIG), "--data", str(data), "--out",
                 str(data / "run"), "trainer.max_epochs=1"])
    assert code == 2 and "inside the input folder" in one_error_line(capsys.readouterr().err)
    assert sorted(p.name for p in data.iterdir()) == [f"Toy{k}.h5" for k in range(6)]


def test_failed_forced_run_keeps_the_old_checkpoint(data, old_checkpoint, tmp_path,
                                                    capsys) -> None:
    extra = tmp_path / "extra"
    write_chili_file(extra / "Other.h5", toy_record(name="Other", particle_atoms=(6,), seed=7))
    before = checksums(old_checkpoint)
    code = main(["train", "--config", str(CONFIG), "--data", str(data), "--out",
                 str(old_checkpoint), "--force", f"data.augment=[{extra}]",
                 "trainer.max_epochs=1"])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and "comes from a training source" in line
    assert checksums(old_checkpoint) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "data", "extra"]


def test_forced_run_replaces_all_four_files(data, old_checkpoint, tmp_path, capsys) -> None:
    code = main(["train", "--config", str(CONFIG), "--data", str(data), "--out",
                 str(old_checkpoint), "--force", "trainer.max_epochs=1"])
    assert code == 0
    assert sorted(p.name for p in old_checkpoint.iterdir()) == sorted(FILES)
    assert all(not (old_checkpoint / n).read_bytes().startswith(b"old ") for n in FILES)
    assert "CHILI MAE" in (old_checkpoint / "MODEL_CARD.md").read_text()
    assert f"model card: {old_checkpoint / 'MODEL_CARD.md'}" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "data"]
