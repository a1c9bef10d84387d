"""Property checkpoints: `model.safetensors` (weights) + `config.json` (TrainConfig, scalers,
metrics) in one folder, so loading rebuilds the network from the folder alone."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from invdesign.core.errors import CheckpointError
from invdesign.io.atomic import atomic_path, atomic_write_text

WEIGHTS, CONFIG = "model.safetensors", "config.json"
FORMAT = "invdesign-property/1"


def save_property_checkpoint(
    folder: str | os.PathLike, predictor, extra: dict | None = None
) -> Path:
    """Write weights and config of a `train.Predictor` into `folder`; returns it."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in predictor.net.state_dict().items()}
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


def load_property_checkpoint(path: str | os.PathLike, device: str = "cpu"):
    """A `train.Predictor` from a checkpoint folder (or a file inside it)."""
    from safetensors.torch import load_file

    from invdesign.evaluators.property.train import Predictor, TrainConfig, build_network

    path = Path(path)
    folder = path.parent if path.is_file() else path
    if not (folder / WEIGHTS).is_file() or not (folder / CONFIG).is_file():
        raise CheckpointError(f"not a property checkpoint (needs {WEIGHTS} and {CONFIG})", path)
    try:
        config = json.loads((folder / CONFIG).read_text())
        if config.get("format") != FORMAT:
            raise CheckpointError(
                f"unknown checkpoint format {config.get('format')!r}", folder / CONFIG
            )
        # checkpoints written before element features existed were trained without them
        cfg = TrainConfig(**{"element_features": False, **config["train_config"]})
        net = build_network(cfg)
        net.load_state_dict(load_file(folder / WEIGHTS, device=device))
    except (ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"cannot load property checkpoint ({exc})", folder) from exc
    desc = [None if config[k] is None else np.asarray(config[k]) for k in ("desc_mean", "desc_std")]
    predictor = Predictor(
        net.to(device).eval(),
        cfg,
        config["y_mean"],
        config["y_std"],
        *desc,
        metrics=config.get("metrics", {}),
        info=config,
    )
    return predictor
