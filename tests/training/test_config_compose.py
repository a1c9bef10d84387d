"""Experiment configs composed from groups: each of `configs/experiment/*.yaml` resolves to exactly
the flat config it replaced (`tests/references/configs/*.json`, made by
`tools/make_config_references.py`), and the composition rules on configs made here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from invdesign.core.errors import ConfigError
from invdesign.training.config import compose, load_config, to_container

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "configs" / "experiment"
REFERENCES = REPO / "tests" / "references" / "configs"
NAMES = sorted(p.stem for p in REFERENCES.glob("*.json"))


def test_every_reference_has_its_experiment_and_no_more() -> None:
    """The 17 flat configs, and two experiments added since on the lab-range views
    (`mlp_xrd_lab_unit_cell`, `mlp_saxs_lab_pos_abs`), whose references are those of
    `mlp_xrd_unit_cell` and `mlp_saxs_pos_abs` with only the name and the task changed."""
    assert len(NAMES) == 19
    assert sorted(p.stem for p in EXPERIMENTS.glob("*.yaml")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_composed_experiment_equals_the_flat_config_it_replaced(name: str) -> None:
    resolved = to_container(load_config(EXPERIMENTS / f"{name}.yaml"))
    # as text, so that 60 and 60.0 or true and 1 differ
    assert json.dumps(resolved, indent=2, sort_keys=True) + "\n" == (
        REFERENCES / f"{name}.json").read_text()


@pytest.mark.parametrize("name", NAMES)
def test_an_experiment_file_is_a_defaults_list_and_a_few_keys(name: str) -> None:
    text = (EXPERIMENTS / f"{name}.yaml").read_text()
    assert len(text.splitlines()) <= 5
    fragments = compose(EXPERIMENTS / f"{name}.yaml")
    assert len(fragments) >= 6  # data, task, split, generator, trainer, itself
    assert fragments[-1][0] == str(EXPERIMENTS / f"{name}.yaml")


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_groups_merge_in_order_nested_first_and_the_experiment_last(tmp_path: Path) -> None:
    _write(tmp_path, {
        "trainer/base.yaml": "trainer: {max_epochs: 7, patience: 3}\noptimizer: {lr: 0.5}\n",
        "trainer/short.yaml": "defaults: [trainer/base]\ntrainer: {patience: 2}\n",
        "generator/small.yaml": "generator: {name: mlp, hparams: {hidden: 8, n_layers: 2}}\n",
        "experiment/x.yaml": "defaults: [trainer/short, generator/small]\nname: x\n"
                             "trainer: {max_epochs: 9}\ngenerator: {hparams: {hidden: 16}}\n",
    })
    cfg = load_config(tmp_path / "experiment" / "x.yaml", ["optimizer.lr=0.25"])
    assert [Path(f).relative_to(tmp_path).as_posix() for f, _ in compose(
        tmp_path / "experiment" / "x.yaml")] == [
        "trainer/base.yaml", "trainer/short.yaml", "generator/small.yaml", "experiment/x.yaml"]
    assert cfg.name == "x"
    assert (cfg.trainer.max_epochs, cfg.trainer.patience, cfg.optimizer.lr) == (9, 2, 0.25)
    assert dict(cfg.generator.hparams) == {"hidden": 16, "n_layers": 2}
    assert "defaults" not in to_container(cfg)


def test_a_flat_file_without_defaults_is_a_whole_experiment(tmp_path: Path) -> None:
    _write(tmp_path, {"flat.yaml": "name: flat\ntrainer: {max_epochs: 3}\n"})
    cfg = load_config(tmp_path / "flat.yaml")
    assert (cfg.name, cfg.trainer.max_epochs, cfg.generator.name) == ("flat", 3, "mlp")


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"experiment/x.yaml": "defaults: [trainer/nope]\n"}, "defaults entry 'trainer/nope'"),
        ({"experiment/x.yaml": "defaults: [../x]\n"}, "defaults must be a list"),
        ({"experiment/x.yaml": "defaults: trainer/a\n"}, "defaults must be a list"),
        ({"experiment/x.yaml": "defaults: [trainer/a]\n",
          "trainer/a.yaml": "defaults: [trainer/b]\n", "trainer/b.yaml": "defaults: [trainer/a]\n"},
         "includes itself"),
        ({"experiment/x.yaml": "defaults: [trainer/a]\n",
          "trainer/a.yaml": "trainer: {epochs: 3}\n"}, "epochs"),
    ],
)
def test_bad_composition_is_refused_naming_the_file(tmp_path: Path, files, message) -> None:
    _write(tmp_path, files)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(tmp_path / "experiment" / "x.yaml")
    assert len(str(info.value).splitlines()) == 1 and str(tmp_path) in str(info.value)


def test_an_old_flat_path_points_to_the_experiment_folder() -> None:
    with pytest.raises(ConfigError, match="experiments are in .*configs/experiment/"):
        load_config(REPO / "configs" / "mlp_xpdf_pos_abs.yaml")
