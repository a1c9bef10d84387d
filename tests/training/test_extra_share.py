"""`data.extra_share`: a large training-only folder joins each epoch at a fixed share."""

from __future__ import annotations

from pathlib import Path

import pytest

from invdesign.cli.main import main
from invdesign.core.tasks import TaskSpec
from invdesign.data.datamodule import ChiliTaskDataModule
from invdesign.data.hdf5_io import write_chili_file
from invdesign.data.mixing import MixedEpochSampler
from invdesign.data.toy import toy_record

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "experiment" / "mlp_xpdf_pos_abs.yaml"


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    """Six data sources and twelve extra ones, two particles each."""
    root = tmp_path_factory.mktemp("data")
    for k in range(6):
        write_chili_file(root / f"Toy{k}.h5", toy_record(
            name=f"Toy{k}", n_unit_cell=4 + k % 3, particle_atoms=(7, 12), seed=k))
    extra = tmp_path_factory.mktemp("extra")
    for k in range(12):
        write_chili_file(extra / f"Syn{k}.h5", toy_record(
            name=f"Syn{k}", n_unit_cell=3 + k % 4, particle_atoms=(6, 8), seed=40 + k))
    return root, extra


def test_the_training_loader_mixes_at_the_share(folders):
    root, extra = folders
    task = TaskSpec.parse("xPDF->pos_abs")
    dm = ChiliTaskDataModule(str(root), task, "grouped", batch_size=4, extra=[str(extra)],
                             extra_share=0.25, seed=7)
    dm.setup()
    n_own = len(dm.parts["train"]) - dm.n_extra
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, MixedEpochSampler)
    rows = [r for batch in loader.batch_sampler for r in batch]
    extra_rows = [r for r in rows if r >= n_own]
    assert sorted(r for r in rows if r < n_own) == list(range(n_own))
    assert len(extra_rows) == max(1, round(n_own / 3)) < dm.n_extra
    plain = ChiliTaskDataModule(str(root), task, "grouped", batch_size=4, extra=[str(extra)])
    plain.setup()
    assert plain.train_dataloader().sampler.__class__.__name__ == "RandomSampler"
    assert len(plain.train_dataloader().sampler) == len(dm.parts["train"])


def test_train_with_a_share_says_so_in_the_model_card(folders, tmp_path):
    root, extra = folders
    out = tmp_path / "run"
    code = main(["train", "--config", str(CONFIG), "--data", str(root), "--out", str(out),
                 f"data.extra=[{extra}]", "data.extra_share=0.4", "trainer.max_epochs=2"])
    assert code == 0
    card = (out / "MODEL_CARD.md").read_text()
    assert "from the training-only folders" in card and "making up 40% of it" in card


@pytest.mark.parametrize(("overrides", "message"), [
    (["data.extra_share=0.5"], "data.extra_share is set but data.extra names no folder"),
    (["data.extra_share=1.0", "data.extra=[EXTRA]"], "data.extra_share must be a fraction"),
    (["data.extra_share=0", "data.extra=[EXTRA]"], "data.extra_share must be a fraction"),
])
def test_bad_share_is_one_line_and_writes_nothing(folders, tmp_path, capsys, overrides, message):
    root, extra = folders
    out = tmp_path / "run"
    args = [o.replace("EXTRA", str(extra)) for o in overrides]
    code = main(["train", "--config", str(CONFIG), "--data", str(root), "--out", str(out), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0]
    assert message in err[0]
    assert not out.exists()
