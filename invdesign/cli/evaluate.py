"""`invdesign evaluate --checkpoint FILE --data DIR [--split test] [--out metrics.json]`."""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path
from typing import Any

from invdesign.core.errors import InvdesignError
from invdesign.io.atomic import atomic_write_text
from invdesign.io.outputs import Output

COLUMNS = (
    "n_samples",
    "chili_mae",
    "matched_mae",
    "matched_rmsd",
    "aligned_mae",
    "count_accuracy",
    "species_accuracy",
    "composition_accuracy",
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "evaluate",
        help="evaluate a generator checkpoint on a CHILI folder (CHILI MAE, matched MAE/RMSD, ...)",
        description="Sample a checkpoint on one part of the split it was trained with and print "
        "its metrics; optionally write them as JSON.",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        metavar="FILE",
        help="model.safetensors or the folder holding it",
    )
    parser.add_argument(
        "--data", type=Path, required=True, metavar="DIR", help="folder of CHILI *.h5 files"
    )
    parser.add_argument(
        "--split",
        default="test",
        choices=("train", "val", "test", "all"),
        help="part of the checkpoint's split to evaluate (default: test)",
    )
    parser.add_argument(
        "--split-kind",
        choices=("chili_random", "grouped"),
        help="split kind (default: the one in the checkpoint's config)",
    )
    parser.add_argument("--out", type=Path, metavar="FILE", help="write the metrics JSON here")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # lazy: the CLI imports only what the command needs
    from invdesign.training.evaluate import evaluate_checkpoint  # noqa: PLC0415

    with contextlib.ExitStack() as stack:
        # --out is checked and locked before the evaluation starts, written when it ends
        out = None if args.out is None else stack.enter_context(
            Output(args.out, [args.checkpoint, args.data], args.force))
        metrics = evaluate_checkpoint(
            args.checkpoint, args.data, args.split, args.split_kind, args.device
        )
        print(format_metrics({args.split: metrics}))
        if out is not None:
            assert out.tmp is not None
            out.tmp.write_text(json.dumps(metrics, indent=2) + "\n")  # an OSError: one line
            out.commit()
    return 0


def format_metrics(parts: dict[str, dict[str, Any]]) -> str:
    """A fixed-width table: one row per part (val, test, ...), the main metrics as columns."""
    widths = [max(len(c), 9) + 2 for c in COLUMNS]
    lines = [f"{'part':<6}" + "".join(f"{c:>{w}}" for c, w in zip(COLUMNS, widths, strict=True))]
    for part, m in parts.items():
        cells = []
        for c, w in zip(COLUMNS, widths, strict=True):
            v = m.get(c)
            cells.append(
                f"{'-':>{w}}"
                if v is None
                else f"{v:>{w}d}"
                if isinstance(v, int)
                else f"{v:>{w}.4f}"
            )
        lines.append(f"{part:<6}" + "".join(cells))
    return "\n".join(lines)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Atomic JSON write; an unwritable destination is a user error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(payload, indent=2) + "\n")
    except OSError as exc:
        raise InvdesignError(f"cannot write metrics ({exc.strerror})", path) from None
