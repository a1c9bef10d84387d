"""Property checkpoints: `model.safetensors` (weights) + `config.json` (TrainConfig, scalers,
metrics) in one folder, so loading rebuilds the network from the folder alone.

`config.json` is untrusted input (it can be edited): its entries are checked (types, finite
scalers, `train_config` against `TrainConfig`'s fields and sane bounds) and the network's size is
counted on the `meta` device, before any weight is allocated.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from invdesign.core.errors import CheckpointError, InvdesignError
from invdesign.core.schema import check_fields, count_parameters_meta, signature_hints
from invdesign.io.atomic import atomic_path, atomic_write_text

WEIGHTS, CONFIG = "model.safetensors", "config.json"
FORMAT = "invdesign-property/1"
#: refuse to build a network with more parameters (plus buffers) than this, unless
#: `load_property_checkpoint(max_parameters=...)` raises it
MAX_PARAMETERS = 50_000_000


def save_property_checkpoint(
    folder: str | os.PathLike, predictor, extra: dict | None = None
) -> Path:
    """Write weights and config of a `predictor.Predictor` into `folder`; returns it."""
    # lazy: heavy libraries load only when a checkpoint is used
    from safetensors.torch import save_file  # noqa: PLC0415

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # cloned: an ensemble's members share one element-feature table, which safetensors refuses
    tensors = {
        k: v.detach().cpu().contiguous().clone() for k, v in predictor.net.state_dict().items()
    }
    config = {
        "format": FORMAT,
        "train_config": predictor.cfg.to_dict(),
        "y_mean": predictor.y_mean,
        "y_std": predictor.y_std,
        "desc_mean": None if predictor.desc_mean is None else predictor.desc_mean.tolist(),
        "desc_std": None if predictor.desc_std is None else predictor.desc_std.tolist(),
        "metrics": predictor.metrics,
        **(extra or {}),
    }
    with atomic_path(folder / WEIGHTS) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
    atomic_write_text(folder / CONFIG, json.dumps(config, indent=1))
    return folder


def _finite(config: dict[str, Any], key: str, file: Path) -> float:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CheckpointError(f"{key} must be a finite number, not {value!r:.40}", file)
    return float(value)


def _scaler(config: dict[str, Any], key: str, n: int, file: Path) -> np.ndarray | None:
    """desc_mean / desc_std: None when the model takes no descriptors, else n finite numbers."""
    value = config.get(key)
    if n == 0 and value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != n
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        or not all(math.isfinite(v) for v in value)
    ):
        raise CheckpointError(
            f"{key} must be a list of {n} finite numbers for this train_config, not "
            f"{json.dumps(value)[:40]}",
            file,
        )
    return np.asarray(value, dtype=float)


def load_property_checkpoint(
    path: str | os.PathLike, device: str = "cpu", max_parameters: int = MAX_PARAMETERS
):
    """A `predictor.Predictor` from a checkpoint folder (or a file inside it).

    Raises:
        CheckpointError: a missing file or, in one line naming `config.json` and the entry, an
            entry of the wrong type, a non-finite scaler, an unknown or out-of-range training
            option, or a network larger than `max_parameters`.
    """
    # lazy: heavy libraries load only when a checkpoint is used
    from safetensors.torch import load_file  # noqa: PLC0415

    # lazy: heavy libraries load only when a checkpoint is used (not the training stack:
    # `predictor` predicts without torch_geometric)
    from invdesign.evaluators.property.predictor import (  # noqa: PLC0415
        Predictor,
        TrainConfig,
        build_network,
        n_descriptor_inputs,
    )

    path = Path(path)
    folder = path.parent if path.is_file() else path
    file = folder / CONFIG
    if not (folder / WEIGHTS).is_file() or not file.is_file():
        raise CheckpointError(f"not a property checkpoint (needs {WEIGHTS} and {CONFIG})", path)
    try:
        config = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"not readable JSON ({str(exc).splitlines()[0]})", file) from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise CheckpointError(f"unknown checkpoint format {found!r:.40}", file)
    train_config = config.get("train_config")
    if not isinstance(config.get("metrics", {}), dict):
        raise CheckpointError("metrics must be a JSON object", file)
    try:
        hints = signature_hints(TrainConfig)
        check_fields(train_config, hints, str(file), what="train_config option")
        # checkpoints written before element features existed were trained without them
        cfg = TrainConfig(**{"element_features": False, **train_config})
        n_params = count_parameters_meta(lambda: build_network(cfg))
    except InvdesignError as exc:
        raise CheckpointError(exc.message, file) from None
    y_mean, y_std = _finite(config, "y_mean", file), _finite(config, "y_std", file)
    if y_std <= 0:
        raise CheckpointError(f"y_std must be positive, not {y_std}", file)
    n_desc = n_descriptor_inputs(cfg)
    desc = [_scaler(config, k, n_desc, file) for k in ("desc_mean", "desc_std")]
    if n_params is not None and n_params > max_parameters:
        raise CheckpointError(
            f"the network of this train_config has {n_params:,} parameters, above the limit of "
            f"{max_parameters:,} (load_property_checkpoint(max_parameters=...) raises it)",
            file,
        )
    try:
        net = build_network(cfg)
        net.load_state_dict(load_file(folder / WEIGHTS, device=device))
    except (ValueError, KeyError, RuntimeError, TypeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot load property checkpoint ({first})", folder) from None
    return Predictor(
        net.to(device).eval(),
        cfg,
        y_mean,
        y_std,
        *desc,
        metrics=config.get("metrics", {}),
        info=config,
    )
