"""Seeded plain-torch training loop for the property networks, and the `Predictor` that wraps a
trained one.

`fit(graphs, cfg)` standardises targets (and descriptors) on the training graphs, optionally runs
CDSSL pretraining, trains with AdamW + one-cycle schedule on an L1 loss, and returns a `Predictor`
whose `predict(structures)` gives values in the target's unit.

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
from torch_geometric.loader import DataLoader

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.evaluators.property.cgcnn import CGCNN, CGCNNConfig
from invdesign.evaluators.property.data import make_graphs
from invdesign.evaluators.property.descriptors import N_DESCRIPTORS, descriptor_matrix
from invdesign.evaluators.property.model import CrysToGraph, CrysToGraphConfig
from invdesign.evaluators.property.potential import (
    N_ATOM_POTENTIAL,
    N_POTENTIAL,
    potential_features,
)
from invdesign.evaluators.property.pretrain import cdssl_pretrain

MODELS = ("crystograph", "cgcnn")


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
    sigma: float = 0.5  # Å, CDSSL noise
    seed: int = 42
    target: str = "formation_energy_per_atom"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise InvdesignError(f"unknown property model {self.model!r}; choose one of {MODELS}")
        if self.model == "cgcnn" and self.pretrain_epochs:
            raise InvdesignError("CDSSL pretraining needs the crystograph model (per-bond head)")
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
    n_desc = n_descriptor_inputs(cfg)
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
            element_features=cfg.element_features,
            n_atom_features=n_atom_inputs(cfg),
        )
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
        out = [
            self.net(self._prepare(b.clone())).cpu().numpy()
            for b in DataLoader(list(graphs), batch_size=batch_size)
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
    [n_atoms, n_atom_inputs(cfg)] when the model uses them). Seeded by cfg.seed."""
    torch.manual_seed(cfg.seed)
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
    net = pretrained if pretrained is not None else build_network(cfg)
    if pretrained is None and cfg.pretrain_epochs:
        cdssl_pretrain(
            net,
            graphs,
            cfg.pretrain_epochs,
            cfg.sigma,
            cfg.lr,
            cfg.batch_size,
            cfg.seed,
            device,
            log,
        )
    predictor = Predictor(net.to(device), cfg, y_mean, y_std, desc_mean, desc_std)
    generator = torch.Generator().manual_seed(cfg.seed)
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
        for batch in loader:
            batch = predictor._prepare(batch.to(device))
            target = (batch.y - y_mean) / y_std  # [B] standardised
            loss = torch.nn.functional.l1_loss(net(batch), target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            scheduler.step()
            total, count = total + loss.item() * batch.num_graphs, count + batch.num_graphs
        message = f"epoch {epoch + 1}/{cfg.epochs} train MAE {total / count * y_std:.4f}"
        if val_graphs is not None:
            val_y = np.array([float(g.y) for g in val_graphs])
            mae = float(np.abs(predictor.predict_graphs(val_graphs) - val_y).mean())
            predictor.metrics["val_mae"] = mae
            message += f" val MAE {mae:.4f}"
        predictor.metrics["train_mae"] = total / count * y_std
        if log:
            log(message)
    return predictor
