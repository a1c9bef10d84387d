"""Seeded plain-torch training loop for the property networks (PyG's data loaders); the
`Predictor` that wraps a trained one, `TrainConfig` and `build_network` are in `predictor` (also
importable from here).

`fit(graphs, cfg)` standardises targets (and descriptors) on the training graphs, optionally runs
CDSSL pretraining, trains with AdamW + one-cycle schedule on an L1 loss, and returns a `Predictor`
whose `predict(structures)` gives values in the target's unit. With `cfg.ensemble` > 1 it trains
that many networks independently (seeds cfg.seed, cfg.seed + 1, ...) and predicts their mean.

Models: "crystograph" (module `model`), "cgcnn" (module `cgcnn`) and "atomset" (`model.AtomSet`,
a set transformer over the atoms of a cell, for use with CHGNet's atom features).

Hybridisation inputs, each switched on by the config: the seed-002 structure descriptors
(`cfg.descriptors`, module `descriptors`) and CHGNet's features (`cfg.chgnet_features`, module
`potential`: energy + crystal feature beside the descriptors at the head, atom features added to
the node embeddings). `model_inputs` computes them for a list of structures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch_geometric.loader import DataLoader

from invdesign.core.errors import InvdesignError
from invdesign.evaluators.property.atoms import N_ELEMENTS
from invdesign.evaluators.property.batching import PackedGraphs
from invdesign.evaluators.property.descriptors import N_DESCRIPTORS
from invdesign.evaluators.property.model import Ensemble, LinearBaseline
from invdesign.evaluators.property.predictor import (
    MODELS,
    ModelInputs,
    Predictor,
    TrainConfig,
    build_member,
    build_network,
    member_config,
    model_inputs,
    n_atom_inputs,
    n_descriptor_inputs,
    parse_depths,
)
from invdesign.evaluators.property.pretrain import cdssl_pretrain

#: The names other modules, tools and tests import from here (defined in `predictor` and
#: `batching`, so that prediction does not import the training stack).
__all__ = [
    "MODELS",
    "ModelInputs",
    "PackedGraphs",
    "Predictor",
    "TrainConfig",
    "build_member",
    "build_network",
    "fit",
    "fit_baseline",
    "model_inputs",
    "n_atom_inputs",
    "n_descriptor_inputs",
    "parse_depths",
]


def fit(
    graphs: Sequence,
    cfg: TrainConfig,
    val_graphs: Sequence | None = None,
    pretrained: torch.nn.Module | None = None,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
) -> Predictor:
    """Train on graphs carrying `y` [1] (and `desc` [1, n_descriptor_inputs(cfg)] and `atom_fea`
    [n_atoms, n_atom_inputs(cfg)] when the model uses them). Seeded by cfg.seed; with
    cfg.ensemble > 1, member m is trained alone with seed cfg.seed + m, at depth
    cfg.ensemble_blocks[m] when given (and starts from `pretrained` only for m = 0)."""
    graphs = list(graphs)
    y = np.array([float(g.y) for g in graphs])
    y_mean, y_std = float(y.mean()), float(y.std() or 1.0)
    desc_mean = desc_std = None
    if n_descriptor_inputs(cfg):
        desc = np.concatenate([g.desc.numpy() for g in graphs])
        if desc.shape[1] != n_descriptor_inputs(cfg):
            raise InvdesignError(
                f"training graphs carry {desc.shape[1]} descriptors; the model expects "
                f"{n_descriptor_inputs(cfg)}"
            )
        bad = int((~np.isfinite(desc).all(axis=1)).sum())
        if bad:
            raise InvdesignError(f"{bad} training structures have no descriptors (NaN)")
        desc_mean, desc_std = desc.mean(0), np.where(desc.std(0) > 1e-8, desc.std(0), 1.0)
    if n_atom_inputs(cfg):
        if any(getattr(g, "atom_fea", None) is None for g in graphs):
            raise InvdesignError("the model needs per-atom features (atom_fea) on every graph")
        if not all(bool(torch.isfinite(g.atom_fea).all()) for g in graphs):
            raise InvdesignError("training structures have no atom features (NaN)")
    baseline = None
    if cfg.baseline:
        baseline = fit_baseline(graphs, (y - y_mean) / y_std, cfg, desc_mean, desc_std)
    members = []
    for m in range(cfg.ensemble):
        seed = cfg.seed + m
        torch.manual_seed(seed)
        net = (
            pretrained
            if (pretrained is not None and m == 0)
            else build_member(member_config(cfg, m))
        )
        if baseline is not None:
            net.baseline.load_state_dict(baseline.state_dict())
        if (pretrained is None or m > 0) and cfg.pretrain_epochs:
            cdssl_pretrain(
                net,
                graphs,
                cfg.pretrain_epochs,
                cfg.sigma,
                cfg.lr,
                cfg.batch_size,
                seed,
                device,
                log,
            )
        member = Predictor(net.to(device), cfg, y_mean, y_std, desc_mean, desc_std)
        prefix = f"member {m + 1}/{cfg.ensemble} " if cfg.ensemble > 1 else ""
        _train(member, graphs, seed, val_graphs, device, log, prefix)
        members.append(member)
    if cfg.ensemble == 1:
        return members[0]
    predictor = Predictor(
        Ensemble([p.net for p in members]), cfg, y_mean, y_std, desc_mean, desc_std
    )
    predictor.metrics["train_mae"] = float(np.mean([p.metrics["train_mae"] for p in members]))
    if val_graphs is not None:
        val_y = np.array([float(g.y) for g in val_graphs])
        mae = float(np.abs(predictor.predict_graphs(val_graphs) - val_y).mean())
        predictor.metrics["val_mae"] = mae
        if log:
            log(f"ensemble of {cfg.ensemble}: val MAE {mae:.4f}")
    return predictor


def fit_baseline(
    graphs: Sequence,
    target: np.ndarray,
    cfg: TrainConfig,
    desc_mean: np.ndarray | None = None,
    desc_std: np.ndarray | None = None,
    alpha: float = 1e-2,
) -> LinearBaseline:
    """Ridge fit (penalty `alpha` on the squared weights) of `target` [n] (standardised) to the
    composition fractions of `graphs` and, with cfg.chgnet_features, CHGNet's standardised
    formation energy (the first column of the CHGNet block of `desc`): the `LinearBaseline` that
    cfg.baseline networks correct. The other graph-level inputs get weight 0 (on perov5 fold 0 a
    baseline on all of them left the network worse off than one on the energy alone,
    benchmarks/results/property_perov5_NOTES.md); elements absent from `graphs` get weight 0."""
    n_desc = n_descriptor_inputs(cfg)
    columns = [N_DESCRIPTORS * cfg.descriptors] if cfg.chgnet_features else []
    comp = np.zeros((len(graphs), N_ELEMENTS + 1))
    for i, g in enumerate(graphs):
        z = g.z.clamp(max=N_ELEMENTS).numpy()
        np.add.at(comp[i], z, 1.0 / len(z))
    x = comp
    if columns:
        desc = np.concatenate([g.desc.numpy() for g in graphs])[:, columns]
        x = np.concatenate([comp, (desc - desc_mean[columns]) / desc_std[columns]], axis=1)
    x_mean = x.mean(0)
    xc = x - x_mean
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (target - target.mean()))
    baseline = LinearBaseline(n_desc)
    baseline.element_weight.copy_(torch.as_tensor(w[: N_ELEMENTS + 1]))
    baseline.desc_weight[columns] = torch.as_tensor(w[N_ELEMENTS + 1 :], dtype=torch.float32)
    baseline.bias.fill_(float(target.mean() - x_mean @ w))
    return baseline


def _train(
    predictor: Predictor,
    graphs: list,
    seed: int,
    val_graphs: Sequence | None,
    device: str,
    log: Callable[[str], None] | None,
    prefix: str = "",
) -> None:
    """AdamW + one-cycle L1 training of predictor.net (in place), cfg.epochs epochs; records
    train_mae (last epoch, target unit) and val_mae in predictor.metrics."""
    cfg, net = predictor.cfg, predictor.net
    y_mean, y_std = predictor.y_mean, predictor.y_std
    generator = torch.Generator().manual_seed(seed)
    packed = PackedGraphs(graphs) if cfg.model == "atomset" else None
    loader = DataLoader(
        graphs,
        batch_size=cfg.batch_size,
        shuffle=True,
        generator=generator,
        drop_last=len(graphs) > cfg.batch_size,
    )
    optimiser = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = max(1, cfg.epochs * len(loader))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimiser, cfg.lr, total_steps=steps)
    for epoch in range(cfg.epochs):
        net.train()
        total, count = 0.0, 0
        batches = (
            loader
            if packed is None
            else packed.batches(cfg.batch_size, generator, len(graphs) > cfg.batch_size)
        )
        for batch in batches:
            batch = predictor._prepare(batch.to(device))
            target = (batch.y - y_mean) / y_std  # [B] standardised
            loss = torch.nn.functional.l1_loss(net(batch), target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            scheduler.step()
            total, count = total + loss.item() * batch.num_graphs, count + batch.num_graphs
        message = f"{prefix}epoch {epoch + 1}/{cfg.epochs} train MAE {total / count * y_std:.4f}"
        if val_graphs is not None:
            val_y = np.array([float(g.y) for g in val_graphs])
            mae = float(np.abs(predictor.predict_graphs(val_graphs) - val_y).mean())
            predictor.metrics["val_mae"] = mae
            message += f" val MAE {mae:.4f}"
        predictor.metrics["train_mae"] = total / count * y_std
        if log:
            log(message)
