"""Experiment configuration: an experiment file composed from config groups, validated against a
schema, interpolations resolved, read-only after load.

An experiment file (`configs/experiment/<name>.yaml`) lists groups and adds its own keys:

    defaults:
      - data/chili3k
      - task/xpdf_pos_abs
      - split/chili_random
      - generator/mlp
      - trainer/mlp
    name: mlp_xpdf_pos_abs

Each entry names `configs/<group>/<option>.yaml`, a fragment of the experiment (top-level keys),
merged in list order, the experiment's own keys last (`compose`); a file without `defaults` is
a whole experiment. The schema is a set of dataclasses read by OmegaConf (structured config):
unknown keys and wrongly typed values are rejected when a fragment is merged; resolvers
(`${oc.env:...}`) are refused (`refuse_resolvers`) and `${key}` interpolations resolved at load
(`resolve`); `validate` then checks values (task name, split kind, ranges) and the generator's
hyper-parameters (`Generator.check_hparams`). Overrides use OmegaConf's dotlist syntax,
e.g. `trainer.max_epochs=5 split.kind=grouped`.

    cfg = load_config("configs/experiment/mlp_xpdf_pos_abs.yaml", ["trainer.max_epochs=5"], "/data")
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from invdesign.core.errors import ConfigError, InvdesignError
from invdesign.core.tasks import TaskSpec
from invdesign.data.splits import split_name
from invdesign.generators.base import generator_class

SPLIT_KINDS = ("chili_random", "grouped", "leave_type_out")
#: One data folder or several.
DataRoot = str | os.PathLike | Sequence[str | os.PathLike]
CONDITION_EXTRAS = ("composition", "cell", "n_atoms")
#: The repository's config groups: where `defaults` entries are looked up last.
REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"
_GROUP_ENTRY = re.compile(r"[A-Za-z0-9_]+(/[A-Za-z0-9_][A-Za-z0-9_.-]*)+")
#: `${name:` opens a resolver call (`${oc.env:HOME}`); `${a.b}` is a plain interpolation.
_RESOLVER_CALL = re.compile(r"\$\{\s*[A-Za-z_][\w.]*\s*:")


@dataclass
class DataConfig:
    """root: folder of CHILI-layout `.h5` files, or a list of folders trained on together (e.g.
    CHILI-3K and the `clusters` set); condition_on: extras the model sees besides the patterns;
    augment: folders of extra training graphs (e.g. more particle sizes cut from the same unit
    cells by `invdesign data build chili3k --radii ...`), of which only the graphs of sources in
    the training part are used; validation and test come from `root` alone.
    extra: folders of other sources trained on besides `root` (e.g. the synthetic set of
    `invdesign data build synthetic`): all their graphs join the training part (under
    leave_type_out not the held-out type's nor its lookalikes), validation and test still come
    from `root` alone, so the test figures compare with a model trained on `root` only.
    extra_share: None trains on every extra graph in every epoch; a fraction in (0, 1) makes each
    epoch every training graph of `root` plus a fresh subset of the extra graphs that is this
    share of the epoch (so a large extra set does not crowd out `root`).
    in_memory: 'true' reads the task arrays of every graph once and keeps them in memory (fast
    epochs); 'false' reads each batch's graphs from the HDF5 files through the on-disk index, so
    memory does not grow with the data set; 'auto' keeps them in memory when their estimated size
    is at most a quarter of the available memory (`task_data.in_memory_limit`). batch_size is per
    process."""

    root: Any = "???"
    batch_size: int = 16
    eval_batch_size: int = 256
    num_workers: int = 0
    condition_on: list[str] = field(default_factory=list)
    augment: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    extra_share: float | None = None
    in_memory: str = "auto"


@dataclass
class TaskConfig:
    """name: 'PATTERN->TARGET' (CHILI Table 5); max_atoms: None = CHILI's limit (20 / 200)."""

    name: str = "xPDF->pos_abs"
    max_atoms: int | None = None


@dataclass
class SplitConfig:
    """kind: 'chili_random' (CHILI's per-graph split), 'grouped' (by source file) or
    'leave_type_out' (fold: the CHILI-3K crystal type held out for test, name or index 0-11)."""

    kind: str = "chili_random"
    seed: int = 42
    fold: str | None = None


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
    weights; 0 turns it off.
    devices, num_nodes, strategy: processes per node, nodes, and Lightning's strategy: 'auto'
    (one process) or 'ddp' (distributed data parallel: one process per device, each training on
    its shard of the training set, gradients averaged; on CPU the processes talk over gloo).
    With 'ddp' the global batch is devices x num_nodes x data.batch_size.
    init_from: a checkpoint (folder or weights file) whose weights the run starts from
    (fine-tuning, or training on for longer); it must be of the same generator, task and
    hyper-parameters that shape the network. None: fresh weights from `seed`."""

    max_epochs: int = 1000
    patience: int = 50
    monitor: str = "val/loss"
    max_time_minutes: float = 60.0
    accelerator: str = "cpu"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    fast_dev_run: bool = False
    limit_train_batches: float = 1.0
    num_threads: int | None = 1
    log_every_n_steps: int = 50
    ema_decay: float = 0.0
    init_from: str | None = None


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
        key = getattr(exc, "full_key", None)
        raise ConfigError(f"invalid configuration: {key}: {msg}" if key
                          else f"invalid configuration: {msg}", where) from None


def _build(
    fragments: Sequence[tuple[str, Any]],
    overrides: list[str] | None,
    data_root: DataRoot | None,
    where: str,
) -> DictConfig:
    """The schema, each (file, values) fragment merged over it in order, then the dotlist
    overrides and `data_root`; interpolations refused or resolved, values validated, frozen."""
    cfg = OmegaConf.structured(ExperimentConfig)
    for origin, values in fragments:
        cfg = _merge(cfg, values, origin)
    if overrides:
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise ConfigError(f"override {bad[0]!r} is not of the form key=value")
        try:
            dot = OmegaConf.from_dotlist(list(overrides))
        except OmegaConfBaseException as exc:
            raise ConfigError(f"bad override: {str(exc).splitlines()[0]}") from None
        cfg = _merge(cfg, dot, "overrides")
    refuse_resolvers(cfg, where)
    if data_root is not None:
        items = [data_root] if isinstance(data_root, str | os.PathLike) else list(data_root)
        cfg.data.root = str(items[0]) if len(items) == 1 else [str(d) for d in items]
    resolve(cfg, where)
    validate(cfg, where)
    OmegaConf.set_readonly(cfg, True)
    return cfg


def config_from_dict(
    values: dict[str, Any] | DictConfig,
    overrides: list[str] | None = None,
    data_root: DataRoot | None = None,
    where: str = "config",
) -> DictConfig:
    """Schema-checked, validated, read-only config from a plain dict (+ dotlist overrides);
    `data_root` (one folder or a list) replaces `data.root`."""
    return _build([(where, values)], overrides, data_root, where)


def load_config(
    path: str | os.PathLike,
    overrides: list[str] | None = None,
    data_root: DataRoot | None = None,
) -> DictConfig:
    """Read an experiment YAML (its `defaults` list composed, see `compose`), apply overrides and
    `data_root`, resolve interpolations, validate, freeze."""
    path = Path(path)
    return _build(compose(path), overrides, data_root, str(path))


def _read_yaml(path: Path) -> DictConfig:
    if not path.is_file():
        moved = path.parent / "experiment" / path.name
        hint = f"; experiments are in {moved.parent}/" if moved.is_file() else ""
        raise ConfigError(f"config file does not exist{hint}", path)
    try:
        raw = OmegaConf.load(path)
    except Exception as exc:  # yaml errors come in several types
        raise ConfigError(f"not a readable YAML file ({str(exc).splitlines()[0]})", path) from None
    if not isinstance(raw, DictConfig):
        raise ConfigError("a config file must hold a mapping", path)
    return raw


def compose(path: str | os.PathLike) -> list[tuple[str, DictConfig]]:
    """The fragments an experiment file is made of, in merge order: for each entry of its
    `defaults` list (e.g. `generator/mlp`, the file `<configs>/generator/mlp.yaml`, itself
    composed the same way) its fragments, then the file's own keys. `<configs>` is the folder
    above `experiment/` (or the file's own folder), then the repository's `configs/`. Group files
    hold top-level keys of the experiment (`generator:`, `trainer:`, ...), so one group may set
    several sections. A file without `defaults` is one fragment."""
    path = Path(path)
    root = path.parent.parent if path.parent.name == "experiment" else path.parent
    return _compose(path, root, ())


def _compose(path: Path, root: Path, chain: tuple[Path, ...]) -> list[tuple[str, DictConfig]]:
    raw = _read_yaml(path)
    if "defaults" not in raw:
        return [(str(path), raw)]
    entries = raw.pop("defaults")
    if not isinstance(entries, ListConfig) or not all(
        isinstance(e, str) and _GROUP_ENTRY.fullmatch(e) for e in entries
    ):
        raise ConfigError(
            "defaults must be a list of group/option names such as generator/mlp", path)
    fragments: list[tuple[str, DictConfig]] = []
    for entry in entries:
        file = next((r / f"{entry}.yaml" for r in (root, REPO_CONFIGS)
                     if (r / f"{entry}.yaml").is_file()), None)
        if file is None:
            raise ConfigError(f"defaults entry {entry!r}: no {root / entry}.yaml", path)
        if file.resolve() in chain:
            raise ConfigError(f"defaults entry {entry!r} includes itself", path)
        fragments += _compose(file, root, (*chain, path.resolve()))
    return [*fragments, (str(path), raw)]


def refuse_resolvers(cfg: DictConfig, where: str = "config") -> None:
    """Refuse resolvers (`${oc.env:...}` and the like): an experiment must not depend on the
    environment, nor store it in a checkpoint."""
    for key, value in _leaves(OmegaConf.to_container(cfg, resolve=False)):
        if isinstance(value, str) and _RESOLVER_CALL.search(value):
            raise ConfigError(
                f"{key}: resolvers such as ${{oc.env:...}} are not allowed in experiment "
                f"configs ({value!r}); write the value itself", where)


def resolve(cfg: DictConfig, where: str = "config") -> None:
    """Resolve every `${key}` interpolation in place, so that a dangling one fails here, before
    training, and the config stored with a checkpoint holds values only."""
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        msg = str(exc).splitlines()[0]
        raise ConfigError(f"{key}: {msg}" if key else msg, where) from None


def _leaves(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) of every leaf of plain nested dicts and lists."""
    if isinstance(node, dict):
        items = [(f"{prefix}.{k}" if prefix else str(k), v) for k, v in node.items()]
    elif isinstance(node, list):
        items = [(f"{prefix}[{i}]", v) for i, v in enumerate(node)]
    else:
        return [(prefix, node)]
    return [leaf for key, value in items for leaf in _leaves(value, key)]


#: (key, smallest, largest) of the numbers the schema types but cannot bound; None: no bound.
RANGES: tuple[tuple[str, float | None, float | None], ...] = (
    ("seed", 0, 2**32 - 1),
    ("split.seed", 0, 2**32 - 1),
    ("data.batch_size", 1, 100_000),
    ("data.eval_batch_size", 1, 100_000),
    ("data.num_workers", 0, 256),
    ("task.max_atoms", 1, 100_000),
    ("optimizer.weight_decay", 0, None),
    ("trainer.max_epochs", 1, None),
    ("trainer.patience", 1, None),
    ("trainer.devices", 1, 1024),
    ("trainer.num_nodes", 1, 1024),
    ("trainer.num_threads", 1, 1024),
    ("trainer.log_every_n_steps", 1, None),
)
#: Keys that must be finite and above zero.
POSITIVE = ("optimizer.lr", "trainer.max_time_minutes", "trainer.limit_train_batches")
ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "auto")
OPTIMIZERS = ("adam", "adamw", "sgd")
#: Lightning strategies `invdesign train` runs: 'ddp' launches the other processes of a node as
#: `python -m invdesign.training.ddp_worker` (see `invdesign.training.distributed`).
STRATEGIES = ("auto", "ddp")
IN_MEMORY = ("auto", "true", "false")


def validate(cfg: DictConfig, where: str = "config") -> None:
    """Value checks the schema cannot express; raises `ConfigError` naming the key."""

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
    try:
        split_name(cfg.split.kind, cfg.split.get("fold"))
    except ConfigError as exc:
        fail(exc.message)
    for extra in cfg.data.condition_on:
        if extra not in CONDITION_EXTRAS:
            fail(
                f"data.condition_on: unknown extra {extra!r}; "
                f"choose from {', '.join(CONDITION_EXTRAS)}"
            )
    for key, low, high in RANGES:
        value = OmegaConf.select(cfg, key)
        if value is not None and (
            not math.isfinite(value) or (low is not None and value < low)
            or (high is not None and value > high)
        ):
            bound = f"at least {low}" if high is None else f"in [{low}, {high}]"
            fail(f"{key} must be {bound}, got {value}")
    for key in POSITIVE:
        value = OmegaConf.select(cfg, key)
        if not (math.isfinite(value) and value > 0):
            fail(f"{key} must be positive, got {value}")
    share = OmegaConf.select(cfg, "data.extra_share")
    if share is not None:
        if not (math.isfinite(share) and 0.0 < share < 1.0):
            fail(f"data.extra_share must be a fraction in (0, 1), got {share}")
        if not cfg.data.extra:
            fail("data.extra_share is set but data.extra names no folder")
    if cfg.trainer.limit_train_batches > 1.0:
        fail(f"trainer.limit_train_batches is a fraction in (0, 1], got "
             f"{cfg.trainer.limit_train_batches}")
    if not 0.0 <= cfg.trainer.ema_decay < 1.0:
        fail(f"trainer.ema_decay must be in [0, 1), got {cfg.trainer.ema_decay}")
    if not cfg.trainer.monitor.startswith("val/"):
        fail(f"trainer.monitor must name a validation metric (val/...), not "
             f"{cfg.trainer.monitor!r}")
    if cfg.trainer.accelerator not in ACCELERATORS:
        fail(f"trainer.accelerator must be one of {', '.join(ACCELERATORS)}, not "
             f"{cfg.trainer.accelerator!r}")
    strategy = cfg.trainer.strategy
    if strategy not in STRATEGIES:
        hint = ("; 'ddp' runs the same processes without pickling the model"
                if strategy.startswith("ddp") else "")
        fail(f"trainer.strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}{hint}")
    processes = cfg.trainer.devices * cfg.trainer.num_nodes
    if strategy == "auto" and processes > 1:
        fail(f"trainer.devices={cfg.trainer.devices} with trainer.num_nodes="
             f"{cfg.trainer.num_nodes} needs trainer.strategy=ddp")
    if strategy == "ddp" and cfg.trainer.fast_dev_run:
        fail("trainer.fast_dev_run is a single-process smoke run; use trainer.strategy=auto")
    if str(cfg.data.in_memory).lower() not in IN_MEMORY:
        fail(f"data.in_memory must be one of {', '.join(IN_MEMORY)}, not {cfg.data.in_memory!r}")
    if cfg.optimizer.name.lower() not in OPTIMIZERS:
        fail(f"optimizer.name must be adam, adamw or sgd, not {cfg.optimizer.name!r}")
    try:
        cls = generator_class(cfg.generator.name)
    except InvdesignError as exc:
        fail(f"generator.name: {exc}")
    try:  # the generator's own check: its signature or typed hparams_schema, sane sizes
        cls.check_hparams(OmegaConf.to_container(cfg.generator.hparams), where)
    except InvdesignError as exc:
        fail(f"generator.hparams: {exc.message}")


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
