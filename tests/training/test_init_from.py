"""`trainer.init_from`: a run starts from a checkpoint's weights (fine-tuning, training on);
a checkpoint of another generator or other widths is refused in one line before training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from invdesign.cli.main import main
from invdesign.data.hdf5_io import write_chili_file
from invdesign.data.toy import toy_record
from invdesign.generators.checkpoint import load_checkpoint

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "experiment"
MLP = CONFIGS / "mlp_xpdf_pos_abs.yaml"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for k in range(6):
        write_chili_file(root / f"Toy{k}.h5",
                         toy_record(name=f"Toy{k}", n_unit_cell=4 + k, particle_atoms=(7, 12),
                                    seed=k))
    return root


@pytest.fixture(scope="module")
def source(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "source"
    code = main(["train", "--config", str(MLP), "--data", str(data), "--out", str(out),
                 "trainer.max_epochs=1", "generator.hparams.hidden=16", "seed=1"])
    assert code == 0
    return out


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(folder).state_dict()


def test_a_run_with_lr_zero_keeps_the_source_weights(data, source, tmp_path) -> None:
    """With a vanishing learning rate (Adam moves each weight by about lr per step) the trained
    weights are the source's, not the fresh ones of another seed (the same run without
    init_from, checked too)."""
    common = ["train", "--config", str(MLP), "--data", str(data), "trainer.max_epochs=1",
              "generator.hparams.hidden=16", "seed=2", "optimizer.lr=1e-12"]
    assert main([*common, "--out", str(tmp_path / "fresh")]) == 0
    assert main([*common, "--out", str(tmp_path / "on"), f"trainer.init_from={source}"]) == 0
    src, fresh, on = weights(source), weights(tmp_path / "fresh"), weights(tmp_path / "on")
    assert all(torch.allclose(src[k], on[k], rtol=0, atol=1e-9) for k in src)
    assert not all(torch.allclose(src[k], fresh[k], rtol=0, atol=1e-3) for k in src)


def test_other_widths_are_refused_in_one_line(data, source, tmp_path, capsys) -> None:
    code = main(["train", "--config", str(MLP), "--data", str(data), "--out",
                 str(tmp_path / "wide"), "trainer.max_epochs=1", "generator.hparams.hidden=32",
                 f"trainer.init_from={source}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "other weights than this run's network" in err[0]
    assert str(source) in err[0] and not (tmp_path / "wide").exists()


def test_another_generator_is_refused(data, source, tmp_path, capsys) -> None:
    vae = CONFIGS / "vae_xpdf_unit_cell.yaml"
    code = main(["train", "--config", str(vae), "--data", str(data), "--out",
                 str(tmp_path / "vae"), "trainer.max_epochs=1", f"trainer.init_from={source}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "checkpoint is for task" in err[0] or "is a mlp checkpoint" in err[0]
