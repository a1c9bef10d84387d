"""MODEL_CARD.md for a trained checkpoint: what it is, the data, split and seed, the exact command
that produced it, and its measured metrics (all read from the resolved config and the metrics)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from invdesign.io.atomic import atomic_write_text

METRICS = (
    ("chili_mae", "CHILI MAE (sorted, masked, per coordinate; true atom count)"),
    ("matched_mae", "assignment-matched MAE (Hungarian; minimum image for fractional coords)"),
    ("matched_rmsd", "assignment-matched RMSD"),
    ("aligned_mae",
     "matched MAE after the best rotation/reflection (particles) or origin shift (cells)"),
    ("count_accuracy", "atom-count accuracy (count head)"),
    ("count_mae", "atom-count MAE"),
    ("species_accuracy", "species accuracy of matched atoms (true count)"),
    ("composition_accuracy", "composition agreement (predicted count and species)"),
)
# where a generator's predicted atom count comes from (the count-accuracy label); default: a head
COUNT_SOURCE = {"vae": "Algorithm S1 segmentation of the decoded grid"}


def model_card(
    config: dict[str, Any],
    metrics: dict[str, Any],
    command: str,
    checkpoint: str = "model.safetensors",
) -> str:
    """The markdown text of a model card."""
    task = config["task"]["name"]
    unit = "fractional units" if "unit_cell" in task else "Å"
    gen = config["generator"]
    info = metrics.get("training", {})
    parts = [p for p in ("val", "test") if p in metrics]
    lines = [
        f"# {config.get('name', gen['name'])}: {gen['name']} generator for {task}",
        "",
        f"- weights: `{checkpoint}` (safetensors; the header holds the task, hyper-parameters, the "
        "resolved config and these metrics: `invdesign.generators.checkpoint.load_checkpoint` "
        "rebuilds the model from the file alone)",
        f"- data: {_folders(config['data']['root'])} (CHILI layout; "
        f"{info.get('data_files', '?')} files, "
        f"fingerprint `{info.get('data_fingerprint', '?')}`); task filter max_atoms = "
        f"{config['task'].get('max_atoms') or 'CHILI default'}; the folders are made by "
        "`invdesign data build chili3k|clusters|cifs|synthetic --out DIR` (deterministic builds)",
        f"- split: {config['split']['kind']} (split seed {config['split']['seed']}); "
        f"{info.get('n_train', '?')} / {info.get('n_val', '?')} / {info.get('n_test', '?')} "
        "train / val / test graphs"
        + (f", of the training graphs {info['n_augment']} from the augmentation folders "
           f"{_folders(config['data']['augment'])} (training sources only)"
           if info.get("n_augment") else "")
        + (f", of the training graphs {info['n_extra']} from the training-only folders "
           f"{_folders(config['data'].get('extra', []))} ({info.get('extra_files', '?')} files, "
           f"fingerprint `{info.get('extra_fingerprint', '?')}`; validation and test from the "
           "data folders alone" + _share(config) + ")" if info.get("n_extra") else ""),
        f"- seed: {config['seed']}",
        f"- generator: `{gen['name']}`, hparams {dict(gen.get('hparams', {}))}; "
        f"{info.get('n_parameters', '?')} parameters",
        f"- optimiser: {dict(config['optimizer'])}; batch size {config['data']['batch_size']}"
        + _processes(config, info),
        f"- training: {info.get('epochs', '?')} epochs (best epoch {info.get('best_epoch', '?')}), "
        f"{info.get('train_seconds', '?')} s; early stopping patience "
        f"{config['trainer']['patience']} on `{config['trainer']['monitor']}`, wall-clock cap "
        f"{config['trainer']['max_time_minutes']} min; stopped early: "
        f"{info.get('stopped_early', '?')}" + _init_from(config, info),
        "",
        "Produced by:",
        "",
        "```",
        command,
        "```",
        "",
        f"## Metrics ({unit})",
        "",
        "| metric | " + " | ".join(parts) + " |",
        "|---|" + "---|" * len(parts),
    ]
    count_source = COUNT_SOURCE.get(gen["name"], "count head")
    for key, label in METRICS:
        if key == "count_accuracy":
            label = f"atom-count accuracy ({count_source})"
        cells = []
        for p in parts:
            v = metrics[p].get(key)
            cells.append("-" if v is None else f"{v:.4f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    n = " / ".join(str(metrics[p].get("n_samples", "?")) for p in parts)
    lines += ["", f"Samples evaluated ({' / '.join(parts)}): {n}.", ""]
    return "\n".join(lines)


def write_model_card(
    out: str | os.PathLike, config: dict[str, Any], metrics: dict[str, Any], command: str
) -> Path:
    """Write `out/MODEL_CARD.md` atomically; returns its path."""
    return atomic_write_text(Path(out) / "MODEL_CARD.md", model_card(config, metrics, command))


def _processes(config: dict[str, Any], info: dict[str, Any]) -> str:
    """', per process on N processes (...)' for a DDP run, else ''."""
    n = int(info.get("processes", 1))
    if n <= 1:
        return ""
    trainer = config["trainer"]
    return (f" per process on {n} processes (strategy {trainer.get('strategy')}, "
            f"{trainer.get('num_nodes', 1)} node(s) x {trainer.get('devices')} devices; global "
            f"batch {n * int(config['data']['batch_size'])})")


def _folders(root: str | list[str]) -> str:
    """`a` or `a` + `b` for one data folder or several."""
    items = [root] if isinstance(root, str) else list(root)
    return " + ".join(f"`{item}`" for item in items)


def _share(config: dict[str, Any]) -> str:
    """How the training-only graphs entered each epoch (`data.extra_share`)."""
    share = config["data"].get("extra_share")
    if share is None:
        return "; all of them in every epoch"
    return (f"; each epoch every data graph plus a fresh subset of these making up {share:.0%} "
            "of it")


def _init_from(config: dict[str, Any], info: dict[str, Any]) -> str:
    """Where the weights started (`trainer.init_from`), with the elements the run's vocabulary
    added to the checkpoint's."""
    source = config["trainer"].get("init_from")
    if not source:
        return ""
    new = info.get("init_new_elements") or []
    return (f"; started from the weights of `{Path(str(source)).name}`"
            + (f" (species rows of {len(new)} elements new to it freshly initialised: "
               f"Z = {', '.join(str(z) for z in new)})" if new else ""))
