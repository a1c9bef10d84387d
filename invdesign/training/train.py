"""Training glue: a thin LightningModule around any `Generator`, and `train(cfg)`.

    cfg = load_config("configs/experiment/mlp_xpdf_pos_abs.yaml", data_root="DATA_DIR/chili3k")
    result = train(cfg)
    result.metrics["test"]["chili_mae"]

`train` seeds everything (`cfg.seed`), builds the data module and the generator (hyper-parameters
from the config, plus any the generator reads from the training data, e.g. the MLP's species
vocabulary), trains with early stopping on `trainer.monitor` (patience `trainer.patience`) under a
wall-clock cap (`trainer.max_time_minutes`, Lightning's `max_time`), optionally averages the
weights (`trainer.ema_decay`), restores the best validation weights, evaluates on the validation
and test parts and, given an output folder, writes the checkpoint (`model.safetensors` carrying the
resolved config and metrics), `metrics.json` and `config.yaml`.

With `trainer.strategy=ddp` and `trainer.devices` (x `trainer.num_nodes`) > 1 training runs on
that many processes (`invdesign.training.distributed`): epoch losses are summed over the processes
before they are logged, so every process sees the same validation metric, early-stopping decision
and best epoch; the wall-clock cap is rank 0's clock, broadcast by Lightning; only rank 0
evaluates and writes.
"""

from __future__ import annotations

import copy
import json
import os
import random
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, EMAWeightAveraging
from omegaconf import DictConfig, OmegaConf

from invdesign.core.errors import ConfigError
from invdesign.core.tasks import TaskBatch
from invdesign.data.datamodule import ChiliTaskDataModule, LazyTaskData, WholeDataRequired
from invdesign.data.splits import split_name
from invdesign.generators.base import Generator, build_generator, generator_class
from invdesign.generators.checkpoint import save_checkpoint
from invdesign.io.atomic import atomic_write_text
from invdesign.io.outputs import Output
from invdesign.training.config import data_roots, task_spec, to_container
from invdesign.training.distributed import (
    WorkerDDPStrategy,
    _WorkerLauncher,
    close_process_group,
    launch_rank,
)
from invdesign.training.evaluate import evaluate_generator
from invdesign.training.model_card import write_model_card
from invdesign.training.warm_start import start_from


class GeneratorModule(L.LightningModule):
    """Runs `generator.loss` on batches; the optimiser comes from the config.

    Loss parts are averaged over each epoch (weighted by batch size) here and logged once per epoch
    as `train/<part>` and `val/<part>`: Lightning's per-step `self.log` costs milliseconds per call,
    more than a step of a small model. Under DDP the sums and counts are added over the processes
    first (one all-reduce per epoch), so the logged value is the mean over the whole part on every
    process; `self.log(sync_dist=True)` would instead average the processes' means, which is not
    the part's mean when the processes hold different numbers of graphs (validation shards do).
    """

    def __init__(self, generator: Generator, optimizer: dict[str, Any]) -> None:
        super().__init__()
        self.generator = generator
        self.optimizer_cfg = dict(optimizer)
        self._sums: dict[str, dict[str, torch.Tensor]] = {"train": {}, "val": {}}
        self._counts = {"train": 0, "val": 0}

    def _step(self, batch: TaskBatch, stage: str) -> torch.Tensor:
        losses = self.generator.loss(batch)
        b = batch.target.shape[0]
        sums = self._sums[stage]
        for key, value in losses.items():
            sums[key] = sums.get(key, 0.0) + value.detach() * b
        self._counts[stage] += b
        return losses["loss"]

    def running_means(self, stage: str) -> dict[str, float]:
        """The loss parts averaged over the batches of `stage` seen so far in this epoch."""
        n = max(self._counts[stage], 1)
        return {key: float(total) / n for key, total in self._sums[stage].items()}

    def _log_epoch(self, stage: str) -> None:
        sums, count = self._sums[stage], self._counts[stage]
        if self.trainer.world_size > 1 and sums:  # every process has the same loss parts
            keys = sorted(sums)
            packed = torch.stack([torch.as_tensor(sums[k], dtype=torch.float64).cpu()
                                  for k in keys] + [torch.tensor(float(count),
                                                                 dtype=torch.float64)])
            packed = self.trainer.strategy.reduce(packed.to(self.device), reduce_op="sum")
            sums, count = dict(zip(keys, packed[:-1], strict=True)), int(packed[-1])
        for key, total in sums.items():
            # already the mean over all processes: no sync_dist (see the class docstring)
            self.log(f"{stage}/{key}", float(total) / max(count, 1), prog_bar=key == "loss")
        self._sums[stage], self._counts[stage] = {}, 0

    def training_step(self, batch: TaskBatch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: TaskBatch, batch_idx: int) -> None:
        self._step(batch, "val")

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        name = self.optimizer_cfg.get("name", "adam").lower()
        lr = float(self.optimizer_cfg.get("lr", 1e-3))
        wd = float(self.optimizer_cfg.get("weight_decay", 0.0))
        params = self.generator.parameters()
        fused = bool(self.optimizer_cfg.get("fused", False)) or None
        if name == "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=wd, fused=fused)
        if name == "adamw":
            return torch.optim.AdamW(params, lr=lr, weight_decay=wd, fused=fused)
        return torch.optim.SGD(params, lr=lr, weight_decay=wd)


class BestWeights(Callback):
    """Keeps a copy of the weights validation ran with at the best value of `monitor` and restores
    them when fitting ends.

    The weights are taken when validation starts, so a weight-averaging callback placed before
    this one (it swaps the averaged weights in for validation) has them kept instead of the raw
    ones."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self.best = float("inf")
        self.best_epoch = -1
        self.state: dict[str, torch.Tensor] | None = None
        self._validated: dict[str, torch.Tensor] | None = None
        #: per validated epoch: val/loss, the monitored metric, seconds since fitting started
        self.curve: dict[str, list[float]] = {k: [] for k in ("val/loss", monitor, "seconds")}
        self._start = time.perf_counter()

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._validated = copy.deepcopy(pl_module.state_dict())

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            raise ConfigError(
                f"trainer.monitor {self.monitor!r} is not logged; available: "
                f"{', '.join(sorted(trainer.callback_metrics))}"
            )
        for key in dict.fromkeys(("val/loss", self.monitor)):
            logged = trainer.callback_metrics.get(key)
            self.curve[key].append(float("nan") if logged is None else round(float(logged), 6))
        self.curve["seconds"].append(round(time.perf_counter() - self._start, 2))
        if float(value) < self.best:
            self.best, self.best_epoch = float(value), trainer.current_epoch
            self.state = self._validated

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.state is not None:
            pl_module.load_state_dict(self.state)


class RankSeeds(Callback):
    """With several processes, re-seed each one's random generators (torch, numpy, random) with
    `seed + global rank` when fitting starts: the model is built from `seed` in every process
    (DDP also broadcasts rank 0's weights), but the noise drawn during training (diffusion noise,
    dropout, augmentation) must differ between the shards. One process keeps the `seed` stream.
    The samplers' shuffling has its own generator (Lightning's `DistributedSampler`, seeded by
    `seed` and the epoch) and is unaffected."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.world_size > 1:
            rank_seed = self.seed + trainer.global_rank
            random.seed(rank_seed)
            np.random.seed(rank_seed % 2**32)
            torch.manual_seed(rank_seed)


class EpochReport(Callback):
    """Calls `say` with one line per validated epoch: the epoch's train and validation loss, the
    best value of the monitored metric so far (from `best`) and the elapsed time. Under DDP it runs
    on rank 0 only, and train/loss is rank 0's shard (validation runs before the training losses
    of the epoch are summed over the processes)."""

    def __init__(self, say: Callable[[str], None], best: BestWeights) -> None:
        self.say, self.best = say, best
        self.start = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        # validation runs before the epoch's training losses are logged: take their running means
        train = pl_module.running_means("train").get("loss")
        val = trainer.callback_metrics.get("val/loss")
        parts = [f"{name} {float(value):.4g}" for name, value in
                 (("train/loss", train), ("val/loss", val)) if value is not None]
        self.say(f"epoch {trainer.current_epoch}: {', '.join(parts)}; best {self.best.monitor} "
                 f"{self.best.best:.4g} at epoch {self.best.best_epoch}; "
                 f"{time.perf_counter() - self.start:.0f} s")


@dataclass
class TrainResult:
    """What `train` produced: the trained generator (best validation weights), metrics per split
    part, the checkpoint written (if any), and how training went."""

    generator: Generator
    metrics: dict[str, Any]
    config: dict[str, Any]
    checkpoint: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)


def train(
    cfg: DictConfig,
    out_dir: str | os.PathLike | None = None,
    evaluate_parts: tuple[str, ...] = ("val", "test"),
    progress: Callable[[str], None] | None = None,
    rw_items: int = 0,
    force: bool = False,
    protect: Iterable[str | os.PathLike] = (),
    command: str | None = None,
) -> TrainResult:
    """Train the experiment `cfg` (see `invdesign.training.config`); write outputs to `out_dir` (or
    `cfg.out_dir`). `progress`, if given, receives one line per epoch (see `EpochReport`);
    `rw_items` > 0 adds the forward-simulation Rw of that many test samples (`evaluate_generator`).

    The output folder is checked and locked before training (`invdesign.io.outputs.Output`: not
    an input, i.e. a data folder or a `protect` path; an existing non-empty one only with `force`),
    written out of sight and swapped in when complete. `command`, if given, also writes
    `MODEL_CARD.md` (naming that command) into it.

    Under DDP (`trainer.strategy=ddp`) only global rank 0 checks and writes the output folder,
    reports progress and evaluates; on another rank (a process started on another node or by
    torchrun) `train` returns after fitting with no metrics and `info['rank']` set.
    """
    out = out_dir if out_dir is not None else cfg.out_dir
    output = None
    lead = launch_rank(int(cfg.trainer.devices)) == 0
    if out and lead:
        roots = [] if OmegaConf.is_missing(cfg.data, "root") else data_roots(cfg)
        output = Output(out, [*protect, *roots, *cfg.data.augment, *cfg.data.extra], force,
                        folder=True)
    try:
        if not lead:
            return _fit(cfg, (), None, 0)
        result = _fit(cfg, evaluate_parts, progress, rw_items)
        if output is not None:
            with output:  # an OSError writing it becomes one line naming the folder
                assert output.tmp is not None
                ckpt = write_outputs(output.tmp, result.generator, result.config, result.metrics)
                if command is not None:
                    write_model_card(output.tmp, result.config, result.metrics, command)
                result.checkpoint = output.commit() / ckpt.name
        return result
    finally:
        if output is not None and not output.committed:
            output.discard()


def fit_worker(cfg: DictConfig) -> None:
    """A DDP worker process's part (`invdesign.training.ddp_worker`): fit, evaluate nothing."""
    _fit(cfg, (), None, 0)


def _fit(cfg: DictConfig, evaluate_parts: tuple[str, ...],
         progress: Callable[[str], None] | None, rw_items: int) -> TrainResult:
    """Everything of `train` but writing the outputs."""
    if OmegaConf.is_missing(cfg.data, "root") or not cfg.data.root:
        raise ConfigError("data.root is not set (give --data DIR [DIR ...] or data.root=...)")
    task = task_spec(cfg)
    ddp = cfg.trainer.strategy == "ddp"
    if cfg.trainer.num_threads:
        torch.set_num_threads(int(cfg.trainer.num_threads))
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    roots = data_roots(cfg)
    dm = ChiliTaskDataModule(
        roots[0] if len(roots) == 1 else roots,
        task,
        split_name(cfg.split.kind, cfg.split.get("fold")),
        int(cfg.split.seed),
        int(cfg.data.batch_size),
        int(cfg.data.eval_batch_size),
        tuple(cfg.data.condition_on),
        int(cfg.data.num_workers),
        list(cfg.data.augment),
        str(cfg.data.in_memory),
        list(cfg.data.extra),
        cfg.data.get("extra_share"),
        int(cfg.seed),
    )
    dm.setup("fit")
    cls = generator_class(cfg.generator.name)
    from_data = _hparams_from_data(cls, dm, str(cfg.data.in_memory).lower())
    hparams = {**from_data, **OmegaConf.to_container(cfg.generator.hparams, resolve=True)}
    generator = build_generator(cfg.generator.name, task, **hparams)
    new_elements = (start_from(generator, Path(str(cfg.trainer.init_from)))
                    if cfg.trainer.get("init_from") else [])
    module = GeneratorModule(generator, OmegaConf.to_container(cfg.optimizer, resolve=True))
    best = BestWeights(cfg.trainer.monitor)
    stopper = EarlyStopping(cfg.trainer.monitor, patience=int(cfg.trainer.patience), mode="min")
    callbacks: list[Callback] = [RankSeeds(int(cfg.seed)), best, stopper]
    if cfg.trainer.ema_decay:  # before BestWeights: validation must see the averaged weights
        callbacks.insert(0, EMAWeightAveraging(decay=float(cfg.trainer.ema_decay)))
    if progress is not None:
        callbacks.append(EpochReport(progress, best))
    strategy: str | WorkerDDPStrategy = "auto"
    if ddp:
        strategy = WorkerDDPStrategy(
            to_container(cfg), find_unused_parameters=_has_unused_parameters(generator, dm))
        # the epoch means are reduced over the processes by GeneratorModule itself
        warnings.filterwarnings("ignore", message=r"It is recommended to use `self\.log\(")
    trainer = L.Trainer(
        max_epochs=int(cfg.trainer.max_epochs),
        max_time=timedelta(minutes=float(cfg.trainer.max_time_minutes)),
        accelerator=cfg.trainer.accelerator,
        strategy=strategy,
        devices=int(cfg.trainer.devices),
        num_nodes=int(cfg.trainer.num_nodes),
        fast_dev_run=bool(cfg.trainer.fast_dev_run),
        limit_train_batches=float(cfg.trainer.limit_train_batches),
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=int(cfg.trainer.log_every_n_steps),
    )
    start = time.perf_counter()
    failed = True
    try:
        trainer.fit(module, datamodule=dm)
        failed = False
    finally:
        launcher = trainer.strategy.launcher
        if isinstance(launcher, _WorkerLauncher):
            launcher.finish(failed)
        close_process_group()
    seconds = time.perf_counter() - start
    generator = module.generator.cpu().eval()
    cond_on = tuple(cfg.data.condition_on)
    metrics: dict[str, Any] = {
        part: evaluate_generator(generator, dm.parts[part], int(cfg.data.eval_batch_size), cond_on,
                                 rw_items=rw_items if part == "test" else 0)
        for part in evaluate_parts
    }
    info = {
        "rank": trainer.global_rank,
        "processes": trainer.world_size,
        "data_in_memory": not dm.lazy,
        "epochs": trainer.current_epoch,
        "best_epoch": best.best_epoch,
        "best_" + cfg.trainer.monitor.replace("/", "_"): best.best,
        "stopped_early": bool(stopper.stopped_epoch),
        "train_seconds": round(seconds, 1),
        "n_train": len(dm.parts["train"]),
        "n_augment": dm.n_augment,
        "n_extra": dm.n_extra,
        "extra_files": dm.n_extra_files,
        "extra_fingerprint": dm.extra_fingerprint,
        "n_val": len(dm.parts["val"]),
        "n_test": len(dm.parts["test"]),
        "n_parameters": sum(p.numel() for p in generator.parameters()),
        "data_files": dm.n_files,
        "data_fingerprint": dm.data_fingerprint,
        "val_curve": best.curve,
        "init_new_elements": new_elements,
    }
    metrics["training"] = info
    config = to_container(cfg)
    return TrainResult(generator, metrics, config, None, info)


def _has_unused_parameters(generator: Generator, dm: ChiliTaskDataModule) -> bool:
    """Whether a parameter of `generator` gets no gradient from the loss of a training batch
    (e.g. a head a task does not use): DDP then has to look for such parameters after every
    backward pass (`find_unused_parameters`), else it would wait for their gradients forever.
    The probe runs on a copy (running statistics untouched) with the random state forked."""
    train = dm.parts["train"]
    rows = list(range(min(len(train), dm.batch_size)))
    probe = copy.deepcopy(generator)
    with torch.random.fork_rng():
        probe.loss(train.batch(rows, dm.condition_on))["loss"].backward()
    return any(p.requires_grad and p.grad is None for p in probe.parameters())


def _hparams_from_data(cls: type[Generator], dm: ChiliTaskDataModule,
                       in_memory: str) -> dict[str, Any]:
    """The generator's hyper-parameters read from the training part. A generator that needs every
    graph's arrays (the diffusion prior's prototype library) gets them read once for this when
    `data.in_memory` is 'auto'; 'false' refuses, naming the key."""
    if not hasattr(cls, "hparams_from_data"):
        return {}
    train = dm.parts["train"]
    try:
        return cls.hparams_from_data(train)
    except WholeDataRequired as exc:
        if in_memory == "false" or not isinstance(train, LazyTaskData):
            raise ConfigError(f"data.in_memory=false: the {cls.__name__} generator reads "
                              f"{exc.what} of every training graph to set its hyper-parameters; "
                              "use data.in_memory=auto or true") from None
        return cls.hparams_from_data(train.read(list(range(len(train)))))


def write_outputs(
    out: Path, generator: Generator, config: dict[str, Any], metrics: dict[str, Any]
) -> Path:
    """Checkpoint + metrics.json + config.yaml in `out`; returns the checkpoint file."""
    out.mkdir(parents=True, exist_ok=True)
    ckpt = save_checkpoint(out, generator, config, metrics)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(config)))
    return ckpt
