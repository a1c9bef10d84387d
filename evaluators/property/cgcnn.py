"""CGCNN baseline (Xie & Grossman 2018) with torch_geometric's `CGConv`, on the same k-NN crystal
graphs.

Same interface as `CrysToGraph`: `forward(batch) -> [B]` in standardised target units. It ignores
the line graph and positional encodings; bond features are the same Gaussian expansion of bond
lengths.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch_geometric.nn import CGConv

from invdesign.evaluators.property.atoms import N_ELEMENTS, AtomFeatureInput, ElementFeatures
from invdesign.evaluators.property.graphs import edge_vectors
from invdesign.evaluators.property.model import GaussianBasis
from invdesign.evaluators.property.segment_ops import scatter_mean


@dataclass
class CGCNNConfig:
    hidden: int = 64
    layers: int = 3
    n_rbf: int = 48
    rbf_max: float = 8.0
    n_descriptors: int = 0
    element_features: bool = False  # add CGCNN's kind of element features to the embedding
    n_atom_features: int = 0  # per-atom input features (`atom_fea`) added to the embedding

    def to_dict(self) -> dict:
        return asdict(self)


class CGCNN(nn.Module):
    def __init__(self, config: CGCNNConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or CGCNNConfig()
        self.embed = nn.Embedding(N_ELEMENTS + 1, cfg.hidden)
        self.element_features = ElementFeatures(cfg.hidden) if cfg.element_features else None
        self.atom_in = (
            AtomFeatureInput(cfg.n_atom_features, cfg.hidden) if cfg.n_atom_features else None
        )
        self.rbf = GaussianBasis(0.0, cfg.rbf_max, cfg.n_rbf)
        self.convs = nn.ModuleList(
            CGConv(cfg.hidden, dim=cfg.n_rbf, aggr="mean", batch_norm=True)
            for _ in range(cfg.layers)
        )
        self.head = nn.Sequential(
            nn.Linear(cfg.hidden + cfg.n_descriptors, cfg.hidden),
            nn.Softplus(),
            nn.Linear(cfg.hidden, 1),
        )

    def forward(self, batch) -> torch.Tensor:
        vec = edge_vectors(batch.pos, batch.edge_index, batch.edge_shift)  # [E, 3] Å
        edge_attr = self.rbf(vec.norm(dim=-1))  # [E, n_rbf]
        x = self.embed(batch.z.clamp(max=N_ELEMENTS))  # [N, d]
        if self.element_features is not None:
            x = x + self.element_features(batch.z)
        if self.atom_in is not None:
            x = x + self.atom_in(batch.atom_fea)
        for conv in self.convs:
            x = nn.functional.softplus(conv(x, batch.edge_index, edge_attr))
        pooled = scatter_mean(x, batch.batch, 0, batch.num_graphs)  # [B, d]
        if self.config.n_descriptors:
            pooled = torch.cat([pooled, batch.desc], -1)
        return self.head(pooled).squeeze(-1)
