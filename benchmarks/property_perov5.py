"""5-fold cross-validation on perov5_val.csv (target heat_ref, eV/atom): CrysToGraph-style model
with and without descriptor hybridisation and CDSSL pretraining, beside CGCNN, all in the same
harness and budget, with trivial baselines on the same folds.

Run (CPU):
    nice -n 10 python benchmarks/property_perov5.py
Budget: every network gets the same 20 epochs (one-cycle AdamW, lr 2e-3, batch 64, width 32, CGCNN
and CrysToGraph-style element features); the two CDSSL variants share one 5-epoch CDSSL encoder per
fold, pretrained on the fold's training structures only (no labels). Folds run in 2 single-threaded
processes (~2 CPU-s per 1,000 five-atom graphs per epoch for either model); the `seconds` of
`results/property_perov5.json` add up to ~9,700 CPU-seconds for the eight variants on this
shared 2-core machine. Descriptors and graphs are cached in --cache (outside the repository);
per-fold MAEs go to --out after every fold; `--merge` joins runs of separate folds or variants.
Baselines in brackets: the training mean, and ridge / gradient boosting (scikit-learn) on the
seed-002 descriptors alone.

The `+chgnet` variants hybridise with what the pretrained CHGNet says about the cell: its
single-point formation energy and 64-number crystal feature beside the descriptors, its atom
features added to the node embeddings (evaluators/property/potential.py; ~90 s for the 3,787
cells, cached like the descriptors; they need CHGNet, the `chgnet` extra). `cgcnn+chgnet` is the
control that shows how much of their gain is the features'; `[linear(chgnet E_f)]`,
`[ridge(chgnet)]` and `[gbm(desc+chgnet)]` are the matching baselines without a graph network.

`set+chgnet-all` (the recipe of the shipped checkpoints/property-perov5) is run apart, with its
own budget, and joined to the table with --merge:
    nice -n 10 python benchmarks/property_perov5.py --variants set+chgnet --baseline \
        --chgnet-all-layers --epochs 100 --hidden 64 --blocks 2 --batch-size 64 --lr 2e-3 \
        --dropout 0.1 --weight-decay 0.2 --ensemble 10 --ensemble-blocks 2,3,2,3,2,3,2,3,2,3 \
        --jobs 2 --threads 1 --out benchmarks/results/property_perov5_set_all.json
    python benchmarks/property_perov5.py --merge benchmarks/results/property_perov5.json \
        benchmarks/results/property_perov5_set_all.json --merged-out \
        benchmarks/results/property_perov5.json
It is `model.AtomSet`: a set transformer over the cell's atoms (element, CHGNet's atom features
after each of its four message-passing layers, histogram of neighbour distances), no message
passing of its own, CHGNet's graph-level block at the head; each network learns the residual of a
ridge fit of the target to the composition fractions and CHGNet's energy (`--baseline`, fitted on
the fold's training rows); the mean of 10 networks, 2 and 3 layers alternating (seeds 42+f to
51+f for fold f), each 100 epochs (~16 min per fold on one core). Settings chosen on fold 0
(results/property_perov5_NOTES.md: tenth pass on its test rows, eleventh pass on an inner
validation split of its training rows). `set+chgnet` without `--chgnet-all-layers`, 5 networks of
2 layers, is the tenth pass's row.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import re
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch

from invdesign.evaluators.property.data import make_graphs, read_property_csv
from invdesign.evaluators.property.descriptors import descriptor_matrix
from invdesign.evaluators.property.potential import potential_features, require_all
from invdesign.evaluators.property.pretrain import cdssl_pretrain, transfer_encoder
from invdesign.evaluators.property.train import TrainConfig, build_network, fit, parse_depths

DEFAULT_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "perov5" / "perov5_val.csv"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "property_perov5.json"
VARIANTS = (
    "cgcnn",
    "ctg",
    "ctg+desc",
    "ctg+cdssl",
    "ctg+desc+cdssl",
    "ctg+chgnet",
    "ctg+desc+chgnet",
    "cgcnn+chgnet",
)
# run apart, with its own budget (see the module docstring); not in the default --variants
SET_VARIANT = "set+chgnet"
# Budget (see the module docstring): the same epochs, batch, lr and width for CGCNN and ours.
EPOCHS, PRETRAIN_EPOCHS, HIDDEN, BATCH_SIZE, LR = 20, 5, 32, 64, 2e-3


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


def cached_potential(
    data, cache: Path, all_layers: bool = False
) -> tuple[np.ndarray, list[np.ndarray]]:
    """CHGNet's graph-level block [n, N_POTENTIAL] and atom features (one [n_atoms, 64] per row,
    [n_atoms, 256] with `all_layers`) for the CSV's first n rows; cached like the descriptors
    (one .npz of plain arrays). Stops when CHGNet refuses a structure (no NaN inputs in the
    benchmark)."""
    key = hashlib.sha1(data.source.encode()).hexdigest()[:12]
    path = cache / f"chgnet_features_{key}{'_all_layers' if all_layers else ''}.npz"
    if path.is_file():
        with np.load(path) as stored:
            graph, atoms, counts = stored["graph"], stored["atoms"], stored["counts"]
        if len(graph) >= len(data):
            starts = np.concatenate([[0], np.cumsum(counts)])
            return graph[: len(data)], [atoms[starts[i] : starts[i + 1]] for i in range(len(data))]
    features = potential_features(data.structures, all_layers=all_layers)
    require_all(data.ids, features.status)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        graph=features.graph,
        atoms=np.concatenate(features.atoms),
        counts=np.array([len(a) for a in features.atoms]),
    )
    return features.graph, features.atoms


_GRAPHS: dict = {}  # per process: the graphs of one (csv, target, limit, line_k, chgnet)


def cached_graphs(args, chgnet: bool) -> tuple[np.ndarray, list, dict[str, np.ndarray]]:
    """Targets [n], graphs (no descriptors) and the raw input blocks {"desc": [n, 29], and when
    asked "chgnet": [n, N_POTENTIAL] and "chgnet_atoms": one [n_atoms, 64] per structure}. The
    blocks (the slow part) are cached as numpy files; graphs are rebuilt once per process, so no
    pickled objects are ever loaded."""
    key = (str(args.csv), args.target, args.limit, args.line_k, chgnet, args.chgnet_all_layers)
    if key not in _GRAPHS:
        _GRAPHS.clear()
        _GRAPHS[key] = _build_graphs(args, chgnet)
    return _GRAPHS[key]


def _build_graphs(args, chgnet: bool) -> tuple[np.ndarray, list, dict[str, np.ndarray]]:
    data = read_property_csv(args.csv, target=args.target, limit=args.limit)
    blocks = {"desc": cached_descriptors(data, args.cache, args.workers)}
    if chgnet:
        blocks["chgnet"], blocks["chgnet_atoms"] = cached_potential(
            data, args.cache, args.chgnet_all_layers
        )
    graphs = make_graphs(data.structures, data.targets, k=12, line_k=args.line_k)
    return data.targets, graphs, blocks


def with_inputs(graphs: list, blocks: dict, names: list[str]) -> list:
    """Copies of `graphs` carrying `desc` = the named blocks side by side (in the order of
    `train.model_inputs`: descriptors, then CHGNet's), and `atom_fea` when "chgnet" is named (or
    the graphs as they are when no block is named)."""
    if not names:
        return graphs
    desc = np.concatenate([blocks[n] for n in names], axis=1)
    out = []
    for i, (graph, row) in enumerate(zip(graphs, desc, strict=True)):
        graph = graph.clone()
        graph.desc = torch.as_tensor(row, dtype=torch.float32).unsqueeze(0)
        if "chgnet" in names:
            graph.atom_fea = torch.as_tensor(blocks["chgnet_atoms"][i], dtype=torch.float32)
        out.append(graph)
    return out


def baseline_maes(targets: np.ndarray, blocks: dict, folds: list, fold_ids) -> dict:
    """Trivial baselines on the same folds: the training mean, and ridge / gradient boosting on
    the seed-002 descriptors alone (scikit-learn; skipped when it is not installed), and, when
    the CHGNet block is there, a linear fit to its energy, ridge on the whole block and boosting
    on descriptors + block."""
    maes: dict[str, list[float]] = {"mean": []}
    models = {}  # name: (model factory, input matrix)
    try:
        from sklearn.ensemble import HistGradientBoostingRegressor
        from sklearn.linear_model import RidgeCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        pass
    else:

        def ridge():
            return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))

        def gbm():
            return HistGradientBoostingRegressor(random_state=0)

        models = {"ridge(desc)": (ridge, blocks["desc"]), "gbm(desc)": (gbm, blocks["desc"])}
        if "chgnet" in blocks:
            both = np.concatenate([blocks["desc"], blocks["chgnet"]], axis=1)
            models["linear(chgnet E_f)"] = (ridge, blocks["chgnet"][:, :1])
            models["ridge(chgnet)"] = (ridge, blocks["chgnet"])
            models["gbm(desc+chgnet)"] = (gbm, both)
    maes.update({name: [] for name in models})
    order = np.concatenate(folds)
    for f in fold_ids:
        test = folds[f]
        train = np.setdiff1d(order, test)
        maes["mean"].append(float(np.abs(targets[train].mean() - targets[test]).mean()))
        for name, (make, x) in models.items():
            pred = make().fit(x[train], targets[train]).predict(x[test])
            maes[name].append(float(np.abs(pred - targets[test]).mean()))
    return maes


def row_name(variant: str, args: argparse.Namespace) -> str:
    """The table row of `variant`: `-all` marks CHGNet atom features of all layers."""
    return variant + ("-all" if args.chgnet_all_layers and "chgnet" in variant else "")


def model_of(variant: str) -> str:
    """TrainConfig.model of a variant name (its first part)."""
    return {"cgcnn": "cgcnn", "set": "atomset"}.get(variant.split("+")[0], "crystograph")


def run_fold(args: argparse.Namespace, f: int) -> tuple[int, dict, dict]:
    """Train and test every variant on fold f; returns (f, {variant: MAE}, {variant: seconds})."""
    torch.set_num_threads(args.threads)
    targets, graphs, blocks = cached_graphs(args, "chgnet" in args.variants)
    order = np.random.default_rng(args.seed).permutation(len(graphs))
    test = np.array_split(order, args.folds)[f]
    train = np.setdiff1d(order, test)
    maes, seconds = {}, {}
    encoder = None
    for variant in args.variants.split(","):
        t0 = time.time()
        cfg = TrainConfig(
            model=model_of(variant),
            hidden=args.hidden,
            blocks=args.blocks,
            line_k=args.line_k,
            descriptors="desc" in variant,
            chgnet_features="chgnet" in variant,
            chgnet_all_layers=args.chgnet_all_layers,
            element_features=args.element_features,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            weight_decay=args.weight_decay,
            dropout=args.dropout,
            ensemble=args.ensemble,
            ensemble_blocks=args.ensemble_blocks,
            baseline=args.baseline,
            seed=args.seed + f,
            target=args.target,
        )
        names = [n for n in ("desc", "chgnet") if n in variant]
        variant_graphs = with_inputs(graphs, blocks, names)
        train_g = [variant_graphs[i] for i in train]
        test_g = [variant_graphs[i] for i in test]
        pretrained = None
        if "cdssl" in variant:
            if encoder is None:  # one CDSSL encoder per fold (training structures, no labels)
                plain = TrainConfig(
                    **{**cfg.to_dict(), "descriptors": False, "chgnet_features": False}
                )
                encoder = build_network(plain)
                cdssl_pretrain(
                    encoder,
                    train_g,
                    args.pretrain_epochs,
                    0.5,
                    args.lr,
                    args.batch_size,
                    args.seed + f,
                )
            pretrained = transfer_encoder(encoder, build_network(cfg))
        predictor = fit(train_g, cfg, pretrained=pretrained)
        row = row_name(variant, args)
        maes[row] = float(np.abs(predictor.predict_graphs(test_g) - targets[test]).mean())
        seconds[row] = time.time() - t0
        print(
            f"fold {f} {row:16s} MAE {maes[row]:.4f} eV/atom ({seconds[row]:.0f} s)",
            flush=True,
        )
    return f, maes, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--target", default="heat_ref")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--pretrain-epochs", type=int, default=PRETRAIN_EPOCHS)
    parser.add_argument("--hidden", type=int, default=HIDDEN)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--line-k", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--lr", type=float, default=LR)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument(
        "--ensemble", type=int, default=1, help="networks per variant and fold (mean prediction)"
    )
    parser.add_argument(
        "--ensemble-blocks",
        type=parse_depths,
        default=(),
        help="depth of each ensemble member, e.g. 2,3,2,3 (default: all --blocks)",
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="networks learn the residual of a ridge fit to composition + CHGNet energy",
    )
    parser.add_argument(
        "--chgnet-all-layers",
        action="store_true",
        help="+chgnet variants: CHGNet's atom features after each of its 4 layers, not only the "
        "third",
    )
    parser.add_argument(
        "--no-element-features",
        dest="element_features",
        action="store_false",
        help="learned element embedding only (the models as first written)",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--limit", type=int, default=None, help="first N rows only (smoke runs)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "invdesign")
    parser.add_argument("--workers", type=int, default=1, help="processes for descriptors")
    parser.add_argument("--jobs", type=int, default=2, help="folds trained in parallel processes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per fold process")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="JSON with per-fold MAEs (after every fold)"
    )
    parser.add_argument("--fold-ids", default=None, help="run only these folds, e.g. 0,1,2")
    parser.add_argument(
        "--prepare-only", action="store_true", help="fill the descriptor cache, stop"
    )
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=None,
        help="print the table of several --out files (folds or variants run separately)",
    )
    parser.add_argument("--merged-out", type=Path, default=None, help="with --merge: write it")
    args = parser.parse_args()
    if args.merge:
        print_merged(args.merge, args.merged_out)
        return
    torch.set_num_threads(args.threads)
    variants = [row_name(v, args) for v in args.variants.split(",")]

    start = time.time()
    targets, graphs, blocks = cached_graphs(args, "chgnet" in args.variants)
    print(f"{len(graphs)} structures, graphs in {time.time() - start:.0f} s", flush=True)
    if args.prepare_only:
        return

    order = np.random.default_rng(args.seed).permutation(len(graphs))
    folds = np.array_split(order, args.folds)
    fold_ids = (
        list(range(args.folds))
        if args.fold_ids is None
        else [int(f) for f in args.fold_ids.split(",")]
    )
    baselines = baseline_maes(targets, blocks, folds, fold_ids)
    results = []

    def setup() -> str:
        return (
            f"perov5_val.csv ({len(graphs)} rows), target {args.target}, {args.folds}-fold CV "
            f"(seed {args.seed}), {args.epochs} epochs, CDSSL {args.pretrain_epochs} epochs, "
            f"hidden {args.hidden}, blocks {args.blocks}, line_k {args.line_k}, "
            f"batch {args.batch_size}, lr {args.lr}, weight decay {args.weight_decay}, "
            f"dropout {args.dropout}, ensemble {args.ensemble}, baseline {args.baseline}, "
            + (f"member depths {list(args.ensemble_blocks)}, " if args.ensemble_blocks else "")
            + f"CHGNet atom features of all layers {args.chgnet_all_layers}, "
            f"element features {args.element_features}, "
            f"{args.jobs} fold processes x {args.threads} thread; wall {time.time() - start:.0f} s"
        )

    def collect() -> tuple[dict, dict]:
        maes = {v: [r[1][v] for r in sorted(results, key=lambda r: r[0])] for v in variants}
        seconds = {v: sum(r[2][v] for r in results) for v in variants}
        if args.out:  # rewritten after every fold, so an interrupted run keeps its folds
            args.out.parent.mkdir(parents=True, exist_ok=True)
            done = sorted(r[0] for r in results)
            record = {
                "setup": setup(),
                "folds": done,
                "mae": maes,
                "seconds": seconds,
                "baselines": {
                    k: [v[fold_ids.index(f)] for f in done] for k, v in baselines.items()
                },
            }
            args.out.write_text(json.dumps(record, indent=1))
        return maes, seconds

    if args.jobs > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(args.jobs, len(fold_ids)), mp_context=context) as pool:
            for future in as_completed([pool.submit(run_fold, args, f) for f in fold_ids]):
                results.append(future.result())
                collect()
    else:
        for f in fold_ids:
            results.append(run_fold(args, f))
            collect()
    maes, seconds = collect()
    print_table(setup(), maes, seconds, baselines)


def print_table(
    setup: str,
    maes: dict[str, list[float]],
    seconds: dict[str, float],
    baselines: dict[str, list[float]] | None = None,
) -> None:
    """MAE mean and std over folds, relative to CGCNN; baselines (no training time) below."""
    n_folds = max(len(v) for v in maes.values())
    print(f"\n{setup}; folds run: {n_folds}")
    print(f"{'variant':20s} {'MAE (eV/atom)':>14s} {'std':>7s} {'vs CGCNN':>9s} {'time (s)':>9s}")
    base = np.mean(maes["cgcnn"]) if maes.get("cgcnn") else None
    rows = [(v, values, f"{seconds[v]:9.0f}") for v, values in maes.items()]
    rows += [(f"[{v}]", values, f"{'-':>9s}") for v, values in (baselines or {}).items()]
    for v, values, time_s in rows:
        rel = f"{100 * (np.mean(values) / base - 1):+8.1f}%" if base else ""
        print(f"{v:20s} {np.mean(values):14.4f} {np.std(values):7.4f} {rel:>9s} {time_s}")


def merge_records(paths: list[Path]) -> dict:
    """One record from several --out files (folds or variants run separately): per variant and
    baseline, the value of each fold (a later file wins a fold both hold; one that reruns all of
    a variant's folds replaces its time too); the distinct setups (without their process layout
    and wall time) joined."""
    maes: dict[str, dict[int, float]] = {}
    baselines: dict[str, dict[int, float]] = {}
    seconds: dict[str, float] = {}
    setups = []
    for path in paths:
        run = json.loads(path.read_text())
        setups.append(re.sub(r", \d+ fold processes x \d+ thread; wall \d+ s$", "", run["setup"]))
        for name, values in run["mae"].items():
            if set(run["folds"]) >= set(maes.get(name, {})):  # a rerun of all its folds: its time
                seconds[name] = 0.0
            maes.setdefault(name, {}).update(zip(run["folds"], values, strict=True))
            seconds[name] = seconds.get(name, 0.0) + run["seconds"][name]
        for name, values in run.get("baselines", {}).items():
            baselines.setdefault(name, {}).update(zip(run["folds"], values, strict=True))
    folds = sorted(set().union(*maes.values()))
    incomplete = [n for n, by_fold in maes.items() if set(by_fold) != set(folds)]
    if incomplete:
        raise SystemExit(f"--merge: {', '.join(incomplete)} lack some of the folds {folds}")
    return {
        "setup": " | ".join(dict.fromkeys(setups)),
        "folds": folds,
        "mae": {n: [by_fold[f] for f in folds] for n, by_fold in maes.items()},
        "seconds": seconds,
        "baselines": {
            n: [by_fold[f] for f in folds]
            for n, by_fold in baselines.items()
            if len(by_fold) == len(folds)
        },
        "merged_from": [p.name for p in paths],
    }


def print_merged(paths: list[Path], out: Path | None) -> None:
    record = merge_records(paths)
    if out:
        out.write_text(json.dumps(record, indent=1))
    print_table(record["setup"], record["mae"], record["seconds"], record["baselines"])


if __name__ == "__main__":
    main()
