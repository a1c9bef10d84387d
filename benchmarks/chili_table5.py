"""CHILI Table 5 on rebuilt CHILI-3K: six structure-generation tasks x two splits x three seeds.

Each run trains `configs/experiment/<model>_<pattern>_<target>.yaml` with the given seed (CHILI: 42,
43, 44) on the CHILI random split and on the grouped split (split seed 42 for both), early stopping
with CHILI's patience of 50 epochs on the validation coordinate MAE, under a wall-clock cap per run
(`--max-time-minutes`; CHILI: 60), and evaluates the best-validation weights on the test part. Rows
are merged into `benchmarks/results/chili3k_table5.json` (key: task, split, model, seed; other
models' rows are kept) after every run, and `chili3k_table5.md` is rewritten from all rows, beside
the paper's numbers.

    nice -n 10 python benchmarks/chili_table5.py --data DATA_DIR/chili3k --model mlp \\
        --max-time-minutes 1 > benchmarks/results/chili3k_table5.log 2>&1 &

`--model uniform` trains nothing: it writes the reference rows of structures drawn at random at
the true atom count (unit cells: fractional coordinates uniform in the cell; particles: uniform in
the ball of the true particle's largest radius, sorted by |r|), the level a generator must beat.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import statistics
import time
from pathlib import Path
from typing import Any

from invdesign.io.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TASKS = (
    "saxs->unit_cell_pos_frac",
    "xrd->unit_cell_pos_frac",
    "xPDF->unit_cell_pos_frac",
    "saxs->pos_abs",
    "xrd->pos_abs",
    "xPDF->pos_abs",
)
# CHILI Table 5, CHILI-3K column: MLP test MAE, mean +- std over 3 seeds (fractional units / Å).
PAPER = {
    "saxs->unit_cell_pos_frac": (0.053, 0.009),
    "xrd->unit_cell_pos_frac": (0.008, 0.002),
    "xPDF->unit_cell_pos_frac": (0.014, 0.002),
    "saxs->pos_abs": (1.539, 0.007),
    "xrd->pos_abs": (1.894, 0.014),
    "xPDF->pos_abs": (1.952, 0.052),
}
KEY = ("task", "split", "model", "seed", "train_extra")


def config_path(model: str, task: str) -> Path:
    pattern, target = task.split("->")
    short = "unit_cell" if target == "unit_cell_pos_frac" else target
    return ROOT / "configs" / "experiment" / f"{model}_{pattern.lower()}_{short}.yaml"


def run_one(args: argparse.Namespace, task: str, split: str, seed: int) -> dict[str, Any]:
    from invdesign.training.config import load_config
    from invdesign.training.train import train

    kind, _, fold = split.partition(":")  # 'leave_type_out:<Type>' names the fold too
    overrides = [
        f"seed={seed}",
        f"split.kind={kind}",
        *([f"split.fold={fold}"] if fold else []),
        f"trainer.patience={args.patience}",
        f"trainer.max_time_minutes={args.max_time_minutes}",
        f"trainer.max_epochs={args.max_epochs}",
        *([f"data.extra=[{','.join(str(d) for d in args.extra)}]"] if args.extra else []),
        *args.override,
    ]
    cfg = load_config(config_path(args.model, task), overrides, args.data)
    out = None
    if args.save_to is not None:  # one checkpoint folder per run, e.g. for more sampling later
        short = task.replace("->", "-").replace("unit_cell_pos_frac", "unit_cell").lower()
        out = args.save_to / f"{args.model}-{short}-{split.replace(':', '-')}-{seed}"
    result = train(cfg, out, evaluate_parts=("test",), rw_items=args.rw_items, force=True)
    test, info = result.metrics["test"], result.info
    if args.generation:
        write_generation(args, result.generator, split, seed)
    return {
        "task": task,
        "split": split,
        "model": args.model,
        "seed": seed,
        "chili_mae": test["chili_mae"],
        "matched_mae": test["matched_mae"],
        "matched_rmsd": test["matched_rmsd"],
        "aligned_mae": test.get("aligned_mae"),
        "count_accuracy": test["count_accuracy"],
        "species_accuracy": test.get("species_accuracy"),
        "composition_accuracy": test.get("composition_accuracy"),
        "rw_median": test.get("rw_median"),
        "rw_items": test.get("rw_items", 0),
        "n_test": test["n_samples"],
        "n_train": info["n_train"],
        "n_val": info["n_val"],
        "epochs": info["epochs"],
        "best_epoch": info["best_epoch"],
        "stopped_early": info["stopped_early"],
        "train_seconds": info["train_seconds"],
        "patience": args.patience,
        "max_time_minutes": args.max_time_minutes,
        "dataset": "CHILI-3K rebuilt",
        "data_folder": data_label(args.data),
        "data_files": info["data_files"],
        "data_fingerprint": info["data_fingerprint"],
        "split_seed": 42,
        "overrides": list(args.override),
        "train_extra": train_extra(args),
        "n_extra": info.get("n_extra", 0),
        "extra_fingerprint": info.get("extra_fingerprint") or None,
    }


def train_extra(args: argparse.Namespace) -> str | None:
    """The training-only folders of a run (`--extra`) as rows record them (with the share of
    each epoch they make up, when `data.extra_share` is given), None without."""
    if not args.extra:
        return None
    share = extra_share(args)
    return " + ".join(data_label(d) for d in args.extra) + (f" (share {share})" if share else "")


def extra_share(args: argparse.Namespace) -> str | None:
    """The run's `data.extra_share` override as given, None without (every extra graph in
    every epoch)."""
    given = [o.split("=", 1)[1] for o in args.override if o.startswith("data.extra_share=")]
    return given[-1] if given and given[-1] not in ("null", "None") else None


def extra_variant(args: argparse.Namespace) -> str:
    """What a run's variant name says of its training-only folders (`generation.extra_variant`)."""
    from generation import extra_variant as named

    return named(bool(args.extra), extra_share(args))


def write_generation(args: argparse.Namespace, gen: Any, split: str, seed: int) -> None:
    """Issue 27's generation records of `gen` on the test part of `split` into
    `--generation-results` (`generation.py`)."""
    from generation import generation_records, save_records, spaced_sources

    from invdesign.data.datamodule import load_task_part
    from invdesign.data.dataset import ChiliDataset

    data = load_task_part(ChiliDataset(args.data), gen.task, split, 42, "test")
    guided = args.guidance_scale > 0
    sampling = ({"guidance_scale": args.guidance_scale, "guidance_start": args.guidance_start}
                if guided else {})
    resampled = guided and args.resample_every > 0
    if resampled:  # named as guided_sampling.py names its --sampling-hparams
        sampling.update(resample_every=args.resample_every,
                        resample_temperature=args.resample_temperature)
    rows, rule = spaced_sources(data, args.generation_items)
    condition_on = tuple(args.generation_condition_on)
    variant = (("guided" if guided else "plain") + "".join(f"+{c}" for c in condition_on)
               + extra_variant(args) + (f"+resample_every={args.resample_every}"
                                        f"+resample_temperature={args.resample_temperature}"
                                        if resampled else ""))
    records = generation_records(
        gen, data, split=split, ks=args.generation, items=len(rows), seed=seed,
        variant=variant, polish_samples=args.generation_polish, sampling=sampling, rows=rows,
        condition_on=condition_on, items_rule=rule, rank=args.generation_rank)
    for r in records:
        r["train_extra"] = train_extra(args)
        r["extra_share"] = extra_share(args) if args.extra else None
        r["guidance_scale"] = args.guidance_scale
        r["guidance_start"] = args.guidance_start if guided else None
    save_records(args.generation_results, records)
    for r in records:
        print(json.dumps(r), flush=True)


def run_uniform(args: argparse.Namespace, task: str, split: str, seed: int) -> dict[str, Any]:
    """The reference row: uniform random structures at the true count (see the module docstring)."""
    import numpy as np

    from invdesign.core.tasks import TaskSpec
    from invdesign.data.datamodule import load_task_split
    from invdesign.data.dataset import ChiliDataset
    from invdesign.evaluators.metrics import structure as metrics

    spec = TaskSpec.parse(task)
    ds = ChiliDataset(args.data)
    parts = load_task_split(ds, spec, split, 42)
    data = parts["test"]
    n_train, n_val = len(parts["train"]), len(parts["val"])
    truth = [data.target[i][data.mask[i]].double().numpy() for i in range(len(data))]
    rng = np.random.default_rng(seed)
    periodic = spec.kind == "unit_cell"
    preds = []
    for true in truth:
        if periodic:
            preds.append(rng.random(true.shape))
            continue
        direction = rng.normal(size=true.shape)
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        radius = np.linalg.norm(true, axis=1).max() * rng.random((len(true), 1)) ** (1 / 3)
        preds.append(metrics.sort_by_norm(direction * radius))
    matched = metrics.matched_summary(preds, truth, periodic)
    return {
        "task": task, "split": split, "model": "uniform", "seed": seed,
        "chili_mae": metrics.chili_mae(preds, truth),
        **matched,
        **metrics.aligned_summary(preds, truth, periodic),
        "count_accuracy": None, "rw_median": None, "n_test": len(truth),
        "n_train": n_train, "n_val": n_val,
        "epochs": 0, "best_epoch": 0, "stopped_early": False, "train_seconds": 0.0,
        "patience": 0, "max_time_minutes": 0.0, "dataset": "CHILI-3K rebuilt",
        "data_folder": data_label(args.data), "split_seed": 42, "overrides": [],
    }


def load_rows(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text()) if path.is_file() else []


def merge(rows: list[dict[str, Any]], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Replace the row with the same (task, split, model, seed, training-only folders), keep all
    others."""
    key = tuple(new[k] for k in KEY)
    return [r for r in rows if tuple(r.get(k) for k in KEY) != key] + [new]


def save_row(args: argparse.Namespace, row: dict[str, Any]) -> list[dict[str, Any]]:
    """Merge `row` into the results JSON and rewrite the table, under a file lock so that several
    benchmark processes (e.g. one per target) can share one results file."""
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with open(args.results.with_name(f".{args.results.stem}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = merge(load_rows(args.results), row)
        atomic_write(args.results, json.dumps(rows, indent=1) + "\n")
        atomic_write(args.table, markdown(rows))
    return rows


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


def _stat(values: list[float], digits: int) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def data_label(folder: str | Path) -> str:
    """The data folder as results record it: `DATA_DIR/<name>` (no machine path; the name and
    the records' `data_fingerprint` identify the set). The name as given, so that a folder
    linked in as `DATA_DIR/<name>` keeps that name; '.' or '..' name their real folder."""
    name = Path(folder).name
    return f"DATA_DIR/{name if name not in ('', '.', '..') else Path(folder).resolve().name}"


def _data(row: dict[str, Any]) -> str:
    folder = row.get("data_folder") or row.get("dataset", "?")
    return f"`{Path(folder).name}`: {row['n_train']}/{row['n_val']}/{row['n_test']}"


def markdown(rows: list[dict[str, Any]]) -> str:
    """One line per (task, model, split): mean ± std over seeds beside the paper's CHILI-3K MAE."""
    lines = [
        "# CHILI Table 5 on rebuilt CHILI-3K",
        "",
        "Test metrics, mean ± std over seeds (n = number of seeds). `chili_mae`: CHILI's sorted, "
        "masked MAE per coordinate (fractional units for unit cells, Å for particles); "
        "`matched_mae`: the same after optimal (Hungarian) atom pairing, minimum image for "
        "fractional coordinates; `aligned_mae`: matched MAE after the best rotation or reflection "
        "(particles) or origin shift (unit cells), the frame a rotation- or translation-invariant "
        "generator cannot know ('-' for rows run before it existed); `count_acc`: exact atom "
        "count of free samples (count head of the MLP and diffusion model, Algorithm S1 "
        "segmentation for the VAE); `Rw`: median Rw of free "
        "samples' DebyeCalculator patterns against their input patterns (`--rw-items` test items, "
        "unit cells cut like the input; '-' where not measured). ratio = our chili_mae / paper MAE "
        "(CHILI random split only). `model (+ DATA_DIR/x)`: also trained on the training-only "
        "folders x (`--extra`, the config's `data.extra`; validation and test from CHILI-3K "
        "alone). Generated by `benchmarks/chili_table5.py` from `chili3k_table5.json`.",
        "",
        "| task | model | split | n | data: train/val/test graphs | paper MAE (CHILI-3K) | "
        "chili_mae | ratio | matched_mae | aligned_mae | count_acc | Rw | epochs | s/run | "
        "cap (min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["model"], r["split"], r.get("train_extra") or ""),
                          []).append(r)
    order = {t: i for i, t in enumerate(TASKS)}
    for (task, name, split, extra), rs in sorted(
        groups.items(),
        key=lambda kv: (order.get(kv[0][0], 99), kv[0][1], kv[0][2] != "chili_random",
                        kv[0][3]),
    ):
        model = f"{name} (+ {extra})" if extra else name
        digits = 4 if "unit_cell" in task else 3
        paper = PAPER.get(task)
        mae = [r["chili_mae"] for r in rs]
        ratio = (
            f"{statistics.mean(mae) / paper[0]:.2f}" if paper and split == "chili_random" else ""
        )
        paper_txt = f"{paper[0]:.3f} ± {paper[1]:.3f}" if paper else "-"
        lines.append(
            f"| {task} | {model} | {split} | {len(rs)} | {_data(rs[0])} | {paper_txt} | "
            f"{_stat(mae, digits)} | "
            f"{ratio} | "
            f"{_stat([r['matched_mae'] for r in rs], digits)} | "
            f"{_stat([r['aligned_mae'] for r in rs if r.get('aligned_mae') is not None], digits)}"
            " | "
            f"{_stat([r['count_accuracy'] for r in rs if r['count_accuracy'] is not None], 3)} | "
            f"{_stat([r['rw_median'] for r in rs if r.get('rw_median') is not None], 3)} | "
            f"{statistics.mean(r['epochs'] for r in rs):.0f} | "
            f"{statistics.mean(r['train_seconds'] for r in rs):.0f} | "
            f"{'/'.join(f'{m:g}' for m in sorted({r['max_time_minutes'] for r in rs}))} |"
        )
    caps = sorted({(r["patience"], r["max_time_minutes"]) for r in rows if r["model"] != "uniform"})
    lines += [
        "",
        "Run settings (patience, wall-clock cap in minutes per run): "
        + ", ".join(f"({p}, {m})" for p, m in caps)
        + ".",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder of the rebuilt CHILI-3K *.h5 files")
    parser.add_argument(
        "--model", default="mlp", help="generator config prefix (configs/experiment/<model>_*.yaml)"
    )
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--splits", nargs="+", default=["chili_random", "grouped"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--patience", type=int, default=50)
    parser.add_argument("--max-time-minutes", type=float, default=1.0)
    parser.add_argument("--max-epochs", type=int, default=1000)
    parser.add_argument("--rw-items", type=int, default=64,
                        help="test items whose free sample is forward-simulated for Rw (0: none)")
    parser.add_argument(
        "--override", nargs="*", default=[], help="extra config overrides key=value"
    )
    parser.add_argument("--extra", nargs="*", default=[],
                        help="training-only folders of other sources (data.extra), e.g. the "
                             "synthetic set; rows and generation variants say so")
    parser.add_argument("--save-to", type=Path, default=None,
                        help="also save each run's checkpoint in a folder under this one "
                             "(<model>-<task>-<split>-<seed>; replaced if present)")
    parser.add_argument("--results", type=Path, default=RESULTS / "chili3k_table5.json")
    parser.add_argument("--table", type=Path, default=RESULTS / "chili3k_table5.md")
    parser.add_argument("--markdown-only", action="store_true", help="only rewrite the table")
    parser.add_argument("--generation", nargs="*", type=int, default=[],
                        help="also write issue 27's generation records at these k (e.g. 1 20)")
    parser.add_argument("--generation-items", type=int, default=40,
                        help="test unit cells of the generation records (evenly spaced, the "
                             "smallest particle of each)")
    parser.add_argument("--generation-condition-on", nargs="*", default=[],
                        choices=["composition", "n_atoms", "cell"],
                        help="give the generator these (DiffCSP's protocol: composition n_atoms)")
    parser.add_argument("--generation-rank", action="store_true",
                        help="simulate every sample: best-of-k Rw and the ranked match rate")
    parser.add_argument("--generation-polish", action="store_true",
                        help="also polish each item's first sample (rw_median_refined)")
    parser.add_argument("--generation-checkpoint", type=Path, default=None,
                        help="no training: the generation records of this checkpoint")
    parser.add_argument("--guidance-scale", type=float, default=0.0,
                        help="diffusion: forward-model guidance of the generation samples")
    parser.add_argument("--guidance-start", type=float, default=0.8)
    parser.add_argument("--resample-every", type=int, default=0,
                        help="diffusion, guided: resample each item's samples by their misfit "
                             "every this many guided steps (0: never)")
    parser.add_argument("--resample-temperature", type=float, default=0.05)
    parser.add_argument("--generation-results", type=Path, default=RESULTS / "generation.json")
    args = parser.parse_args()
    if args.generation_checkpoint is not None:
        if not args.generation:
            parser.error("--generation-checkpoint needs --generation K [K ...]")
        from invdesign.generators.checkpoint import load_checkpoint

        gen = load_checkpoint(args.generation_checkpoint)
        for split in args.splits:
            for seed in args.seeds:
                write_generation(args, gen, split, seed)
        return
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    rows = load_rows(args.results)
    if not args.markdown_only:
        start = time.perf_counter()
        for seed in args.seeds:
            for task in args.tasks:
                for split in args.splits:
                    t0 = time.perf_counter()
                    run = run_uniform if args.model == "uniform" else run_one
                    row = run(args, task, split, seed)
                    rows = save_row(args, row)
                    print(
                        f"[{time.perf_counter() - start:7.0f} s] {task:26s} {split:12s} "
                        f"seed {seed}: "
                        f"chili_mae {row['chili_mae']:.4f} matched_mae {row['matched_mae']:.4f} "
                        f"aligned_mae {row['aligned_mae']:.4f} "
                        f"count_acc {row['count_accuracy'] or float('nan'):.3f} "
                        f"epochs {row['epochs']} "
                        f"({time.perf_counter() - t0:.0f} s)",
                        flush=True,
                    )
    atomic_write(args.table, markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
