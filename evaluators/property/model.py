"""CrysToGraph-style property network (seeds/001): eTGC blocks on the crystal graph and its line
graph, one graph-wise transformer (GwT) layer with Laplacian + random-walk encodings, mean pooling,
Softplus head.

Optional descriptor hybridisation (seeds/002): standardised human descriptors are concatenated to
the pooled representation before the head. `edge_head` predicts one scalar per bond for CDSSL
pretraining (seeds/004). Edge features are Gaussian expansions of bond lengths and line-graph
features of bond-angle cosines, both recomputed from `pos` in `forward`, so the network is invariant
to rotations, translations and lattice shifts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from invdesign.evaluators.property.atoms import N_ELEMENTS, AtomFeatureInput, ElementFeatures
from invdesign.evaluators.property.graphs import N_LAP, N_RW, bond_cosines, edge_vectors
from invdesign.evaluators.property.segment_ops import (
    scatter_mean,
    scatter_sum,
    segment_softmax,
    to_dense_batch,
)


@dataclass
class CrysToGraphConfig:
    hidden: int = 64
    heads: int = 4
    blocks: int = 3
    n_rbf: int = 48
    rbf_max: float = 8.0  # Å, last Gaussian centre
    n_abf: int = 24  # Gaussians over cos(angle)
    n_descriptors: int = 0  # 0: no hybridisation
    dropout: float = 0.0
    element_features: bool = False  # add CGCNN-style element features to the learned embedding
    n_atom_features: int = 0  # per-atom input features (`atom_fea`) added to the embedding

    def to_dict(self) -> dict:
        return asdict(self)


class GaussianBasis(nn.Module):
    """x [*] -> [*, n] Gaussians exp(-(x - mu_k)^2 / (2 w^2)) on an even grid [lo, hi]."""

    def __init__(self, lo: float, hi: float, n: int) -> None:
        super().__init__()
        self.register_buffer("centres", torch.linspace(lo, hi, n))
        self.width = (hi - lo) / (n - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(-0.5 * ((x.unsqueeze(-1) - self.centres) / self.width) ** 2)

    def __repr__(self) -> str:
        return f"GaussianBasis({len(self.centres)}, width={self.width:.3f})"


class FeedForward(nn.Module):
    """x + BatchNorm(W2 GELU(W1 x)) (eq. 8-9)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.norm = nn.BatchNorm1d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.norm(self.net(x))


class ETGCLayer(nn.Module):
    """Edge-engaged transformer graph convolution (eq. 2-9): multi-head neighbour attention over
    [k_i, k_j, e'_ji], shared scores update nodes and edges, LayerNorm residuals, BatchNorm FFNs."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden size {dim} is not divisible by {heads} heads")
        self.heads, self.dk = heads, dim // heads
        self.q, self.k, self.v, self.e = (nn.Linear(dim, dim) for _ in range(4))
        self.k_edge = nn.Linear(3 * dim, dim)
        self.v_edge = nn.Linear(3 * dim, dim)
        self.out_node, self.out_edge = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.norm_node, self.norm_edge = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn_node, self.ffn_edge = FeedForward(dim), FeedForward(dim)

    def forward(
        self, x: torch.Tensor, e: torch.Tensor, edge_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [N, d] nodes; e: [E, d] edges; edge_index: [2, E] (source j, target i)."""
        src, dst = edge_index
        h, dk = self.heads, self.dk
        q, k, v, ep = self.q(x), self.k(x), self.v(x), self.e(e)
        k_ji = self.k_edge(torch.cat([k[dst], k[src], ep], -1)).view(-1, h, dk)  # [E, h, dk]
        v_ji = self.v_edge(torch.cat([v[dst], v[src], ep], -1)).view(-1, h, dk)
        score = (q[dst].view(-1, h, dk) * k_ji).sum(-1) / dk**0.5  # [E, h]
        attn = segment_softmax(score, dst, x.shape[0])  # over the incoming bonds of each centre
        h_x = scatter_sum(attn.unsqueeze(-1) * v_ji, dst, 0, x.shape[0])  # [N, h, dk]
        h_e = attn.unsqueeze(-1) * ep.view(-1, h, dk)  # [E, h, dk]
        x = x + self.norm_node(self.out_node(h_x.reshape(x.shape[0], -1)))
        e = e + self.norm_edge(self.out_edge(h_e.reshape(e.shape[0], -1)))
        return self.ffn_node(x), self.ffn_edge(e)


class GwTLayer(nn.Module):
    """Graph-wise transformer (eq. 11-15): full self-attention within each graph after adding
    positional
    encodings and the sum of incoming edge features."""

    def __init__(self, dim: int, heads: int, pe_dim: int) -> None:
        super().__init__()
        self.pe, self.edge = nn.Linear(pe_dim, dim), nn.Linear(dim, dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.out = nn.Linear(dim, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x, e, edge_index, pe, batch) -> torch.Tensor:
        """x: [N, d]; e: [E, d]; pe: [N, pe_dim]; batch: [N] graph index. Returns [N, d]."""
        x = (
            x
            + self.pe(pe)
            + scatter_sum(self.edge(e), edge_index[1], 0, x.shape[0])
        )
        dense, mask = to_dense_batch(x, batch)  # [B, n_max, d], [B, n_max]
        att, _ = self.attn(dense, dense, dense, key_padding_mask=~mask, need_weights=False)
        h = dense + self.norm1(self.out(att))
        h = h + self.norm2(self.ffn(h))
        return h[mask]


class CrysToGraph(nn.Module):
    """Graph-level regressor. `forward(batch) -> [B]` (standardised target units)."""

    def __init__(self, config: CrysToGraphConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or CrysToGraphConfig()
        d = cfg.hidden
        self.embed = nn.Embedding(N_ELEMENTS + 1, d)
        self.element_features = ElementFeatures(d) if cfg.element_features else None
        self.atom_in = AtomFeatureInput(cfg.n_atom_features, d) if cfg.n_atom_features else None
        self.rbf = GaussianBasis(0.0, cfg.rbf_max, cfg.n_rbf)
        self.abf = GaussianBasis(-1.0, 1.0, cfg.n_abf)
        self.edge_in = nn.Sequential(nn.Linear(cfg.n_rbf, d), nn.Softplus(), nn.Linear(d, d))
        self.angle_in = nn.Sequential(nn.Linear(cfg.n_abf, d), nn.Softplus(), nn.Linear(d, d))
        self.line_layers = nn.ModuleList(ETGCLayer(d, cfg.heads) for _ in range(cfg.blocks))
        self.graph_layers = nn.ModuleList(ETGCLayer(d, cfg.heads) for _ in range(cfg.blocks))
        self.gwt = GwTLayer(d, cfg.heads, N_LAP + N_RW)
        self.pool_norm = nn.LayerNorm(d)
        self.head = nn.Sequential(
            nn.Linear(d + cfg.n_descriptors, d),
            nn.Softplus(),
            nn.Dropout(cfg.dropout),
            nn.Linear(d, 1),
        )
        self.edge_head = nn.Sequential(nn.Linear(d, d), nn.Softplus(), nn.Linear(d, 1))

    def encode(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Node features after the eTGC blocks [N, d] and bond features [E, d]."""
        vec = edge_vectors(batch.pos, batch.edge_index, batch.edge_shift)  # [E, 3] Å
        x = self.embed(batch.z.clamp(max=N_ELEMENTS))  # [N, d]
        if self.element_features is not None:
            x = x + self.element_features(batch.z)
        if self.atom_in is not None:
            x = x + self.atom_in(batch.atom_fea)
        e = self.edge_in(self.rbf(vec.norm(dim=-1)))  # [E, d]
        t = self.angle_in(self.abf(bond_cosines(vec, batch.lg_index)))  # [T, d]
        for line_layer, graph_layer in zip(self.line_layers, self.graph_layers, strict=True):
            e, t = line_layer(e, t, batch.lg_index)  # bonds are the nodes of the line graph
            x, e = graph_layer(x, e, batch.edge_index)
        return x, e

    def forward(self, batch) -> torch.Tensor:
        x, e = self.encode(batch)
        x = self.gwt(x, e, batch.edge_index, batch.pe, batch.batch)  # [N, d]
        pooled = self.pool_norm(scatter_mean(x, batch.batch, 0, batch.num_graphs))
        if self.config.n_descriptors:
            pooled = torch.cat([pooled, batch.desc], -1)  # [B, d + n_desc]
        return self.head(pooled).squeeze(-1)

    def predict_edges(self, batch) -> torch.Tensor:
        """[E] one scalar per bond (CDSSL: the clean structure's standardised distance)."""
        _, e = self.encode(batch)
        return self.edge_head(e).squeeze(-1)


@dataclass
class AtomSetConfig:
    hidden: int = 64
    heads: int = 4
    layers: int = 2
    n_rbf: int = 32
    rbf_min: float = 1.0  # Å, first Gaussian centre of the neighbour-distance histogram
    rbf_max: float = 6.0  # Å, last one
    n_descriptors: int = 0  # graph-level inputs beside the pooled representation
    n_atom_features: int = 0  # per-atom input features (`atom_fea`: CHGNet's) added to x
    dropout: float = 0.1
    element_features: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


class AtomSet(nn.Module):
    """Set transformer over a cell's atoms, for inputs that already describe each atom's
    environment (CHGNet's atom features, module `potential`): each atom starts from its element
    (learned embedding + element features), its outside features and the Gaussian histogram of
    its k nearest-neighbour distances (Å); `layers` pre-norm transformer layers attend over all
    atoms of the cell; the masked mean goes with the graph-level inputs (`desc`) to an MLP head.
    No message passing and no line graph: on five-atom perovskite cells with CHGNet features it is
    more accurate than CrysToGraph (benchmarks/property_perov5.py) at a fraction of the cost.
    Attention is dense within each graph ([n, n] per head), as in CrysToGraph's GwT layer.
    `forward(batch) -> [B]` in standardised target units."""

    def __init__(self, config: AtomSetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or AtomSetConfig()
        d = cfg.hidden
        self.embed = nn.Embedding(N_ELEMENTS + 1, d)
        self.element_features = ElementFeatures(d) if cfg.element_features else None
        self.atom_in = AtomFeatureInput(cfg.n_atom_features, d) if cfg.n_atom_features else None
        self.rbf = GaussianBasis(cfg.rbf_min, cfg.rbf_max, cfg.n_rbf)
        self.env_in = nn.Sequential(nn.Linear(cfg.n_rbf, d), nn.SiLU(), nn.Linear(d, d))
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d, cfg.heads, 2 * d, cfg.dropout, batch_first=True, norm_first=True
            )
            for _ in range(cfg.layers)
        )
        self.pool_norm = nn.LayerNorm(d)
        self.head = nn.Sequential(
            nn.Linear(d + cfg.n_descriptors, d),
            nn.SiLU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(d, d),
            nn.SiLU(),
            nn.Linear(d, 1),
        )

    def forward(self, batch) -> torch.Tensor:
        vec = edge_vectors(batch.pos, batch.edge_index, batch.edge_shift)  # [E, 3] Å
        n = batch.z.shape[0]
        # per atom: how many neighbours at which distance (sum of Gaussians over its k bonds)
        env = scatter_sum(self.rbf(vec.norm(dim=-1)), batch.edge_index[1], 0, n)
        x = self.embed(batch.z.clamp(max=N_ELEMENTS)) + self.env_in(env)  # [N, d]
        if self.element_features is not None:
            x = x + self.element_features(batch.z)
        if self.atom_in is not None:
            x = x + self.atom_in(batch.atom_fea)
        dense, mask = to_dense_batch(x, batch.batch)  # [B, n_max, d], [B, n_max]
        for layer in self.layers:
            dense = layer(dense, src_key_padding_mask=~mask)
        pooled = (dense * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)  # masked mean
        pooled = self.pool_norm(pooled)
        if self.config.n_descriptors:
            pooled = torch.cat([pooled, batch.desc], -1)
        return self.head(pooled).squeeze(-1)


class LinearBaseline(nn.Module):
    """A fixed linear prediction (standardised target units) that a network corrects: one weight
    per element averaged over the cell's atoms (a linear function of the composition fractions),
    plus weights on the standardised graph-level inputs (`desc`) and a bias. Buffers, not
    parameters: `train.fit_baseline` sets them by ridge regression on the training set before the
    network trains, and a checkpoint stores them with the weights. `forward(batch) -> [B]`."""

    def __init__(self, n_descriptors: int) -> None:
        super().__init__()
        self.register_buffer("element_weight", torch.zeros(N_ELEMENTS + 1))
        self.register_buffer("desc_weight", torch.zeros(n_descriptors))
        self.register_buffer("bias", torch.zeros(1))

    def forward(self, batch) -> torch.Tensor:
        per_atom = self.element_weight[batch.z.clamp(max=N_ELEMENTS)]
        out = scatter_mean(per_atom, batch.batch, 0, batch.num_graphs)
        if self.desc_weight.numel():
            out = out + batch.desc @ self.desc_weight
        return out + self.bias


class Residual(nn.Module):
    """`net` learning what a `LinearBaseline` leaves: `forward(batch) = baseline + net` [B]."""

    def __init__(self, net: nn.Module, baseline: LinearBaseline) -> None:
        super().__init__()
        self.net, self.baseline = net, baseline

    def forward(self, batch) -> torch.Tensor:
        return self.baseline(batch) + self.net(batch)


class Ensemble(nn.Module):
    """The mean of independently trained member networks (same config, different seeds);
    `forward(batch) -> [B]`."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, batch) -> torch.Tensor:
        return torch.stack([m(batch) for m in self.members]).mean(0)
