"""`trainer.init_from`: a run starts from a checkpoint's weights (fine-tuning, training on);
a checkpoint of another generator or other widths is refused in one line before training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from invdesign.cli.main import main
from invdesign.core.tasks import TaskSpec
from invdesign.data.hdf5_io import write_chili_file
from invdesign.data.toy import toy_record
from invdesign.generators.base import build_generator
from invdesign.generators.checkpoint import load_checkpoint
from invdesign.training.warm_start import vocabulary_axes, vocabulary_rows

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


def with_calcium(record):
    """`record` with its Mg atoms made Ca (species read from the first node feature)."""
    for graph in [record.unit_cell, *(p.graph for p in record.particles)]:
        z = graph.node_features[:, 0]
        z[z == 12] = 20
    record.elements_present = np.array([8, 20])
    return record


def test_a_broader_vocabulary_keeps_the_shared_rows(data, source, tmp_path) -> None:
    """Training data with an element the checkpoint never saw (Ca) grows the species head: the
    Mg and O rows are the checkpoint's (lr ~ 0), the Ca row is new, and the card says so."""
    broad = tmp_path / "broad"
    broad.mkdir()
    for k in range(3):
        write_chili_file(broad / f"Ca{k}.h5",
                         with_calcium(toy_record(name=f"Ca{k}", n_unit_cell=4 + k,
                                                 particle_atoms=(7, 12), seed=10 + k)))
    out = tmp_path / "grown"
    assert main(["train", "--config", str(MLP), "--data", str(data), "--out", str(out),
                 "trainer.max_epochs=1", "generator.hparams.hidden=16", "seed=2",
                 "optimizer.lr=1e-12", f"data.extra=[{broad}]",
                 f"trainer.init_from={source}"]) == 0
    old, new = load_checkpoint(source), load_checkpoint(out)
    assert old.species_vocab == [8, 12] and new.species_vocab == [8, 12, 20]
    w_old, w_new = old.state_dict(), new.state_dict()
    for key in ("species_head.weight", "species_head.bias"):
        assert w_new[key].shape[0] == 3
        assert torch.allclose(w_new[key][:2], w_old[key], rtol=0, atol=1e-9)
    card = next(out.glob("*.md")).read_text()
    assert "started from the weights of `source`" in card and "Z = 20" in card


def test_vocabulary_rows_map_by_element() -> None:
    trained = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])  # rows of Z 8, 12, 26
    fresh = torch.zeros(3, 2)  # rows of Z 8, 20, 26
    rows = vocabulary_rows(fresh, trained, [8, 12, 26], [8, 20, 26], axis=0)
    assert rows.tolist() == [[1.0, 1.0], [0.0, 0.0], [3.0, 3.0]]
    grown = vocabulary_rows(torch.zeros(4, 2), trained, [8, 12, 26], [8, 12, 20, 26], axis=0)
    assert grown.tolist() == [[1.0, 1.0], [2.0, 2.0], [0.0, 0.0], [3.0, 3.0]]
    assert vocabulary_rows(torch.zeros(3, 4), trained, [8, 12, 26], [8, 20, 26], axis=0) is None
    assert vocabulary_rows(torch.zeros(4, 2), trained, [8, 12, 26], [8, 20, 26], axis=0) is None


def test_vocabulary_rows_keep_entries_of_no_element_first() -> None:
    """The VAE's species classes: background first, then one per element."""
    trained = torch.tensor([9.0, 1.0, 2.0])  # background, Z 8, Z 12
    grown = vocabulary_rows(torch.zeros(4), trained, [8, 12], [8, 12, 20], axis=0)
    assert grown.tolist() == [9.0, 1.0, 2.0, 0.0]


def test_vocabulary_axes_name_only_the_per_element_weights() -> None:
    """Each generator's weights with one entry per element, found by widening the vocabulary;
    a hidden width equal to the vocabulary's size is not taken for it."""
    task = TaskSpec.parse("xPDF->unit_cell_pos_frac", max_atoms=12)
    vocab = list(range(3, 19))  # 16 elements, as wide as the MLP's hidden layer below
    mlp = build_generator("mlp", task, species_vocab=vocab, hidden=16)
    assert vocabulary_axes(mlp) == {"species_head.weight": 0, "species_head.bias": 0}
    vae = build_generator("vae", task, species_vocab=vocab)
    assert set(vocabulary_axes(vae)) == {"unet.species.weight", "unet.species.bias"}
    diffusion = build_generator("diffusion", task, species_vocab=vocab)
    assert set(vocabulary_axes(diffusion)) == {"prior.composition_head.net.2.weight",
                                               "prior.composition_head.net.2.bias"}
