"""Generator checkpoints: safetensors weights with the JSON metadata that rebuilds the model.

One file, `model.safetensors`, holds the weights and, in the safetensors header, an `invdesign`
entry: a JSON document with the format version, the generator name, the task, the hyper-parameters,
the resolved experiment config and the metrics. `load_checkpoint` rebuilds the generator from that
file alone. No pickle is involved.

A checkpoint path may be the `.safetensors` file or the folder holding `model.safetensors`.

Metadata is untrusted input (a file can be edited): `read_metadata` checks its entries' types, and
`load_checkpoint` checks the hyper-parameters against the generator class (`check_hparams`: known
keys, types, bounds) and the model's size on the `meta` device against `max_parameters`, all before
any weight is allocated.
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
from invdesign.core.schema import MAX_INT, count_parameters_meta, widths
from invdesign.core.tasks import TaskSpec
from invdesign.generators.base import Generator, generator_class
from invdesign.io.atomic import atomic_path

FILE_NAME = "model.safetensors"
FORMAT = "invdesign-generator"
VERSION = 1
#: refuse to build a generator with more parameters (plus buffers) than this, unless
#: `load_checkpoint(max_parameters=...)` raises it; the shipped models have under 2 million
MAX_PARAMETERS = 100_000_000
#: metadata entries and the JSON type each must have
_META_TYPES: dict[str, type | tuple[type, ...]] = {
    "format": str, "version": int, "generator": str, "task": dict, "hparams": dict,
    "config": dict, "metrics": dict,
}


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
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError("not an invdesign generator checkpoint (wrong format entry)", file)
    unknown = sorted(set(meta) - set(_META_TYPES))
    if unknown:
        raise CheckpointError(
            f"unknown checkpoint metadata {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(_META_TYPES)}",
            file,
        )
    for key, kind in _META_TYPES.items():
        value = meta.get(key, {} if kind is dict else None)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise CheckpointError(
                f"checkpoint metadata {key!r} must be a JSON {_json_name(kind)}, not "
                f"{type(value).__name__} {value!r:.40}",
                file,
            )
    _check_sections(meta, file)
    if not 1 <= meta["version"] <= VERSION:
        raise CheckpointError(
            f"checkpoint format version {meta['version']} is not one this invdesign "
            f"understands (1..{VERSION})",
            file,
        )
    return meta


#: (entry, section, key) -> type of the config and metrics parts that readers of a checkpoint use
#: (`training.evaluate`: the split, the condition extras, the training data fingerprint)
_SECTION_TYPES: dict[tuple[str, str, str | None], tuple[type, ...]] = {
    ("config", "split", None): (dict,),
    ("config", "split", "kind"): (str,),
    ("config", "split", "seed"): (int,),
    ("config", "data", None): (dict,),
    ("config", "data", "condition_on"): (list,),
    ("config", "seed", None): (int, type(None)),
    ("metrics", "training", None): (dict,),
    ("metrics", "training", "data_fingerprint"): (str, type(None)),
}


def _check_sections(meta: dict[str, Any], file: Path) -> None:
    """Refuse config/metrics parts of the wrong JSON type (bools are not integers here)."""
    for (entry, section, key), kinds in _SECTION_TYPES.items():
        if section not in meta[entry]:
            continue
        value = meta[entry][section]
        if key is not None:
            if not isinstance(value, dict) or key not in value:
                continue
            value = value[key]
        name = ".".join(k for k in (entry, section, key) if k)
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if ok and isinstance(value, list):
            ok = all(isinstance(v, str) for v in value)
        if not ok:
            raise CheckpointError(
                f"checkpoint metadata {name} has the wrong type ({type(value).__name__} "
                f"{value!r:.40})",
                file,
            )


def _json_name(kind: type | tuple[type, ...]) -> str:
    return {str: "string", int: "integer", dict: "object"}[kind]  # type: ignore[index]


def _task(meta: dict[str, Any], file: Path) -> TaskSpec:
    """The checkpoint's task, its entries type-checked (max_atoms sizes the output layers)."""
    task = meta["task"]
    patterns, target, max_atoms = (task.get(k) for k in ("patterns", "target", "max_atoms"))
    if (
        not isinstance(patterns, list)
        or not all(isinstance(p, str) for p in patterns)
        or not isinstance(target, str)
        or not isinstance(max_atoms, int)
        or isinstance(max_atoms, bool)
        or not 1 <= max_atoms <= MAX_INT
        or set(task) - {"patterns", "target", "max_atoms"}
    ):
        raise CheckpointError(
            "checkpoint task entry is invalid: need patterns (list of names), target (name) and "
            f"max_atoms (integer 1..{MAX_INT}), got {json.dumps(task)[:80]}",
            file,
        )
    try:
        return TaskSpec.from_dict(task)
    except InvdesignError as exc:
        raise CheckpointError(f"checkpoint task entry is invalid ({exc})", file) from None


def load_checkpoint(
    path: str | os.PathLike,
    task: TaskSpec | str | None = None,
    device: str | torch.device = "cpu",
    max_parameters: int = MAX_PARAMETERS,
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
    saved = _task(meta, file)
    if task is not None:
        wanted = TaskSpec.parse(task) if isinstance(task, str) else task
        if (wanted.patterns, wanted.target) != (saved.patterns, saved.target):
            raise CheckpointError(f"checkpoint is for task {saved.name}, not {wanted.name}", file)
    hparams = meta["hparams"]
    try:
        cls = generator_class(meta["generator"])
        cls.check_hparams(hparams)
        n_params = count_parameters_meta(lambda: cls(saved, **hparams))
    except InvdesignError as exc:
        raise CheckpointError(f"cannot rebuild generator: {exc.message}", file) from None
    if n_params is None:  # not buildable on meta (e3nn): bound by the two widest widths instead
        (a, wa), (b, wb) = ([*widths(hparams), ("-", 1), ("-", 1)])[:2]
        if wa * wb > max_parameters:
            raise CheckpointError(
                f"generator {meta['generator']!r}: widths {a}={wa} and {b}={wb} make a layer "
                f"of {wa * wb:,} parameters, above the limit of {max_parameters:,} "
                "(load_checkpoint(max_parameters=...) raises it)",
                file,
            )
    elif n_params > max_parameters:
        raise CheckpointError(
            f"generator {meta['generator']!r} with these hparams has {n_params:,} parameters, "
            f"above the limit of {max_parameters:,} (load_checkpoint(max_parameters=...) "
            "raises it)",
            file,
        )
    try:
        generator = cls(saved, **hparams)
    except Exception as exc:  # noqa: BLE001 - any failure to build from the file's values
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot rebuild generator: {text}", file) from None
    with safe_open(str(file), framework="pt", device="cpu") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
    try:
        generator.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(
            f"weights do not fit generator {meta['generator']!r}: {str(exc).splitlines()[0]}", file
        ) from None
    return generator.to(device).eval()
