"""Training on two processes (`trainer.strategy=ddp trainer.devices=2`, gloo on CPU): the console
script runs, rank 0 alone reports and writes one checkpoint that loads; the Python API runs the
same from inside this (pytest) process without re-running it; the new keys are checked with one
line each, before anything is trained."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from invdesign.cli.main import main
from invdesign.core.errors import ConfigError
from invdesign.data.hdf5_io import write_chili_file
from invdesign.data.toy import toy_record
from invdesign.generators.checkpoint import load_checkpoint, read_metadata
from invdesign.training.config import config_from_dict
from invdesign.training.distributed import launch_rank
from invdesign.training.train import train

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "experiment"
CONFIG = CONFIGS / "mlp_xpdf_unit_cell.yaml"
CONSOLE_SCRIPT = Path(sys.executable).parent / "invdesign"
DDP = ["trainer.devices=2", "trainer.strategy=ddp"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Ten sources x two particle sizes: 16 / 2 / 2 graphs in CHILI's random split, so each of
    the two processes validates one graph."""
    root = tmp_path_factory.mktemp("toy")
    for k in range(10):
        write_chili_file(root / f"Toy{k}.h5", toy_record(
            name=f"Toy{k}", n_unit_cell=4 + k % 6, particle_atoms=(7, 12), seed=k))
    return root


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("invdesign: error: "), err
    return lines[0]


def test_console_script_trains_on_two_processes(data, tmp_path) -> None:
    """`invdesign train ... trainer.devices=2 trainer.strategy=ddp` as a user types it: one epoch
    report per epoch (rank 0), one checkpoint that loads, nothing else left beside it. (Two fresh
    interpreters import torch and Lightning: 37 s measured at load 10 on the shared 2-core
    machine, 106 s at load 20.)"""
    command = ([str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists()
               else [sys.executable, "-m", "invdesign.cli.main"])
    out = tmp_path / "ckpt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env = {k: v for k, v in env.items()
           if k not in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE")}
    proc = subprocess.run(
        [*command, "train", "--config", str(CONFIG), "--data", str(data), "--out", str(out),
         "trainer.max_epochs=2", "data.batch_size=2", *DDP],
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    epochs = [line for line in proc.stderr.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 0", "epoch 1"], proc.stderr
    assert "2 processes" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "MODEL_CARD.md", "config.yaml", "metrics.json", "model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temp folder, no lock
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training"]["processes"] == 2 and metrics["training"]["epochs"] == 2
    generator = load_checkpoint(out)
    assert read_metadata(out)["config"]["trainer"]["strategy"] == "ddp"
    assert sum(p.numel() for p in generator.parameters()) == metrics["training"]["n_parameters"]
    card = (out / "MODEL_CARD.md").read_text()
    assert "trainer.strategy=ddp" in card and "2 processes" in card


def test_api_trains_on_two_processes_from_inside_pytest(data) -> None:
    """`train(cfg)` with DDP called from Python: the second process is the worker module, not a
    re-run of this pytest command; the validation metric is the mean over the whole validation
    part (both processes' graphs), the weights are the best epoch's, and the process group and
    its environment are gone afterwards."""
    cfg = config_from_dict({
        "task": {"name": "xPDF->unit_cell_pos_frac"},
        "data": {"root": str(data), "batch_size": 2, "in_memory": "false"},
        "trainer": {"max_epochs": 2, "monitor": "val/loss"},
    }, DDP)
    result = train(cfg, evaluate_parts=())
    assert result.info["processes"] == 2 and result.info["rank"] == 0
    assert not result.info["data_in_memory"]
    assert not torch.distributed.is_initialized()
    assert "LOCAL_RANK" not in os.environ and "WORLD_SIZE" not in os.environ
    # the best val/loss recorded is the loss of the returned weights on all validation graphs
    from invdesign.core.tasks import TaskSpec
    from invdesign.data.datamodule import ChiliTaskDataModule

    dm = ChiliTaskDataModule(str(data), TaskSpec.parse(cfg.task.name), "chili_random", 42, 2, 256)
    dm.setup()
    assert len(dm.parts["val"]) == 2
    with torch.no_grad():  # each process validated one graph: the mean of the two batch losses
        losses = [float(result.generator.loss(dm.parts["val"].batch([row]))["loss"])
                  for row in (0, 1)]
    assert sum(losses) / 2 == pytest.approx(result.info["best_val_loss"], rel=1e-5)
    assert losses[0] != pytest.approx(losses[1], rel=1e-3)  # so one process's would not do


@pytest.mark.parametrize(("override", "expected"), [
    ("trainer.strategy=ddp_spawn", "trainer.strategy must be one of auto, ddp, not 'ddp_spawn'"),
    ("trainer.strategy=fsdp", "trainer.strategy must be one of auto, ddp, not 'fsdp'"),
    ("trainer.num_nodes=0", "trainer.num_nodes must be in [1, 1024], got 0"),
    ("trainer.devices=0", "trainer.devices must be in [1, 1024], got 0"),
    ("trainer.devices=2", "trainer.devices=2 with trainer.num_nodes=1 needs trainer.strategy=ddp"),
    ("trainer.num_nodes=two", "trainer.num_nodes"),
    ("data.in_memory=maybe", "data.in_memory must be one of auto, true, false, not 'maybe'"),
])
def test_bad_distributed_keys_are_one_line_errors(data, tmp_path, capsys, override,
                                                  expected) -> None:
    code = main(["train", "--config", str(CONFIG), "--data", str(data), "--out",
                 str(tmp_path / "out"), override])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and expected in line, line
    assert not (tmp_path / "out").exists()


def test_lazy_data_refused_for_a_generator_that_reads_every_graph(data) -> None:
    """The diffusion prior's prototype library reads every training cell: in_memory=false is
    refused naming the key (before any fitting); 'auto' would read them once for it."""
    cfg = config_from_dict({
        "task": {"name": "xPDF->unit_cell_pos_frac"},
        "generator": {"name": "diffusion"},
        "data": {"root": str(data), "in_memory": "false"},
        "trainer": {"max_epochs": 1},
    })
    with pytest.raises(ConfigError, match=r"data\.in_memory=false: .* every training graph"):
        train(cfg, evaluate_parts=())


def test_launch_rank_reads_the_launchers_environment(monkeypatch) -> None:
    for key in ("RANK", "NODE_RANK", "GROUP_RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert launch_rank(2) == 0
    monkeypatch.setenv("NODE_RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert launch_rank(2) == 3  # second process of the second node of 2 x 2
    monkeypatch.setenv("RANK", "5")  # torchrun's global rank wins
    assert launch_rank(2) == 5


def test_worker_refuses_to_run_by_hand() -> None:
    from invdesign.training import ddp_worker, distributed

    assert ddp_worker.CONFIG_ENV == distributed.CONFIG_ENV
    env = {k: v for k, v in os.environ.items()
           if k not in ("LOCAL_RANK", "INVDESIGN_DDP_CONFIG")}
    proc = subprocess.run([sys.executable, "-m", "invdesign.training.ddp_worker"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2
    assert one_error_line(proc.stderr).endswith("not by hand")
