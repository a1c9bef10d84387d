"""Leave-type-out split (issue 27 item 3): the held-out CHILI-3K crystal type is the test part, the
other types' sources are split into train and validation; fold by name or index; config group."""

from __future__ import annotations

from pathlib import Path

import pytest

from invdesign.core.errors import ConfigError, InvdesignError
from invdesign.core.tasks import TaskSpec
from invdesign.data.build.cifs import LIGAND_NUMBERS, METAL_NUMBERS
from invdesign.data.build.record import make_record
from invdesign.data.datamodule import load_task_split
from invdesign.data.dataset import ChiliDataset
from invdesign.data.hdf5_io import write_chili_file
from invdesign.data.splits import (
    grouped_split,
    held_out_lookalikes,
    leave_type_out_split,
    split_indices,
    split_name,
    training_only_graphs,
    type_fold,
)
from invdesign.physics.cutter import cut_particles
from invdesign.testing import TINY_RADII, caesium_chloride_cell, make_tiny_chili3k, rock_salt_cell
from invdesign.training.config import load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> ChiliDataset:
    """RockSalt, Rutile, Wurtzite x (Ti, Zn) x two radii: graphs 0-3 RockSalt (TiO 0-1, ZnO
    2-3), 4-7 Rutile (TiO2 4-5, ZnO2 6-7), 8-11 Wurtzite (TiO 8-9, ZnO 10-11)."""
    folder = make_tiny_chili3k(tmp_path_factory.mktemp("tiny"),
                               crystal_types=("RockSalt", "Wurtzite", "Rutile"))
    ds = ChiliDataset(folder)
    assert [r.source for r in ds.records] == [
        "RockSalt_TiO", "RockSalt_TiO", "RockSalt_ZnO", "RockSalt_ZnO",
        "Rutile_TiO2", "Rutile_TiO2", "Rutile_ZnO2", "Rutile_ZnO2",
        "Wurtzite_TiO", "Wurtzite_TiO", "Wurtzite_ZnO", "Wurtzite_ZnO"]
    return ds


def test_fold_contents_are_exact(tiny: ChiliDataset) -> None:
    # remaining sources sorted: RockSalt_TiO, RockSalt_ZnO, Wurtzite_TiO, Wurtzite_ZnO;
    # ceil(0.1 x 4) = 1 for validation, RandomState(42).permutation(4) = [1, 3, 0, 2]: RockSalt_ZnO
    assert split_indices(tiny, "leave_type_out:Rutile") == {
        "train": [0, 1, 8, 9, 10, 11], "val": [2, 3], "test": [4, 5, 6, 7]}
    # held out RockSalt, seed 1: RandomState(1).permutation(4) = [3, 2, 0, 1]: Wurtzite_ZnO
    assert split_indices(tiny, "leave_type_out:RockSalt", seed=1) == {
        "train": [4, 5, 6, 7, 8, 9], "val": [10, 11], "test": [0, 1, 2, 3]}
    assert split_indices(tiny, "leave_type_out:Wurtzite") == {
        "train": [0, 1, 4, 5, 6, 7], "val": [2, 3], "test": [8, 9, 10, 11]}


def test_only_the_chosen_graphs_are_split(tiny: ChiliDataset) -> None:
    assert split_indices(tiny, "leave_type_out:Rutile", indices=[0, 2, 4, 5, 9, 11]) == {
        "train": [0, 9, 11], "val": [2], "test": [4, 5]}


def test_fold_by_index_and_any_case_names_the_same_type() -> None:
    assert type_fold(7) == "Rutile"
    assert type_fold("7") == "Rutile"
    assert type_fold("rutile") == "Rutile"
    assert type_fold(0) == "RockSalt"
    assert type_fold(11) == "RheniumTrioxide"
    assert split_name("leave_type_out", 4) == "leave_type_out:Wurtzite"
    assert split_name("grouped") == "grouped"
    assert split_name("chili_random", None) == "chili_random"


@pytest.mark.parametrize(("kind", "fold", "message"), [
    ("leave_type_out", "Spinel", "split.fold must be one of CHILI-3K's crystal types (RockSalt, "
     "ZincBlende, Fluorite, AntiFluorite, Wurtzite, NickelArsenide, CaesiumChloride, Rutile, "
     "CadmiumIodide, CadmiumChloride, Perovskite, RheniumTrioxide) or their index 0-11, not "
     "'Spinel'"),
    ("leave_type_out", 12, "split.fold must be one of CHILI-3K's crystal types (RockSalt, "
     "ZincBlende, Fluorite, AntiFluorite, Wurtzite, NickelArsenide, CaesiumChloride, Rutile, "
     "CadmiumIodide, CadmiumChloride, Perovskite, RheniumTrioxide) or their index 0-11, not 12"),
    ("leave_type_out", None, "split.fold: leave_type_out needs the held-out crystal type"),
    ("grouped", "Rutile", "split.fold is only for leave_type_out, not for split 'grouped'"),
])
def test_bad_folds_are_refused_in_one_line(kind: str, fold, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        split_name(kind, fold)
    assert str(err.value) == message


def test_bare_kind_without_fold_is_refused(tiny: ChiliDataset) -> None:
    with pytest.raises(ConfigError, match="^split.fold: leave_type_out needs the held-out"):
        split_indices(tiny, "leave_type_out")
    with pytest.raises(ConfigError, match="^split.fold must be one of"):
        split_indices(tiny, "leave_type_out:Spinel")


def test_too_few_remaining_sources_are_refused() -> None:
    with pytest.raises(InvdesignError, match="^cannot split 1 sources of the types other than A"):
        leave_type_out_split([0, 1, 2], ["A", "A", "B"], ["a1", "a2", "b1"], "A")


def test_the_held_out_type_is_never_in_train_or_val_and_sources_stay_whole() -> None:
    types = [t for t in ("A", "B", "C", "D") for _ in range(10)]
    groups = [f"{t}{i // 2}" for i, t in enumerate(types)]  # 5 sources per type, 2 graphs each
    split = leave_type_out_split(range(40), types, groups, "C", seed=3)
    assert split["test"] == list(range(20, 30))
    assert sorted(split["train"] + split["val"] + split["test"]) == list(range(40))
    train_groups = {groups[i] for i in split["train"]}
    val_groups = {groups[i] for i in split["val"]}
    assert not train_groups & val_groups
    assert len(val_groups) == 2  # ceil(0.1 x 15 sources)


def test_existing_kinds_are_unchanged(tiny: ChiliDataset) -> None:
    sources = [r.source for r in tiny.records]
    assert split_indices(tiny, "grouped") == grouped_split(range(12), sources, 42)


def test_task_split_and_config_group(tiny: ChiliDataset) -> None:
    parts = load_task_split(tiny, TaskSpec.parse("xPDF->unit_cell_pos_frac"),
                            "leave_type_out:Rutile", 42)
    assert parts["test"].indices == [4, 5, 6, 7]
    assert parts["val"].indices == [2, 3]
    cfg = load_config(REPO / "configs" / "experiment" / "mlp_xpdf_unit_cell.yaml",
                      ["split.kind=leave_type_out", "split.fold=Rutile"])
    assert (cfg.split.kind, cfg.split.fold) == ("leave_type_out", "Rutile")
    group = (REPO / "configs" / "split" / "leave_type_out.yaml").read_text()
    assert "kind: leave_type_out" in group and "fold: RockSalt" in group
    with pytest.raises(ConfigError, match="split.fold must be one of CHILI-3K's crystal types"):
        load_config(REPO / "configs" / "experiment" / "mlp_xpdf_unit_cell.yaml",
                    ["split.kind=leave_type_out", "split.fold=Spinel"])
    with pytest.raises(ConfigError, match="split.fold: leave_type_out needs the held-out"):
        load_config(REPO / "configs" / "experiment" / "mlp_xpdf_unit_cell.yaml",
                    ["split.kind=leave_type_out"])


@pytest.fixture(scope="module")
def with_unlabelled(tiny: ChiliDataset, tmp_path_factory) -> ChiliDataset:
    """`tiny` plus a second folder of two cells labelled 'Unknown', as a synthetic or COD set
    labels them: a CaS rock salt (graphs 12-13) and a CsCl-type MgO (graphs 14-15)."""
    extra = tmp_path_factory.mktemp("unlabelled")
    for name, cell in (("x_CaS", rock_salt_cell(5.7, metal=20, anion=16)),
                       ("x_MgO", caesium_chloride_cell(2.6, metal=12, anion=8))):
        particles = cut_particles(cell, TINY_RADII, metals=METAL_NUMBERS, ligands=LIGAND_NUMBERS)
        write_chili_file(extra / f"{name}.h5", make_record(name, cell, particles, "Unknown"))
    folders = sorted({Path(r.path).parent for r in tiny.records}) + [extra]
    ds = ChiliDataset(folders)
    assert [r.source for r in ds.records[12:]] == ["x_CaS", "x_CaS", "x_MgO", "x_MgO"]
    return ds


def test_an_unlabelled_cell_of_the_held_out_type_is_in_no_part(with_unlabelled) -> None:
    ds = with_unlabelled
    assert held_out_lookalikes(ds, range(16), "RockSalt") == {"x_CaS": "AB_cF8_225_a_b"}
    parts = split_indices(ds, "leave_type_out:RockSalt")
    assert parts["test"] == [0, 1, 2, 3]  # only the labelled rock salts are tested
    placed = sorted(parts["train"] + parts["val"] + parts["test"])
    assert placed == [i for i in range(16) if i not in (12, 13)]
    # another fold keeps both unlabelled cells for training or validation
    parts = split_indices(ds, "leave_type_out:Rutile")
    assert sorted(parts["train"] + parts["val"]) == [0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15]
    assert held_out_lookalikes(ds, range(16), "Rutile") == {}


def test_training_only_folders_lose_the_held_out_type_and_its_lookalikes(tiny, tmp_path) -> None:
    """`data.extra` graphs join training whole, except under leave_type_out those labelled the
    held-out type and the unlabelled cells of its arrangement."""
    extra = tmp_path / "extra"
    extra.mkdir()
    for name, cell, label in (("x_CaS", rock_salt_cell(5.7, metal=20, anion=16), "Unknown"),
                              ("x_MgO", caesium_chloride_cell(2.6, metal=12, anion=8), "Unknown"),
                              ("x_NiO", rock_salt_cell(4.2, metal=28, anion=8), "RockSalt")):
        particles = cut_particles(cell, TINY_RADII, metals=METAL_NUMBERS, ligands=LIGAND_NUMBERS)
        write_chili_file(extra / f"{name}.h5", make_record(name, cell, particles, label))
    other = ChiliDataset(extra)
    assert [r.source for r in other.records] == ["x_CaS", "x_CaS", "x_MgO", "x_MgO",
                                                 "x_NiO", "x_NiO"]
    every = list(range(6))
    assert training_only_graphs(tiny, range(12), "leave_type_out:RockSalt", other, every) == [2, 3]
    assert training_only_graphs(tiny, range(12), "leave_type_out:Rutile", other, every) == every
    assert training_only_graphs(tiny, range(12), "grouped", other, every) == every
