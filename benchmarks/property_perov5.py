"""5-fold cross-validation on perov5_val.csv (target heat_ref, eV/atom): CrysToGraph-style model
with and without descriptor hybridisation and CDSSL pretraining, beside CGCNN, all in the same
harness and budget.

Run (CPU, ~35 min on a shared 2-core machine):
    nice -n 10 python benchmarks/property_perov5.py --out benchmarks/results/property_perov5.json
Each fold pretrains one CDSSL encoder on its training structures only (no labels) and reuses it for
the plain and the descriptor variant. Descriptors are cached in --cache (outside the repository by
default).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from invdesign.evaluators.property.data import make_graphs, read_property_csv
from invdesign.evaluators.property.descriptors import descriptor_matrix
from invdesign.evaluators.property.pretrain import cdssl_pretrain, transfer_encoder
from invdesign.evaluators.property.train import TrainConfig, build_network, fit

DEFAULT_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "perov5" / "perov5_val.csv"
VARIANTS = ("cgcnn", "ctg", "ctg+desc", "ctg+cdssl", "ctg+desc+cdssl")


def cached_descriptors(data, cache: Path, workers: int) -> np.ndarray:
    """[n, N_DESCRIPTORS] for the CSV's first n rows; cached per CSV (a --limit run slices it)."""
    key = hashlib.sha1(data.source.encode()).hexdigest()[:12]
    path = cache / f"descriptors_{key}.npy"
    if path.is_file() and len(np.load(path)) >= len(data):
        return np.load(path)[: len(data)]
    desc = descriptor_matrix(data.structures, workers=workers)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, desc)
    return desc


def cached_graphs(args) -> tuple[np.ndarray, list]:
    """Targets [n] and graphs (with raw descriptors), cached so parallel folds share them."""
    name = f"{args.csv}{args.target}{args.limit}{args.line_k}"
    key = hashlib.sha1(name.encode()).hexdigest()[:12]
    path = args.cache / f"graphs_{key}.pt"
    if path.is_file():
        return torch.load(path, weights_only=False)  # our own cache file, written below
    data = read_property_csv(args.csv, target=args.target, limit=args.limit)
    desc = cached_descriptors(data, args.cache, args.workers)
    graphs = make_graphs(data.structures, data.targets, desc, k=12, line_k=args.line_k)
    args.cache.mkdir(parents=True, exist_ok=True)
    torch.save((data.targets, graphs), path)
    return data.targets, graphs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--target", default="heat_ref")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--pretrain-epochs", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--line-k", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--limit", type=int, default=None, help="first N rows only (smoke runs)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "invdesign")
    parser.add_argument("--workers", type=int, default=1, help="processes for descriptors")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="JSON with per-fold MAEs")
    parser.add_argument("--fold-ids", default=None, help="run only these folds, e.g. 0,1,2")
    parser.add_argument(
        "--prepare-only", action="store_true", help="fill the descriptor cache, stop"
    )
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=None,
        help="print the table of several --out files (folds run in parallel)",
    )
    args = parser.parse_args()
    if args.merge:
        print_merged(args.merge)
        return
    torch.set_num_threads(args.threads)
    variants = args.variants.split(",")

    start = time.time()
    targets, graphs = cached_graphs(args)
    print(f"{len(graphs)} structures, graphs in {time.time() - start:.0f} s", flush=True)
    if args.prepare_only:
        return

    order = np.random.default_rng(args.seed).permutation(len(graphs))
    folds = np.array_split(order, args.folds)
    maes: dict[str, list[float]] = {v: [] for v in variants}
    seconds: dict[str, float] = dict.fromkeys(variants, 0.0)
    fold_ids = range(args.folds) if args.fold_ids is None else map(int, args.fold_ids.split(","))
    for f in fold_ids:
        test = folds[f]
        train = np.setdiff1d(order, test)
        train_g, test_g = [graphs[i] for i in train], [graphs[i] for i in test]
        y_test = targets[test]
        encoder = None
        for variant in variants:
            t0 = time.time()
            model = "cgcnn" if variant == "cgcnn" else "crystograph"
            cfg = TrainConfig(
                model=model,
                hidden=args.hidden,
                blocks=args.blocks,
                line_k=args.line_k,
                descriptors="desc" in variant,
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                seed=args.seed + f,
                target=args.target,
            )
            pretrained = None
            if "cdssl" in variant:
                if encoder is None:
                    encoder = build_network(TrainConfig(hidden=args.hidden, blocks=args.blocks))
                    cdssl_pretrain(
                        encoder,
                        train_g,
                        args.pretrain_epochs,
                        0.5,
                        args.lr,
                        args.batch_size,
                        args.seed + f,
                    )
                    seconds[variant] += time.time() - t0
                    t0 = time.time()
                pretrained = transfer_encoder(encoder, build_network(cfg))
            predictor = fit(train_g, cfg, pretrained=pretrained)
            mae = float(np.abs(predictor.predict_graphs(test_g) - y_test).mean())
            maes[variant].append(mae)
            seconds[variant] += time.time() - t0
            print(
                f"fold {f} {variant:16s} MAE {mae:.4f} eV/atom ({time.time() - t0:.0f} s)",
                flush=True,
            )

    setup = (
        f"perov5_val.csv, target {args.target}, {args.folds}-fold CV (seed {args.seed}), "
        f"{args.epochs} epochs, CDSSL {args.pretrain_epochs} epochs, hidden {args.hidden}, "
        f"blocks {args.blocks}, line_k {args.line_k}, batch {args.batch_size}, lr {args.lr}"
    )
    print_table(setup, maes, seconds)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"setup": setup, "mae": maes, "seconds": seconds}, indent=1))


def print_table(setup: str, maes: dict[str, list[float]], seconds: dict[str, float]) -> None:
    n_folds = max(len(v) for v in maes.values())
    print(f"\n{setup}; folds run: {n_folds}")
    print(f"{'variant':16s} {'MAE (eV/atom)':>14s} {'std':>7s} {'vs CGCNN':>9s} {'time (s)':>9s}")
    base = np.mean(maes["cgcnn"]) if maes.get("cgcnn") else None
    for v, values in maes.items():
        rel = f"{100 * (np.mean(values) / base - 1):+8.1f}%" if base else ""
        print(f"{v:16s} {np.mean(values):14.4f} {np.std(values):7.4f} {rel:>9s} {seconds[v]:9.0f}")


def print_merged(paths: list[Path]) -> None:
    runs = [json.loads(p.read_text()) for p in paths]
    maes = {v: sum((r["mae"][v] for r in runs), []) for v in runs[0]["mae"]}
    seconds = {v: sum(r["seconds"][v] for r in runs) for v in runs[0]["mae"]}
    print_table(runs[0]["setup"], maes, seconds)


if __name__ == "__main__":
    main()
