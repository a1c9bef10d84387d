"""Generator checkpoints: safetensors weights with the JSON metadata that rebuilds the model.

One file, `model.safetensors`, holds the weights and, in the safetensors header, an `invdesign`
entry: a JSON document with the format version, the generator name, the task, the hyper-parameters,
the resolved experiment config and the metrics. `load_checkpoint` rebuilds the generator from that
file alone. No pickle is involved.

A checkpoint path may be the `.safetensors` file or the folder holding `model.safetensors`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from invdesign.core.errors import CheckpointError, InvdesignError
from invdesign.core.tasks import TaskSpec
from invdesign.generators.base import Generator, build_generator
from invdesign.io.atomic import atomic_path

FILE_NAME = "model.safetensors"
FORMAT = "invdesign-generator"
VERSION = 1


def _file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_file() or path.suffix == ".safetensors":
        return path
    return path / FILE_NAME


def save_checkpoint(
    path: str | os.PathLike,
    generator: Generator,
    config: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write `generator` to `path` (a folder, created if needed, or a `.safetensors` file),
    atomically.

    Args:
        config: the resolved experiment config (plain data) that built and trained the model.
        metrics: evaluation results to keep with the weights.

    Returns:
        the `.safetensors` file written.
    """
    target = _file(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "generator": generator.name,
        "task": generator.task.to_dict(),
        "hparams": generator.hparams(),
        "config": config or {},
        "metrics": metrics or {},
    }
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in generator.state_dict().items()}
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp), metadata={"invdesign": json.dumps(meta, default=_jsonable)})
    return target


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata of a checkpoint (no weights loaded)."""
    file = _file(path)
    if not file.is_file():
        raise CheckpointError("checkpoint does not exist", file)
    try:
        with safe_open(str(file), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"not a safetensors checkpoint ({str(exc).splitlines()[0]})", file
        ) from None
    if "invdesign" not in header:
        raise CheckpointError(
            "safetensors file without invdesign metadata: not a generator checkpoint", file
        )
    try:
        meta = json.loads(header["invdesign"])
    except ValueError:
        raise CheckpointError("checkpoint metadata is not valid JSON", file) from None
    if meta.get("format") != FORMAT or not isinstance(meta.get("task"), dict):
        raise CheckpointError("not an invdesign generator checkpoint (wrong format entry)", file)
    if int(meta.get("version", 0)) > VERSION:
        raise CheckpointError(
            f"checkpoint format version {meta['version']} is newer than this "
            f"invdesign understands ({VERSION})",
            file,
        )
    return meta


def load_checkpoint(
    path: str | os.PathLike, task: TaskSpec | str | None = None, device: str | torch.device = "cpu"
) -> Generator:
    """Rebuild a generator from its checkpoint file alone, in eval mode on `device`.

    Args:
        task: if given (a `TaskSpec` or a name like 'xPDF->pos_abs'), the checkpoint must be for
            this task.

    Raises:
        CheckpointError: missing or foreign file, or a checkpoint of another task.
    """
    file = _file(path)
    meta = read_metadata(file)
    try:
        saved = TaskSpec.from_dict(meta["task"])
    except (InvdesignError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint task entry is invalid ({exc})", file) from None
    if task is not None:
        wanted = TaskSpec.parse(task) if isinstance(task, str) else task
        if (wanted.patterns, wanted.target) != (saved.patterns, saved.target):
            raise CheckpointError(f"checkpoint is for task {saved.name}, not {wanted.name}", file)
    try:
        generator = build_generator(meta["generator"], saved, **meta.get("hparams", {}))
    except InvdesignError as exc:
        raise CheckpointError(f"cannot rebuild generator: {exc}", file) from None
    with safe_open(str(file), framework="pt", device="cpu") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
    try:
        generator.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(
            f"weights do not fit generator {meta['generator']!r}: {str(exc).splitlines()[0]}", file
        ) from None
    return generator.to(device).eval()
