"""Seeded plain-torch training loop for the property networks, and the `Predictor` that wraps a
trained one.

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
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.evaluators.property.cgcnn import CGCNN, CGCNNConfig
from invdesign.evaluators.property.data import make_graphs
from invdesign.evaluators.property.descriptors import N_DESCRIPTORS, descriptor_matrix
from invdesign.evaluators.property.model import (
    AtomSet,
    AtomSetConfig,
    CrysToGraph,
    CrysToGraphConfig,
    Ensemble,
)
from invdesign.evaluators.property.potential import (
    N_ATOM_POTENTIAL,
    N_POTENTIAL,
    potential_features,
)
from invdesign.evaluators.property.pretrain import cdssl_pretrain

MODELS = ("crystograph", "cgcnn", "atomset")


@dataclass
class TrainConfig:
    """Everything that builds and trains one property model (stored in its checkpoint)."""

    model: str = "crystograph"
    hidden: int = 32
    heads: int = 4
    blocks: int = 2
    k: int = 12
    line_k: int | None = (
        4  # line graph over each centre's 4 nearest bonds (CPU budget; None = all 12)
    )
    descriptors: bool = False  # seed-002 structure descriptors
    chgnet_features: bool = False  # CHGNet energy + crystal and atom features (needs chgnet)
    element_features: bool = True  # CGCNN-style element features beside the learned embedding
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    pretrain_epochs: int = 0  # CDSSL epochs before fine-tuning (0: none)
    dropout: float = 0.0  # crystograph and atomset heads (atomset: its transformer layers too)
    ensemble: int = 1  # independently trained networks whose mean is the prediction
    sigma: float = 0.5  # Å, CDSSL noise
    seed: int = 42
    target: str = "formation_energy_per_atom"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise InvdesignError(f"unknown property model {self.model!r}; choose one of {MODELS}")
        if self.model != "crystograph" and self.pretrain_epochs:
            raise InvdesignError("CDSSL pretraining needs the crystograph model (per-bond head)")
        if not 1 <= self.ensemble <= 32:
            raise InvdesignError(f"ensemble must be 1 to 32 networks, not {self.ensemble}")
        if not 0.0 <= self.dropout < 1.0:
            raise InvdesignError(f"dropout must be in [0, 1), not {self.dropout}")
        if self.chgnet_features and self.pretrain_epochs:
            raise InvdesignError(
                "CDSSL pretraining cannot see CHGNet features (they describe the clean structure "
                "it must recover): pretrain without them, then transfer_encoder"
            )

    def to_dict(self) -> dict:
        return asdict(self)


def n_descriptor_inputs(cfg: TrainConfig) -> int:
    """Width of the descriptor vector concatenated to the pooled representation (0: none)."""
    return N_DESCRIPTORS * cfg.descriptors + N_POTENTIAL * cfg.chgnet_features


def n_atom_inputs(cfg: TrainConfig) -> int:
    """Width of the per-atom input features added to the node embeddings (0: none)."""
    return N_ATOM_POTENTIAL * cfg.chgnet_features


@dataclass
class ModelInputs:
    """What a model needs beside the graph. desc: raw rows [n, n_descriptor_inputs(cfg)] or None;
    atom_fea: per structure [n_atoms_i, n_atom_inputs(cfg)] or None; status: "ok", or why a
    structure's inputs hold NaN (CHGNet refused it)."""

    desc: np.ndarray | None
    atom_fea: list[np.ndarray] | None
    status: list[str]

    def usable(self) -> np.ndarray:
        """[n] bool: every input of the structure is finite."""
        ok = np.ones(len(self.status), dtype=bool)
        if self.desc is not None:
            ok &= np.isfinite(self.desc).all(axis=1)
        if self.atom_fea is not None:
            ok &= np.array([np.isfinite(a).all() for a in self.atom_fea], dtype=bool)
        return ok


def model_inputs(
    structures: Sequence[Structure], cfg: TrainConfig, workers: int = 1
) -> ModelInputs:
    """The hybridisation inputs `cfg` asks for (see the module docstring); `workers` > 1 computes
    the seed-002 descriptors in a process pool."""
    inputs = ModelInputs(None, None, ["ok"] * len(structures))
    blocks = []
    if cfg.descriptors:
        blocks.append(descriptor_matrix(structures, workers=workers))
    if cfg.chgnet_features:
        features = potential_features(structures)
        blocks.append(features.graph)
        inputs.atom_fea, inputs.status = features.atoms, features.status
    if blocks:
        inputs.desc = np.concatenate(blocks, axis=1)
    return inputs


def build_network(cfg: TrainConfig) -> torch.nn.Module:
    """The untrained network of `cfg` (an `Ensemble` of cfg.ensemble members when > 1)."""
    if cfg.ensemble > 1:
        return Ensemble([build_member(cfg) for _ in range(cfg.ensemble)])
    return build_member(cfg)


def build_member(cfg: TrainConfig) -> torch.nn.Module:
    """One network of `cfg` (ignores cfg.ensemble)."""
    n_desc = n_descriptor_inputs(cfg)
    if cfg.model == "atomset":
        return AtomSet(
            AtomSetConfig(
                hidden=cfg.hidden,
                heads=cfg.heads,
                layers=cfg.blocks,
                n_descriptors=n_desc,
                n_atom_features=n_atom_inputs(cfg),
                dropout=cfg.dropout,
                element_features=cfg.element_features,
            )
        )
    if cfg.model == "cgcnn":
        return CGCNN(
            CGCNNConfig(
                hidden=cfg.hidden,
                layers=max(cfg.blocks, 3),
                n_descriptors=n_desc,
                element_features=cfg.element_features,
                n_atom_features=n_atom_inputs(cfg),
            )
        )
    return CrysToGraph(
        CrysToGraphConfig(
            hidden=cfg.hidden,
            heads=cfg.heads,
            blocks=cfg.blocks,
            n_descriptors=n_desc,
            dropout=cfg.dropout,
            element_features=cfg.element_features,
            n_atom_features=n_atom_inputs(cfg),
        )
    )


class PackedGraphs:
    """The tensors an `atomset` network reads (z, pos, atom_fea per atom; edge_index, edge_shift
    per bond; desc, y per graph), concatenated once, so that a batch is a few index operations:
    PyG's per-graph collation costs more than the network itself on five-atom cells."""

    NODE_KEYS = ("z", "pos", "atom_fea")
    GRAPH_KEYS = ("desc", "y")

    def __init__(self, graphs: Sequence) -> None:
        self.n_nodes = torch.tensor([int(g.num_nodes) for g in graphs])
        self.n_edges = torch.tensor([int(g.edge_index.shape[1]) for g in graphs])
        self.node_start = torch.cumsum(self.n_nodes, 0) - self.n_nodes
        self.edge_start = torch.cumsum(self.n_edges, 0) - self.n_edges
        first = graphs[0]
        self.node = {
            k: torch.cat([getattr(g, k) for g in graphs])
            for k in self.NODE_KEYS
            if getattr(first, k, None) is not None
        }
        self.graph = {
            k: torch.cat([getattr(g, k).reshape(1, -1) for g in graphs])
            for k in self.GRAPH_KEYS
            if getattr(first, k, None) is not None
        }
        self.edge_index = torch.cat([g.edge_index for g in graphs], 1)  # per-graph atom indices
        self.edge_shift = torch.cat([g.edge_shift for g in graphs])

    def __len__(self) -> int:
        return len(self.n_nodes)

    def batch(self, ids: torch.Tensor) -> Data:
        """The graphs `ids` as one batch (the attributes of a PyG `Batch` the model uses)."""
        counts, edge_counts = self.n_nodes[ids], self.n_edges[ids]
        nodes = _ranges(self.node_start[ids], counts)
        edges = _ranges(self.edge_start[ids], edge_counts)
        offset = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, edge_counts)
        batch = Data(
            edge_index=self.edge_index[:, edges] + offset,
            edge_shift=self.edge_shift[edges],
            batch=torch.repeat_interleave(torch.arange(len(ids)), counts),
            **{k: v[nodes] for k, v in self.node.items()},
        )
        for k, v in self.graph.items():
            batch[k] = v[ids] if k == "desc" else v[ids].reshape(-1)
        batch.num_graphs = len(ids)
        return batch

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None, drop_last: bool = False
    ):
        """Batches in order, or shuffled by `generator`."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if generator is not None else None
        stop = n - n % batch_size if drop_last and n > batch_size else n
        for start in range(0, stop, batch_size):
            ids = torch.arange(start, min(start + batch_size, n))
            yield self.batch(ids if order is None else order[ids])


def _ranges(starts: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Concatenation of arange(s, s + c) for each start s and count c."""
    shift = torch.repeat_interleave(starts - (torch.cumsum(counts, 0) - counts), counts)
    return torch.arange(int(counts.sum())) + shift


def _batches(cfg: TrainConfig, graphs: list, batch_size: int, generator=None, drop_last=False):
    """Batches of graphs: packed for `atomset` (see `PackedGraphs`), PyG's loader otherwise."""
    if cfg.model == "atomset":
        return PackedGraphs(graphs).batches(batch_size, generator, drop_last)
    return DataLoader(
        graphs,
        batch_size=batch_size,
        shuffle=generator is not None,
        generator=generator,
        drop_last=drop_last,
    )


@dataclass
class Predictor:
    """A trained network with its scalers. Predictions are in the target's unit."""

    net: torch.nn.Module
    cfg: TrainConfig
    y_mean: float
    y_std: float
    desc_mean: np.ndarray | None = None  # [n_descriptor_inputs(cfg)]
    desc_std: np.ndarray | None = None
    metrics: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)  # checkpoint config when loaded from disk

    def _prepare(self, batch):
        if n_descriptor_inputs(self.cfg):
            mean = torch.as_tensor(self.desc_mean, dtype=torch.float32)
            std = torch.as_tensor(self.desc_std, dtype=torch.float32)
            batch.desc = (batch.desc - mean) / std
        return batch

    @torch.no_grad()
    def predict_graphs(self, graphs: Sequence, batch_size: int = 128) -> np.ndarray:
        """[n] predictions for prepared graphs (with `desc` when the model uses descriptors)."""
        self.net.eval()
        graphs = list(graphs)
        if not graphs:
            return np.zeros(0)
        out = [
            self.net(self._prepare(b.clone())).cpu().numpy()
            for b in _batches(self.cfg, graphs, batch_size)
        ]
        return np.concatenate(out) * self.y_std + self.y_mean if out else np.zeros(0)

    def predict(self, structures: Sequence[Structure]) -> np.ndarray:
        """[n] predictions for structures (graphs and inputs built here); NaN where an input
        cannot be computed (see `model_inputs`)."""

        inputs = model_inputs(structures, self.cfg)
        usable = inputs.usable()
        # zeros in place of NaN inputs, so nothing undefined enters a batch; those rows -> NaN
        desc = None if inputs.desc is None else np.nan_to_num(inputs.desc)
        atom_fea = None if inputs.atom_fea is None else [np.nan_to_num(a) for a in inputs.atom_fea]
        graphs = make_graphs(structures, None, desc, self.cfg.k, self.cfg.line_k, atom_fea)
        values = self.predict_graphs(graphs)
        values[~usable] = np.nan
        return values


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
    cfg.ensemble > 1, member m is trained alone with seed cfg.seed + m (and starts from
    `pretrained` only for m = 0)."""
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
    members = []
    for m in range(cfg.ensemble):
        seed = cfg.seed + m
        torch.manual_seed(seed)
        net = pretrained if (pretrained is not None and m == 0) else build_member(cfg)
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
