"""Training on several data folders at once (CHILI-3K oxides + the `clusters` set)."""

from __future__ import annotations

from pathlib import Path

import pytest

from invdesign.cli.main import main
from invdesign.core.errors import ConfigError, InvdesignError
from invdesign.data.dataset import ChiliDataset
from invdesign.data.splits import split_indices
from invdesign.generators.checkpoint import read_metadata
from invdesign.testing import make_tiny_chili3k, make_tiny_clusters
from invdesign.training.config import data_roots, load_config

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "experiment" / "mlp_xpdf_pos_abs.yaml"


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny CHILI-3K selection (4 oxide files) and a tiny cluster set (hcp Mg, bcc V)."""
    root = tmp_path_factory.mktemp("two")
    return make_tiny_chili3k(root / "chili3k"), make_tiny_clusters(root / "clusters")


def test_dataset_indexes_every_folder_in_order(folders) -> None:
    oxides, clusters = folders
    a, b, both = ChiliDataset(oxides), ChiliDataset(clusters), ChiliDataset([oxides, clusters])
    assert len(both) == len(a) + len(b) and len(a) > 0 and len(b) > 0
    assert both.records == a.records + b.records
    assert both.data_roots == [oxides.resolve(), clusters.resolve()]
    assert both.data_root == oxides.resolve()
    assert both.fingerprint not in (a.fingerprint, b.fingerprint)
    assert ChiliDataset([oxides, clusters]).fingerprint == both.fingerprint
    assert ChiliDataset([clusters, oxides]).fingerprint != both.fingerprint
    assert {"hcp_Mg", "bcc_V"} <= set(both.sources)
    assert both[len(a)].source == b[0].source  # graph indices continue into the second folder
    assert both.index_report.indexed + both.index_report.reused == 6  # files
    assert ChiliDataset([oxides]).fingerprint == a.fingerprint  # one folder: as before


def test_grouped_split_spans_both_folders_without_sharing_a_source(folders) -> None:
    ds = ChiliDataset(list(folders))
    parts = split_indices(ds, "grouped", seed=42)
    assert sorted(i for idx in parts.values() for i in idx) == list(range(len(ds)))
    sources = {name: {ds.records[i].source for i in idx} for name, idx in parts.items()}
    assert all(sources.values())
    assert not (sources["train"] & sources["val"] or sources["train"] & sources["test"]
                or sources["val"] & sources["test"])
    folder_of = {r.source: Path(r.path).parent.name for r in ds.records}
    used = {folder_of[s] for part in sources.values() for s in part}
    assert used == {"chili3k", "clusters"}


def test_bad_folder_lists_are_refused(folders, tmp_path) -> None:
    oxides, _ = folders
    with pytest.raises(InvdesignError, match="given twice"):
        ChiliDataset([oxides, oxides])
    inner = oxides / "sub"
    inner.mkdir(exist_ok=True)
    with pytest.raises(InvdesignError, match="inside the data folder"):
        ChiliDataset([oxides, inner])
    with pytest.raises(InvdesignError, match="no data folder"):
        ChiliDataset([])
    with pytest.raises(InvdesignError, match="does not exist"):
        ChiliDataset([oxides, tmp_path / "missing"])


def test_config_takes_one_folder_or_a_list(folders) -> None:
    oxides, clusters = folders
    one = load_config(CONFIG, data_root=oxides)
    assert one.data.root == str(oxides) and data_roots(one) == [str(oxides)]
    two = load_config(CONFIG, data_root=[oxides, clusters])
    assert data_roots(two) == [str(oxides), str(clusters)]
    listed = load_config(CONFIG, [f"data.root=[{oxides},{clusters}]"])
    assert data_roots(listed) == data_roots(two)
    with pytest.raises(ConfigError, match="data.root must be a folder or a list"):
        load_config(CONFIG, ["data.root=[]"])


def test_cli_trains_on_two_folders(folders, tmp_path, capsys) -> None:
    oxides, clusters = folders
    out = tmp_path / "model"
    code = main(["train", "--config", str(CONFIG), "--data", str(oxides), str(clusters),
                 "trainer.fast_dev_run=true", "data.batch_size=4", "split.kind=grouped",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    meta = read_metadata(out / "model.safetensors")
    assert meta["config"]["data"]["root"] == [str(oxides), str(clusters)]
    info = meta["metrics"]["training"]
    ds = ChiliDataset([oxides, clusters])
    assert info["data_files"] == 6 and info["data_fingerprint"] == ds.fingerprint
    n_task = len(ds.task_indices("pos_abs"))
    assert info["n_train"] + info["n_val"] + info["n_test"] == n_task
    assert n_task > len(ChiliDataset(oxides).task_indices("pos_abs"))
    card = (out / "MODEL_CARD.md").read_text()
    assert f"`{oxides}` + `{clusters}`" in card


def test_cli_override_after_data_folders_is_still_an_override(folders, capsys) -> None:
    oxides, clusters = folders
    code = main(["train", "--config", str(CONFIG), "--data", str(oxides), str(clusters),
                 "seed=x"])
    err = capsys.readouterr().err  # read as an override, not as a third data folder
    assert code == 2 and err.startswith("invdesign: error: overrides: invalid configuration")
    assert "'x'" in err and "does not exist" not in err and err.count("\n") == 1
