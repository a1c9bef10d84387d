"""Make the property label set and the shipped property checkpoints.

    python tools/make_property_checkpoints.py labels --out DATA_DIR/property/default_labels.csv
    python tools/make_property_checkpoints.py default --labels
    DATA_DIR/property/default_labels.csv
    python tools/make_property_checkpoints.py perov5 --csv ../shared/data/perov5/perov5_val.csv

`labels` relaxes CHILI-3K unit cells (12 crystal types x the metals given) and small mono-metallic
particles with CHGNet and writes raw + perturbed copies labelled with the relaxed formation energy.
`default` trains on a grouped 80/20 split of that set (whole sources held out) and writes
checkpoints/property-default with its MODEL_CARD.md; `perov5` trains on all of perov5_val.csv
(target heat_ref) -> checkpoints/property-perov5.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from invdesign.evaluators.property.checkpoint import (
    load_property_checkpoint,
    save_property_checkpoint,
)
from invdesign.evaluators.property.data import (
    PropertyData,
    make_graphs,
    read_property_csv,
    write_property_csv,
)
from invdesign.evaluators.property.potential import require_all
from invdesign.evaluators.property.train import TrainConfig, fit, model_inputs, parse_depths

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_METALS = "Li,Mg,Al,Ti,Mn,Fe,Co,Ni,Cu,Zn,Zr,Ag,Sn,Pt"


def cmd_labels(args) -> None:
    from invdesign.crystals.crystal_types import CRYSTAL_TYPES
    from invdesign.evaluators.property.labels import (
        label_sources,
        label_sources_unrelaxed,
        particle_sources,
        unit_cell_sources,
    )

    metals = args.metals.split(",")
    sources = unit_cell_sources(list(CRYSTAL_TYPES), metals) + particle_sources(
        metals, args.particles.split(",")
    )
    sources = [sources[i] for i in np.random.default_rng(args.seed).permutation(len(sources))]
    rng = np.random.default_rng(args.seed)
    rows: list[dict] = []
    chunk_size = 8 if args.relax else 64  # rewrite the CSV per chunk: partial runs are usable
    for start in range(0, len(sources), chunk_size):
        chunk = sources[start : start + chunk_size]
        seed = int(rng.integers(2**31))
        if args.relax:
            log = lambda m: print(m, flush=True)  # noqa: E731
            rows += label_sources(chunk, args.copies, seed=seed, steps=args.steps, log=log)
        else:
            rows += label_sources_unrelaxed(chunk, args.copies, seed=seed)
            print(f"labelled {start + len(chunk)}/{len(sources)} sources", flush=True)
        good = [r for r in rows if np.isfinite(r["formation_energy_per_atom"])]
        data = PropertyData(
            [r["structure"] for r in good],
            np.array([r["formation_energy_per_atom"] for r in good]),
            [r["id"] for r in good],
            "formation_energy_per_atom",
            extra={
                k: [r[k] for r in good]
                for k in ("group", "copy", "raw_formation_energy_per_atom", "relax_steps")
            },
        )
        write_property_csv(args.out, data)
    print(f"wrote {args.out}: {len(data)} rows from {len(sources)} sources")


def grouped_split(
    groups: list[str], test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    unique = np.array(sorted(set(groups)))
    rng = np.random.default_rng(seed)
    test_groups = set(rng.permutation(unique)[: int(round(test_fraction * len(unique)))])
    test = np.array([g in test_groups for g in groups])
    return np.flatnonzero(~test), np.flatnonzero(test)


def train_cfg(args, target: str) -> TrainConfig:
    return TrainConfig(
        model=getattr(args, "model", "crystograph"),
        hidden=args.hidden,
        blocks=args.blocks,
        line_k=args.line_k,
        epochs=args.epochs,
        descriptors=args.descriptors,
        chgnet_features=getattr(args, "chgnet_features", False),
        chgnet_all_layers=getattr(args, "chgnet_all_layers", False),
        pretrain_epochs=args.pretrain_epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=getattr(args, "weight_decay", 1e-4),
        dropout=getattr(args, "dropout", 0.0),
        ensemble=getattr(args, "ensemble", 1),
        ensemble_blocks=getattr(args, "ensemble_blocks", ()),
        baseline=getattr(args, "baseline", False),
        seed=args.seed,
        target=target,
    )


def cmd_default(args) -> None:
    torch.set_num_threads(args.threads)
    data = read_property_csv(args.labels)
    groups = data.extra["group"]
    train, test = grouped_split(groups, 0.2, args.seed)
    cfg = train_cfg(args, "formation_energy_per_atom")
    inputs = model_inputs(data.structures, cfg)
    graphs = make_graphs(data.structures, data.targets, inputs.desc, cfg.k, cfg.line_k)
    t0 = time.time()
    predictor = fit(
        [graphs[i] for i in train],
        cfg,
        val_graphs=[graphs[i] for i in test],
        log=lambda m: print(m, flush=True),
    )
    seconds = time.time() - t0
    pred = predictor.predict_graphs([graphs[i] for i in test])
    mae = float(np.abs(pred - data.targets[test]).mean())
    kinds = np.array(data.extra["kind"])[test]
    mae_kind = {k: float(np.abs(pred - data.targets[test])[kinds == k].mean()) for k in set(kinds)}
    test_groups = sorted({groups[i] for i in test})
    predictor.metrics = {
        "heldout_mae_vs_chgnet": mae,
        "heldout_mae_by_kind": mae_kind,
        "n_train": len(train),
        "n_heldout": len(test),
    }
    out = Path(args.out)
    save_property_checkpoint(
        out, predictor, {"heldout_groups": test_groups, "labels": str(args.labels)}
    )
    command = " ".join(["python", "tools/make_property_checkpoints.py", *sys.argv[1:]])
    n_groups = len(set(groups))
    relaxed = any(int(v) > 0 for v in data.extra.get("relax_steps", []))
    label_kind = (
        "the FIRE-relaxed (fmax 0.1 eV/Å) CHGNet formation energy of the source"
        if relaxed
        else "each structure's own unrelaxed CHGNet formation energy (`labels --no-relax`; "
        "the relaxed labelling was too slow on the shared CPU)"
    )
    by_kind = ", ".join(f"{k} {v:.3f}" for k, v in sorted(mae_kind.items()))
    card = f"""# property-default: formation energy of our generators' structures

CrysToGraph-style GNN (evaluators/property/model.py) predicting the **CHGNet formation energy**
(eV/atom; recipe of evaluators/property/reference.py: E_CHGNet/n - sum_i x_i mu_i with the
Materials Project elemental references) of a raw structure in one shot.
Labels are CHGNet's, not DFT.

- Data: {len(data)} structures from {n_groups} sources in `{args.labels}`, made by
  `python tools/make_property_checkpoints.py labels ...`: CHILI-3K unit cells (crystal type x metal,
  `crystal_types.unit_cell`) and 13/38/55-atom mono-metallic particles, each raw and as a
  perturbed copy (0.1 Å noise, 3 % strain), labelled with {label_kind}.
- Split: grouped by source, 80/20, seed {args.seed}: {len(train)} train / {len(test)} held-out
  structures; the held-out groups are listed in config.json.
- Model/training: `{json.dumps(cfg.to_dict())}`; {seconds:.0f} s on a shared 2-core CPU.
- Command: `{command}`
- Metrics (held-out structures vs their CHGNet-recipe labels): MAE {mae:.3f} eV/atom; by kind:
  {by_kind}.
- Use: screening only; check the top candidates with `invdesign screen --check chgnet`.
"""
    (out / "MODEL_CARD.md").write_text(card)
    print(f"held-out MAE vs CHGNet {mae:.4f} eV/atom {mae_kind}; wrote {out}")


def cv_summary(path: Path | None, variant: str) -> str:
    """Markdown lines quoting the 5-fold CV of `benchmarks/property_perov5.py` (its --out JSON)."""
    if path is None or not path.is_file():
        return "- Cross-validation: none recorded (run `benchmarks/property_perov5.py`).\n"
    record = json.loads(path.read_text())
    if variant not in record["mae"]:
        return f"- Cross-validation: `{path.name}` has no row `{variant}`.\n"
    rows = {**record["mae"], **{f"[{k}]": v for k, v in record.get("baselines", {}).items()}}
    table = ", ".join(f"{k} {np.mean(v):.3f}" for k, v in rows.items() if v)
    folds = len(record["mae"][variant])
    control = ""
    if variant.startswith("ctg") and "chgnet" in variant and "cgcnn+chgnet" in record["mae"]:
        control = (
            f"  CGCNN given the same CHGNet features scores "
            f"{np.mean(record['mae']['cgcnn+chgnet']):.3f} (plain CGCNN "
            f"{np.mean(record['mae']['cgcnn']):.3f}): the gain is the features', not the\n"
            f"  CrysToGraph architecture's.\n"
        )
    return (
        f"- Cross-validation ({folds} folds of `benchmarks/property_perov5.py`, "
        f"from `{path.name}`;\n"
        f"  the same recipe per fold, trained on 4/5 of the rows): this checkpoint's variant\n"
        f"  `{variant}` MAE {np.mean(record['mae'][variant]):.4f} eV/atom (folds: "
        f"{', '.join(f'{v:.4f}' for v in record['mae'][variant])}). All rows (mean MAE,\n"
        f"  eV/atom): {table}.\n  Setup: {record['setup']}.\n" + control
    )


def cmd_perov5(args) -> None:
    out = Path(args.out)
    if args.card_only:  # the card of the checkpoint in --out, with the CV of --cv-json
        predictor = load_property_checkpoint(out)
        cfg, info = predictor.cfg, predictor.info
        seconds, command = predictor.metrics.get("train_seconds", math.nan), info["command"]
        n_rows, csv = info["n_rows"], info["data"]
    else:
        torch.set_num_threads(args.threads)
        data = read_property_csv(args.csv, target="heat_ref")
        cfg = train_cfg(args, "heat_ref")
        inputs = model_inputs(data.structures, cfg, workers=args.workers)
        require_all(data.ids, inputs.status)
        graphs = make_graphs(
            data.structures, data.targets, inputs.desc, cfg.k, cfg.line_k, inputs.atom_fea
        )
        t0 = time.time()
        predictor = fit(graphs, cfg, log=lambda m: print(m, flush=True))
        seconds = time.time() - t0
        predictor.metrics["train_seconds"] = seconds
        command = " ".join(["python", "tools/make_property_checkpoints.py", *sys.argv[1:]])
        n_rows, csv = len(data), str(args.csv)
        extra = {"data": csv, "command": command, "n_rows": n_rows}
        save_property_checkpoint(out, predictor, extra)
    variant = (
        {"crystograph": "ctg", "atomset": "set"}.get(cfg.model, cfg.model)
        + ("+desc" if cfg.descriptors else "")
        + ("+cdssl" if cfg.pretrain_epochs else "")
        + ("+chgnet" if cfg.chgnet_features else "")
        + ("-all" if cfg.chgnet_features and cfg.chgnet_all_layers else "")
    )
    uses_chgnet = (
        "- Prediction needs CHGNet (`pip install -e '.[chgnet]'`, CHGNet 0.3 weights): the model\n"
        "  reads CHGNet's single-point formation energy, crystal feature and atom features"
        + (" (after\n  each of its four layers)" if cfg.chgnet_all_layers else "")
        + " of the\n  cell as given (evaluators/property/potential.py); cells CHGNet refuses (a "
        "pair closer\n  than 0.7 Å) get no prediction.\n"
        if cfg.chgnet_features
        else ""
    )
    network = {
        "crystograph": "CrysToGraph-style GNN",
        "atomset": "Set transformer over the cell's atoms with CHGNet's atom features\n"
        "(`AtomSet`, evaluators/property/model.py)",
        "cgcnn": "CGCNN",
    }[cfg.model]
    if cfg.baseline:
        network += (
            ",\ncorrecting a ridge fit of the target to the composition fractions and CHGNet's "
            "energy\n(`TrainConfig.baseline`, fitted on the training rows, stored in the weights)"
        )
    if cfg.ensemble > 1:
        depths = (
            f", layers {', '.join(map(str, cfg.ensemble_blocks))} in turn"
            if cfg.ensemble_blocks
            else ""
        )
        network = (
            f"Mean of {cfg.ensemble} independently trained networks (seeds {cfg.seed}-"
            f"{cfg.seed + cfg.ensemble - 1}{depths}), each a\n{network[0].lower()}{network[1:]}"
        )
    card = f"""# property-perov5: heat_ref of ABX3 perovskites

{network}, variant `{variant}`, trained on **all** of perov5_val.csv ({n_rows}
five-atom cells), target `heat_ref` (eV/atom relative to the data set's own reference phases: not a
formation energy from the elements; do not mix with property-default).

- Data: `{csv}` (all rows; no split, no held-out part).
- Split: none for this checkpoint; its error on unseen cells is the cross-validation below.
- Seed: {cfg.seed}.
- Model/training: `{json.dumps(cfg.to_dict())}`; {seconds:.0f} s on a shared 2-core CPU.
- Command: `{command}`
- Metrics: training MAE {predictor.metrics["train_mae"]:.4f} eV/atom (last epoch; not an error on
  unseen cells).
{cv_summary(args.cv_json, variant)}{uses_chgnet}"""
    (out / "MODEL_CARD.md").write_text(card)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    labels = sub.add_parser("labels")
    labels.add_argument("--out", type=Path, required=True)
    labels.add_argument("--metals", default=DEFAULT_METALS)
    labels.add_argument("--copies", type=int, default=1)
    labels.add_argument("--steps", type=int, default=150)
    labels.add_argument("--particles", default="ico13,octa38,ico55")
    labels.add_argument(
        "--no-relax",
        dest="relax",
        action="store_false",
        help="label each structure with its own unrelaxed CHGNet E_f (fast; no FIRE)",
    )
    labels.add_argument("--seed", type=int, default=0)
    labels.set_defaults(func=cmd_labels)
    for name, func, out in (
        ("default", cmd_default, "property-default"),
        ("perov5", cmd_perov5, "property-perov5"),
    ):
        p = sub.add_parser(name)
        if name == "default":
            p.add_argument("--labels", type=Path, required=True)
        else:
            p.add_argument(
                "--csv",
                type=Path,
                default=ROOT.parent / "shared" / "data" / "perov5" / "perov5_val.csv",
            )
        p.add_argument("--out", default=str(ROOT / "checkpoints" / out))
        p.add_argument("--epochs", type=int, default=30 if name == "default" else 20)
        p.add_argument("--pretrain-epochs", type=int, default=0)
        p.add_argument("--descriptors", action="store_true")
        p.add_argument("--hidden", type=int, default=32)
        p.add_argument("--blocks", type=int, default=2)
        p.add_argument("--line-k", type=int, default=4)
        p.add_argument("--batch-size", type=int, default=32 if name == "default" else 64)
        p.add_argument("--lr", type=float, default=2e-3)
        p.add_argument("--seed", type=int, default=42)
        p.add_argument("--threads", type=int, default=1)
        if name == "perov5":
            p.add_argument(
                "--cv-json",
                type=Path,
                default=ROOT / "benchmarks" / "results" / "property_perov5.json",
                help="per-fold MAEs of benchmarks/property_perov5.py, quoted in the card",
            )
            p.add_argument("--workers", type=int, default=1, help="processes for descriptors")
            p.add_argument(
                "--card-only",
                action="store_true",
                help="rewrite MODEL_CARD.md of the checkpoint in --out from --cv-json; no training",
            )
            p.add_argument(
                "--model",
                choices=("crystograph", "atomset", "cgcnn"),
                default="crystograph",
                help="atomset: set transformer over CHGNet's atom features (--chgnet-features)",
            )
            p.add_argument("--weight-decay", type=float, default=1e-4)
            p.add_argument("--dropout", type=float, default=0.0)
            p.add_argument("--ensemble", type=int, default=1, help="networks averaged")
            p.add_argument(
                "--ensemble-blocks",
                type=parse_depths,
                default=(),
                help="depth of each ensemble member, e.g. 2,3,2,3 (default: all --blocks)",
            )
            p.add_argument(
                "--baseline",
                action="store_true",
                help="networks learn the residual of a ridge fit to composition + CHGNet energy",
            )
            p.add_argument(
                "--chgnet-features",
                action="store_true",
                help="hybridise with CHGNet's energy, crystal and atom features (not offered for "
                "`default`: its labels are CHGNet energies)",
            )
            p.add_argument(
                "--chgnet-all-layers",
                action="store_true",
                help="with --chgnet-features: CHGNet's atom features after each of its 4 layers",
            )
        p.set_defaults(func=func)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
