"""`invdesign train --config FILE [--data DIR [DIR ...]] [--out DIR] [key=value ...]`: train an
experiment, on one data folder or several (e.g. CHILI-3K and the `clusters` set) used together."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train",
        help="train a generator from an experiment config (configs/experiment/*.yaml)",
        description="Train the generator an experiment YAML describes; write the checkpoint "
        "(model.safetensors with its config and metrics), metrics.json and config.yaml.",
    )
    parser.add_argument(
        "--config", type=Path, required=True, metavar="FILE",
        help="experiment YAML (configs/experiment/)",
    )
    parser.add_argument(
        "--data",
        nargs="+",
        action="extend",
        metavar="DIR",
        help="folder(s) of CHILI *.h5 files trained on together (overrides data.root)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="output folder (overrides out_dir; default: no files written)",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing output folder")
    parser.add_argument(
        "--device", choices=("cpu", "gpu", "cuda", "auto"),
        help="where to train (sets trainer.accelerator; default: the config's, cpu); with "
        "trainer.devices=N trainer.strategy=ddp, N processes on CPU or N GPUs",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides, e.g. trainer.max_epochs=5 split.kind=grouped",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the CLI imports only what the command needs
    from invdesign.cli.evaluate import format_metrics  # noqa: PLC0415

    # lazy: the CLI imports only what the command needs
    from invdesign.training.config import load_config  # noqa: PLC0415

    # lazy: the CLI imports only what the command needs
    from invdesign.training.train import train  # noqa: PLC0415

    folders, overrides = split_data_args(args.data or [], args.overrides)
    if args.device:
        overrides = [f"trainer.accelerator={args.device}", *overrides]
    cfg = load_config(args.config, overrides, folders or None)
    command = "invdesign " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    result = train(cfg, out_dir=args.out,
                   progress=lambda line: print(line, file=sys.stderr, flush=True),
                   force=args.force, protect=[args.config], command=command)
    info = result.info
    if info.get("rank", 0) != 0:  # another process of a DDP run: rank 0 reports and writes
        print(f"rank {info['rank']} of {info['processes']}: training finished", file=sys.stderr)
        return 0
    print(format_metrics({k: v for k, v in result.metrics.items() if k != "training"}))
    print(
        f"epochs {info['epochs']}, best epoch {info['best_epoch']}, "
        f"{info['train_seconds']} s, {info['n_train']}/{info['n_val']}/{info['n_test']} "
        f"train/val/test graphs"
        + (f", {info['processes']} processes" if info.get("processes", 1) > 1 else "")
    )
    if result.checkpoint is not None:  # the model card was written with it (train's command)
        card = result.checkpoint.parent / "MODEL_CARD.md"
        print(f"checkpoint: {result.checkpoint}\nmodel card: {card}")
    return 0


def split_data_args(data: list[str], overrides: list[str]) -> tuple[list[str], list[str]]:
    """`--data A B key=value` lets argparse put the override among the folders: items with '='
    that are not existing paths are overrides (kept before the positional ones)."""
    folders = [d for d in data if "=" not in d or Path(d).exists()]
    moved = [d for d in data if d not in folders]
    return folders, moved + list(overrides)
