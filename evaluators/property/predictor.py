"""What builds a property network and predicts with it: `TrainConfig` (stored in a checkpoint),
`build_network`, the hybridisation inputs (`model_inputs`) and the `Predictor` that wraps a trained
network with its scalers (module `train` trains one; module `checkpoint` loads one).

Nothing here imports torch_geometric: prediction builds plain graphs (`graphs.graph_data`) and
batches them with `batching.predict_batches`, which give the networks the tensors PyG's loader
gives, so loading a checkpoint and predicting stays cheap (`invdesign sample`'s energy screening).
Only the CGCNN baseline (`cgcnn`, PyG's `CGConv`) imports it, when built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.evaluators.property.batching import predict_batches
from invdesign.evaluators.property.data import make_graphs
from invdesign.evaluators.property.descriptors import N_DESCRIPTORS, descriptor_matrix
from invdesign.evaluators.property.model import (
    AtomSet,
    AtomSetConfig,
    CrysToGraph,
    CrysToGraphConfig,
    Ensemble,
    LinearBaseline,
    Residual,
)
from invdesign.evaluators.property.potential import (
    N_POTENTIAL,
    atom_potential_width,
    potential_features,
)

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
    # with chgnet_features: the atom features after each of CHGNet's 4 layers, not only the third
    chgnet_all_layers: bool = False
    element_features: bool = True  # CGCNN-style element features beside the learned embedding
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    pretrain_epochs: int = 0  # CDSSL epochs before fine-tuning (0: none)
    dropout: float = 0.0  # crystograph and atomset heads (atomset: its transformer layers too)
    ensemble: int = 1  # independently trained networks whose mean is the prediction
    # depth (`blocks`) of each ensemble member, for ensembles mixing depths; empty: all `blocks`
    ensemble_blocks: tuple[int, ...] = ()
    # the networks learn the residual of a ridge fit to the composition (+ CHGNet's energy)
    baseline: bool = False
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
        self.ensemble_blocks = tuple(int(b) for b in self.ensemble_blocks)
        if self.ensemble_blocks and (
            len(self.ensemble_blocks) != self.ensemble or min(self.ensemble_blocks) < 1
        ):
            raise InvdesignError(
                f"ensemble_blocks needs one depth >= 1 per member ({self.ensemble}), not "
                f"{list(self.ensemble_blocks)}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise InvdesignError(f"dropout must be in [0, 1), not {self.dropout}")
        if self.baseline and self.pretrain_epochs:
            raise InvdesignError("a linear baseline cannot be combined with CDSSL pretraining")
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
    return atom_potential_width(cfg.chgnet_all_layers) * cfg.chgnet_features


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
        features = potential_features(structures, all_layers=cfg.chgnet_all_layers)
        blocks.append(features.graph)
        inputs.atom_fea, inputs.status = features.atoms, features.status
    if blocks:
        inputs.desc = np.concatenate(blocks, axis=1)
    return inputs


def build_network(cfg: TrainConfig) -> torch.nn.Module:
    """The untrained network of `cfg` (an `Ensemble` of cfg.ensemble members when > 1)."""
    if cfg.ensemble > 1:
        return Ensemble([build_member(member_config(cfg, m)) for m in range(cfg.ensemble)])
    return build_member(cfg)


def parse_depths(text: str) -> tuple[int, ...]:
    """A command line's ensemble depths: "2,3,2" -> (2, 3, 2) (`TrainConfig.ensemble_blocks`);
    ValueError when a part is not an integer (argparse reports it as an invalid value)."""
    return tuple(int(part) for part in text.split(","))


def member_config(cfg: TrainConfig, m: int) -> TrainConfig:
    """The config of ensemble member m: `cfg` with that member's depth (cfg.ensemble_blocks)."""
    if not cfg.ensemble_blocks:
        return cfg
    return replace(cfg, blocks=cfg.ensemble_blocks[m], ensemble=1, ensemble_blocks=())


def build_member(cfg: TrainConfig) -> torch.nn.Module:
    """One network of `cfg` (ignores cfg.ensemble); with cfg.baseline, wrapped in a `Residual`
    whose `LinearBaseline` is still zero (`train.fit` sets it, a checkpoint stores it)."""
    if cfg.baseline:
        return Residual(_build_core(cfg), LinearBaseline(n_descriptor_inputs(cfg)))
    return _build_core(cfg)


def _build_core(cfg: TrainConfig) -> torch.nn.Module:
    # the inputs every architecture shares; each adds its own depth and attention settings
    common = {
        "hidden": cfg.hidden,
        "n_descriptors": n_descriptor_inputs(cfg),
        "n_atom_features": n_atom_inputs(cfg),
        "element_features": cfg.element_features,
    }
    if cfg.model == "atomset":
        return AtomSet(
            AtomSetConfig(**common, heads=cfg.heads, layers=cfg.blocks, dropout=cfg.dropout)
        )
    if cfg.model == "cgcnn":
        # lazy: the CGCNN baseline's convolution comes from torch_geometric
        from invdesign.evaluators.property.cgcnn import CGCNN, CGCNNConfig  # noqa: PLC0415

        return CGCNN(CGCNNConfig(**common, layers=max(cfg.blocks, 3)))
    return CrysToGraph(
        CrysToGraphConfig(**common, heads=cfg.heads, blocks=cfg.blocks, dropout=cfg.dropout)
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
            self.net(self._prepare(b)).cpu().numpy()
            for b in predict_batches(self.cfg.model, graphs, batch_size)
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
        graphs = make_graphs(
            structures, None, desc, self.cfg.k, self.cfg.line_k, atom_fea, plain=True
        )
        values = self.predict_graphs(graphs)
        values[~usable] = np.nan
        return values
