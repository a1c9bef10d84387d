"""Configs are checked before training starts (issue 22, item 2): the typed schema refuses unknown
keys and wrong types, ranges refuse negative or absurd sizes, the generator's hyper-parameters are
checked against the generator, interpolations are resolved at load and resolvers (`${oc.env:...}`)
refused. Through the CLI each is one line, exit 2, no traceback, nothing written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import invdesign.training.train as train_module
from invdesign.cli.main import main
from invdesign.core.errors import ConfigError, InvdesignError
from invdesign.training import config as config_module
from invdesign.training.config import config_from_dict, load_config, to_container

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "experiment" / "mlp_xpdf_pos_abs.yaml"


@pytest.fixture
def no_training(monkeypatch):
    """`train` must never be reached by a refused config."""

    def refuse(*args, **kwargs):
        raise AssertionError("training started on a config that should have been refused")

    monkeypatch.setattr(train_module, "train", refuse)


CASES = [
    ("generator.hparams.hidden=-4", r"generator.hparams: hyper-parameter hidden = -4 is outside"),
    ("generator.hparams.hidden=1e7", "hyper-parameter hidden must be int, not 10000000.0"),
    ("generator.hparams.hidden=10000000", "hyper-parameter hidden = 10000000 is outside"),
    ("generator.hparams.hiden=64", "generator.hparams: hyper-parameter 'hiden' unknown"),
    ("generator.hparams.coord_loss=7", "hyper-parameter coord_loss must be str, not 7"),
    ("generator.hparams.n_layers=0", "hyper-parameter n_layers = 0 is outside"),
    ("generator.name=nope", "generator.name: unknown generator 'nope'"),
    ("trainer.max_epochz=5", "max_epochz"),
    ("trainer.max_epochs=many", "max_epochs"),
    ("trainer.max_epochs=0", "trainer.max_epochs must be at least 1, got 0"),
    ("data.batch_size=-2", r"data.batch_size must be in \[1, 100000\], got -2"),
    ("data.eval_batch_size=100000000", "data.eval_batch_size must be in"),
    ("task.max_atoms=-1", "task.name: max_atoms must be positive, got -1"),
    ("trainer.limit_train_batches=3.5", "trainer.limit_train_batches is a fraction"),
    ("optimizer.lr=nan", "optimizer.lr must be positive, got nan"),
    ("trainer.max_time_minutes=inf", "trainer.max_time_minutes must be positive, got inf"),
    ("trainer.num_threads=-1", "trainer.num_threads must be in"),
    ("seed=-3", r"seed must be in \[0, 4294967295\], got -3"),
    ("trainer.monitor=loss", "trainer.monitor must name a validation metric"),
    ("trainer.max_epochs=${oc.env:HOME}", "trainer.max_epochs: resolvers such as"),
    ("data.root=${oc.env:HOME}", "data.root: resolvers such as"),
    ("trainer.max_epochs=${nosuch.key}", "trainer.max_epochs: Interpolation key 'nosuch.key'"),
]


@pytest.mark.parametrize(("override", "message"), CASES, ids=[c[0] for c in CASES])
def test_cli_refuses_a_bad_config_before_training(
    override: str, message: str, tmp_path: Path, capsys, no_training
) -> None:
    out = tmp_path / "run"
    code = main(["train", "--config", str(CONFIG), "--data", str(tmp_path), "--out", str(out),
                 override])
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert code == 2 and captured.out == ""
    assert len(err) == 1 and err[0].startswith("invdesign: error: ")
    assert "Traceback" not in captured.err
    assert re.search(message, err[0]), err[0]
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def test_environment_values_never_reach_the_config(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INVDESIGN_SECRET", "s3cr3t-value")
    exp = tmp_path / "x.yaml"
    exp.write_text("data:\n  root: ${oc.env:INVDESIGN_SECRET}\n")
    with pytest.raises(ConfigError, match="data.root: resolvers such as") as info:
        load_config(exp)
    assert "s3cr3t-value" not in str(info.value)
    exp.write_text("trainer:\n  monitor: ${oc.decode:'val/loss'}\n")
    with pytest.raises(ConfigError, match="trainer.monitor: resolvers"):
        load_config(exp)


def test_interpolations_are_resolved_at_load() -> None:
    cfg = config_from_dict({"seed": 7, "split": {"seed": "${seed}"},
                            "trainer": {"patience": "${trainer.max_epochs}", "max_epochs": 30}})
    assert (cfg.split.seed, cfg.trainer.patience) == (7, 30)
    plain = to_container(cfg)
    assert plain["split"]["seed"] == 7 and "${" not in repr(plain)
    with pytest.raises(ConfigError, match="trainer.patience must be at least 1, got 0"):
        config_from_dict({"trainer": {"patience": "${data.num_workers}"}})
    with pytest.raises(ConfigError, match="Interpolation key 'nope' not found"):
        config_from_dict({"trainer": {"monitor": "val/${nope}"}})


def test_the_generators_own_hparams_check_is_used(monkeypatch) -> None:
    seen = []

    class Checked:
        @classmethod
        def check_hparams(cls, hparams, where="hparams"):
            seen.append(hparams)
            if hparams.get("width", 1) > 4:
                raise InvdesignError("width must be at most 4", where)

    monkeypatch.setattr(config_module, "generator_class", lambda name: Checked)
    values = {"generator": {"name": "checked", "hparams": {"width": 3, "other": "x"}}}
    assert config_from_dict(values).generator.hparams.width == 3
    values["generator"]["hparams"]["width"] = 5
    with pytest.raises(ConfigError, match="config: generator.hparams: width must be at most 4"):
        config_from_dict(values)
    assert seen == [{"width": 3, "other": "x"}, {"width": 5, "other": "x"}]

