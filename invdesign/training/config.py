"""Experiment configuration: one YAML per experiment, validated against a schema, read-only after
load.

The schema is a set of dataclasses read by OmegaConf (structured config): unknown keys and wrongly
typed values are rejected when the YAML is merged; `validate` then checks values (task name, split
kind, generator name, positive numbers). Overrides use OmegaConf's dotlist syntax, e.g.
`trainer.max_epochs=5 split.kind=grouped`.

    cfg = load_config("configs/mlp_xpdf_pos_abs.yaml", ["trainer.max_epochs=5"], "/data")
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from invdesign.core.errors import ConfigError, InvdesignError
from invdesign.core.tasks import TaskSpec

SPLIT_KINDS = ("chili_random", "grouped")
#: One data folder or several.
DataRoot = str | os.PathLike | Sequence[str | os.PathLike]
CONDITION_EXTRAS = ("composition", "cell", "n_atoms")


@dataclass
class DataConfig:
    """root: folder of CHILI-layout `.h5` files, or a list of folders trained on together (e.g.
    CHILI-3K and the `clusters` set); condition_on: extras the model sees besides the patterns;
    augment: folders of extra training graphs (e.g. more particle sizes cut from the same unit
    cells by `invdesign data build chili3k --radii ...`), of which only the graphs of sources in
    the training part are used; validation and test come from `root` alone."""

    root: Any = "???"
    batch_size: int = 16
    eval_batch_size: int = 256
    num_workers: int = 0
    condition_on: list[str] = field(default_factory=list)
    augment: list[str] = field(default_factory=list)


@dataclass
class TaskConfig:
    """name: 'PATTERN->TARGET' (CHILI Table 5); max_atoms: None = CHILI's limit (20 / 200)."""

    name: str = "xPDF->pos_abs"
    max_atoms: int | None = None


@dataclass
class SplitConfig:
    """kind: 'chili_random' (CHILI's per-graph split) or 'grouped' (by source file)."""

    kind: str = "chili_random"
    seed: int = 42


@dataclass
class GeneratorConfig:
    name: str = "mlp"
    hparams: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimizerConfig:
    """CHILI: Adam, learning rate 0.01 (their GCN defaults, used for every baseline).
    fused: torch's fused Adam/AdamW kernel (same update, faster on CPU)."""

    name: str = "adam"
    lr: float = 0.01
    weight_decay: float = 0.0
    fused: bool = True


@dataclass
class TrainerConfig:
    """patience: early-stopping epochs without improvement of `monitor` (CHILI: 50);
    max_time_minutes: wall-clock cap per run (CHILI: 60); num_threads: torch CPU threads
    (None: torch's default); ema_decay: exponential moving average of the weights per optimiser
    step (Lightning's `EMAWeightAveraging`), validated, kept and shipped instead of the raw
    weights; 0 turns it off."""

    max_epochs: int = 1000
    patience: int = 50
    monitor: str = "val/loss"
    max_time_minutes: float = 60.0
    accelerator: str = "cpu"
    devices: int = 1
    fast_dev_run: bool = False
    limit_train_batches: float = 1.0
    num_threads: int | None = 1
    log_every_n_steps: int = 50
    ema_decay: float = 0.0


@dataclass
class ExperimentConfig:
    """One experiment: data x task x split x generator x optimiser x trainer, with a seed."""

    name: str = "experiment"
    seed: int = 42
    out_dir: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def _merge(base: DictConfig, other: Any, where: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, other)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        msg = str(exc).splitlines()[0]
        raise ConfigError(f"invalid configuration: {msg}", where) from None


def config_from_dict(
    values: dict[str, Any] | DictConfig,
    overrides: list[str] | None = None,
    data_root: DataRoot | None = None,
    where: str = "config",
) -> DictConfig:
    """Schema-checked, validated, read-only config from a plain dict (+ dotlist overrides);
    `data_root` (one folder or a list) replaces `data.root`."""
    cfg = _merge(OmegaConf.structured(ExperimentConfig), values, where)
    if overrides:
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise ConfigError(f"override {bad[0]!r} is not of the form key=value")
        try:
            dot = OmegaConf.from_dotlist(list(overrides))
        except OmegaConfBaseException as exc:
            raise ConfigError(f"bad override: {str(exc).splitlines()[0]}") from None
        cfg = _merge(cfg, dot, "overrides")
    if data_root is not None:
        items = [data_root] if isinstance(data_root, str | os.PathLike) else list(data_root)
        cfg.data.root = str(items[0]) if len(items) == 1 else [str(d) for d in items]
    validate(cfg, where)
    OmegaConf.set_readonly(cfg, True)
    return cfg


def load_config(
    path: str | os.PathLike,
    overrides: list[str] | None = None,
    data_root: DataRoot | None = None,
) -> DictConfig:
    """Read an experiment YAML, apply overrides and `data_root`, validate, freeze."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config file does not exist", path)
    try:
        raw = OmegaConf.load(path)
    except Exception as exc:  # yaml errors come in several types
        raise ConfigError(f"not a readable YAML file ({str(exc).splitlines()[0]})", path) from None
    if not isinstance(raw, DictConfig):
        raise ConfigError("a config file must hold a mapping", path)
    return config_from_dict(raw, overrides, data_root, where=str(path))


def validate(cfg: DictConfig, where: str = "config") -> None:
    """Value checks the schema cannot express; raises `ConfigError` naming the key."""
    from invdesign.generators.base import generator_class

    def fail(msg: str) -> None:
        raise ConfigError(msg, where)

    try:
        task_spec(cfg)
    except InvdesignError as exc:
        fail(f"task.name: {exc}")
    if not OmegaConf.is_missing(cfg.data, "root"):
        root = cfg.data.root
        items = [root] if isinstance(root, str) else root
        if not isinstance(items, ListConfig | list) or not items or not all(
            isinstance(item, str) and item for item in items
        ):
            fail(f"data.root must be a folder or a list of folders, not {root!r}")
    if cfg.split.kind not in SPLIT_KINDS:
        fail(f"split.kind must be one of {', '.join(SPLIT_KINDS)}, not {cfg.split.kind!r}")
    for extra in cfg.data.condition_on:
        if extra not in CONDITION_EXTRAS:
            fail(
                f"data.condition_on: unknown extra {extra!r}; "
                f"choose from {', '.join(CONDITION_EXTRAS)}"
            )
    try:
        generator_class(cfg.generator.name)
    except InvdesignError as exc:
        fail(f"generator.name: {exc}")
    for key, value in (
        ("data.batch_size", cfg.data.batch_size),
        ("trainer.max_epochs", cfg.trainer.max_epochs),
        ("optimizer.lr", cfg.optimizer.lr),
        ("trainer.max_time_minutes", cfg.trainer.max_time_minutes),
    ):
        if value <= 0:
            fail(f"{key} must be positive, got {value}")
    if not 0.0 <= cfg.trainer.ema_decay < 1.0:
        fail(f"trainer.ema_decay must be in [0, 1), got {cfg.trainer.ema_decay}")
    if cfg.trainer.patience < 1:
        fail(f"trainer.patience must be at least 1, got {cfg.trainer.patience}")
    if cfg.optimizer.name.lower() not in ("adam", "adamw", "sgd"):
        fail(f"optimizer.name must be adam, adamw or sgd, not {cfg.optimizer.name!r}")


def data_roots(cfg: DictConfig) -> list[str]:
    """The data folders of a config: `data.root` as a list (one folder or several)."""
    root = cfg.data.root
    return [str(root)] if isinstance(root, str) else [str(item) for item in root]


def task_spec(cfg: DictConfig) -> TaskSpec:
    """The `TaskSpec` a config describes."""
    return TaskSpec.parse(cfg.task.name, cfg.task.max_atoms)


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain JSON-able Python data."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
