"""Particle excess energy: a discrete particle's energy per atom above its bulk, from local
environments.

Definition (eV/atom), the label of `tools/make_excess_labels.py`:

    particle_excess_energy_per_atom = E_f(particle) - E_f(bulk cell of the same material)

both the CHGNet formation-energy recipe of `reference.py` (E/n - sum_i x_i mu_i, single points, the
particle in its vacuum box). For a stoichiometric cut this is E(particle)/N - E(bulk)/n_bulk;
forming E_f on both sides keeps off-stoichiometric cuts meaningful.

Model (`ExcessNet`): per-atom descriptors of the local environment (`excess_features.py`: Gaussian
neighbour counts in distance and in distance over the pair's radius sum, split by electronegativity
difference; surface vectors; the first shell's mean of those; the element's descriptors), taken from
a sparse neighbour list (`neighbour_pairs`: scipy's k-d tree, all pairs within `cutoff` Å; no dense
n x n matrix), go through an MLP with a learned per-element offset to a per-atom contribution c_i
(eV); the prediction is their mean. With `species` > 0 each atom also sees which elements its
neighbours are: per-neighbour-element Gaussian counts in the reduced distance (`species_shells`)
contracted with a learned element embedding and added to the first hidden layer (a one-layer
SchNet-like interaction, still linear in atoms). Optional: a particle-relative feature block
(`relative`, computable from the particle alone) and an ensemble of `members` MLPs averaged per
atom. Cost is linear in atoms. Training fits the mean to the label
and c_i to CHGNet's own per-site decomposition (site_i - mu_i - E_f(bulk), which averages exactly
to the label), so an atom in a bulk-like environment contributes its share of the bulk (~0 on
average).

Checkpoint folder (`checkpoints/particle-excess/`): `model.safetensors` (weights), `config.json`
(network hyper-parameters, training elements, metrics; checked before any weight is allocated),
`MODEL_CARD.md`. Made by `tools/make_excess_checkpoint.py`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import invdesign
from invdesign.core import elements
from invdesign.core.errors import CheckpointError, InvdesignError
from invdesign.core.schema import check_fields, count_parameters_meta, signature_hints
from invdesign.core.structure import Structure
from invdesign.evaluators.base import Evaluator, register_evaluator
from invdesign.evaluators.property.excess_features import (
    MAX_Z,
    SHELL_CENTRES,
    atom_features,
    n_features,
    species_shells,
)
from invdesign.io.atomic import atomic_path, atomic_write_text

DEFAULT_EXCESS_CHECKPOINT = "particle-excess"
CHECKPOINTS = Path(invdesign.__file__).resolve().parents[1] / "checkpoints"
WEIGHTS, CONFIG = "model.safetensors", "config.json"
FORMAT = "invdesign-particle-excess/1"
MAX_PARAMETERS = 5_000_000
KEY = "particle_excess_energy_per_atom"


class _Member(nn.Module):
    """One MLP of the ensemble: standardised features -> hidden layers -> c_i, plus a learned
    per-element offset of the first hidden layer (zero-initialised) and, with `species` > 0, the
    neighbour-species shells contracted with a learned `species`-wide element embedding."""

    def __init__(self, width: int, hidden: int, layers: int, embed: bool, species: int = 0
                 ) -> None:
        super().__init__()
        self.use_embed = embed
        self.embed = nn.Embedding(MAX_Z + 1, hidden)
        nn.init.zeros_(self.embed.weight)
        self.first = nn.Linear(width, hidden)
        self.species = int(species)
        if self.species:
            self.neighbour = nn.Embedding(MAX_Z + 1, self.species, padding_idx=0)
            self.shell_first = nn.Linear(SHELL_CENTRES.size * self.species, hidden, bias=False)
        blocks: list[nn.Module] = []
        for _ in range(layers - 1):
            blocks += [nn.SiLU(), nn.Linear(hidden, hidden)]
        self.body = nn.Sequential(*blocks, nn.SiLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, z: torch.Tensor, shells: torch.Tensor | None = None,
                shell_z: torch.Tensor | None = None) -> torch.Tensor:
        h = self.first(x) + self.embed(z) if self.use_embed else self.first(x)
        if self.species:
            if shells is None or shell_z is None:
                raise ValueError("this network needs the neighbour-species shells")
            mixed = torch.einsum("nrk,nkd->nrd", shells, self.neighbour(shell_z))
            h = h + self.shell_first(mixed.reshape(mixed.shape[0], -1))
        return self.body(h).squeeze(1)


class ExcessNet(nn.Module):
    """Per-atom contributions c_i (eV) from `atom_features`: standardised features -> the mean of
    `members` independently trained MLPs (an ensemble), each with a learned per-element offset of
    its first hidden layer (zero for elements never trained on).

    Args:
        hidden: width of the hidden layers.
        layers: hidden layers.
        cutoff: neighbour radius of the features in Å.
        embed: add the learned per-element offset (else element descriptors only).
        relative: use the particle-relative feature block (`atom_features(relative=True)`).
        members: ensemble size.
        species: width of the neighbour-element embedding that the neighbour-species shells
            (`species_shells`) are contracted with (0: no shells).
    """

    def __init__(self, hidden: int = 96, layers: int = 2, cutoff: float = 5.5,
                 embed: bool = True, relative: bool = False, members: int = 1,
                 species: int = 0) -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        self.relative = bool(relative)
        self.species = int(species)
        width = n_features(self.relative)
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("std", torch.ones(width))
        self.members = nn.ModuleList(_Member(width, hidden, layers, bool(embed), self.species)
                                     for _ in range(max(int(members), 1)))

    def forward(self, features: torch.Tensor, z: torch.Tensor, shells: torch.Tensor | None = None,
                shell_z: torch.Tensor | None = None) -> torch.Tensor:
        x = (features - self.mean) / self.std
        out = self.members[0](x, z, shells, shell_z)
        for member in self.members[1:]:
            out = out + member(x, z, shells, shell_z)
        return out / len(self.members)


@dataclass
class ParticleInput:
    """Model input of one particle: features [n, F] float32 and species [n]; for networks with
    `species` > 0 also the neighbour-species shells [n, R, k] float32 and their elements [k]."""

    features: np.ndarray
    species: np.ndarray
    shells: np.ndarray | None = None
    shell_species: np.ndarray | None = None

    @property
    def n_atoms(self) -> int:
        return int(self.species.shape[0])


def particle_input(structure: Structure, cutoff: float = 5.5, relative: bool = False,
                   species: bool = False) -> ParticleInput:
    """Features and species of a particle (positions in Å); with `species`, the neighbour-species
    shells too."""
    shells = species_shells(structure, cutoff) if species else (None, None)
    return ParticleInput(atom_features(structure, cutoff, relative),
                         structure.species.astype(np.int64), *shells)


def bulk_input(cell: Structure, cutoff: float = 5.5, relative: bool = False,
               species: bool = False) -> ParticleInput:
    """Features of a unit cell's atoms in their bulk environment: the cell's atoms at the centre of
    a supercell large enough that everything the features see (cutoff plus the first shell of the
    second-order terms) is bulk. Training uses it as a particle of excess 0 (its exact
    stoichiometry makes the mean of the per-atom targets zero)."""
    reach = cutoff + 4.0  # the cutoff plus the first shell (s < 1.3) of the second-order terms
    lengths = np.abs(np.linalg.det(cell.cell)) / np.linalg.norm(
        np.cross(cell.cell[[1, 2, 0]], cell.cell[[2, 0, 1]]), axis=1)  # plane spacings, Å
    reps = np.ceil(reach / lengths).astype(int)
    shifts = np.array([(a, b, c) for a in range(-reps[0], reps[0] + 1)
                       for b in range(-reps[1], reps[1] + 1)
                       for c in range(-reps[2], reps[2] + 1)])
    shifts = shifts[np.argsort(np.abs(shifts).sum(1), kind="stable")]  # (0, 0, 0) first
    pos = (cell.positions[None, :, :] + (shifts @ cell.cell)[:, None, :]).reshape(-1, 3)
    supercell = Structure(np.tile(cell.species, len(shifts)), pos)
    feats = atom_features(supercell, cutoff, relative, core=cell.n_atoms)
    shells = species_shells(supercell, cutoff, core=cell.n_atoms) if species else (None, None)
    return ParticleInput(feats, cell.species.astype(np.int64), *shells)


def collate(inputs: Sequence[ParticleInput]) -> tuple[torch.Tensor, ...]:
    """(features [n_total, F], species [n_total], graph index [n_total], shells [n_total, R, k]
    or None, shell elements [n_total, k] or None) of a batch; k is the batch's most elements per
    input, shorter inputs padded with element 0 (embedding fixed at zero) and zero counts."""
    out = (torch.from_numpy(np.concatenate([p.features for p in inputs])),
           torch.from_numpy(np.concatenate([p.species for p in inputs])),
           torch.from_numpy(np.repeat(np.arange(len(inputs)), [p.n_atoms for p in inputs])))
    if inputs[0].shells is None:
        return (*out, None, None)
    k = max(p.shells.shape[2] for p in inputs)
    shells = np.concatenate([np.pad(p.shells, ((0, 0), (0, 0), (0, k - p.shells.shape[2])))
                             for p in inputs])
    shell_z = np.concatenate([np.broadcast_to(np.pad(p.shell_species, (0, k - p.shells.shape[2])),
                                              (p.n_atoms, k)) for p in inputs])
    return (*out, torch.from_numpy(shells), torch.from_numpy(np.ascontiguousarray(shell_z)))


def graph_means(values: torch.Tensor, batch: torch.Tensor, n_graphs: int) -> torch.Tensor:
    """[n_graphs] mean of per-atom `values` over each graph's atoms."""
    total = torch.zeros(n_graphs, dtype=values.dtype).index_add_(0, batch, values)
    count = torch.zeros(n_graphs, dtype=values.dtype).index_add_(0, batch, torch.ones_like(values))
    return total / count


# ----------------------------------------------------------------------------- training
@dataclass
class ExcessTrainConfig:
    """Training options."""

    epochs: int = 300
    lr: float = 2e-3
    batch_size: int = 16
    site_weight: float = 0.3  # weight of the per-atom (CHGNet site) loss next to the mean loss
    weight_decay: float = 1e-5
    seed: int = 0


def fit_excess(train: Sequence[tuple[ParticleInput, float, np.ndarray | None]],
               net_options: dict[str, Any] | None = None,
               cfg: ExcessTrainConfig | None = None,
               log=None) -> tuple[ExcessNet, list[float]]:
    """Train an ExcessNet on (input, label eV/atom, per-atom targets eV or None) triples (bulk
    cells from `bulk_input` enter with label 0 and no per-atom targets).

    Loss per batch: L1 of the particle means against the labels plus `site_weight` x L1 of the
    contributions against the per-atom targets (where given). AdamW with cosine decay; the
    feature scaler is set from the training atoms. Returns the network (eval mode) and the mean
    training loss per epoch.
    """
    cfg = cfg or ExcessTrainConfig()
    options = dict(net_options or {})
    net = ExcessNet(**options)
    every = np.concatenate([p.features for p, _, _ in train])
    net.mean.copy_(torch.from_numpy(every.mean(0)))
    net.std.copy_(torch.from_numpy(np.maximum(every.std(0), 1e-3)))
    # ensemble members are trained one after another from different seeds (seed, seed + 1, ...)
    losses: list[float] = []
    for k, member in enumerate(net.members):
        single = ExcessNet(**{**options, "members": 1})
        single.mean.copy_(net.mean)
        single.std.copy_(net.std)
        member_losses = _fit_one(single, train, dataclasses.replace(cfg, seed=cfg.seed + k), log)
        member.load_state_dict(single.members[0].state_dict())
        losses = member_losses if not losses else [a + b for a, b in zip(losses, member_losses,
                                                                          strict=True)]
    net.eval()
    return net, [v / len(net.members) for v in losses]


def _fit_one(net: ExcessNet, train: Sequence[tuple[ParticleInput, float, np.ndarray | None]],
             cfg: ExcessTrainConfig, log=None) -> list[float]:
    """Train one single-member network in place; mean training loss per epoch."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * math.ceil(len(train) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1), eta_min=cfg.lr / 50)
    losses = []
    for epoch in range(cfg.epochs):
        net.train()
        order = rng.permutation(len(train))
        total = 0.0
        for start in range(0, len(order), cfg.batch_size):
            items = [train[k] for k in order[start:start + cfg.batch_size]]
            feats, z, batch, shells, shell_z = collate([p for p, _, _ in items])
            y = torch.tensor([label for _, label, _ in items], dtype=torch.float32)
            c = net(feats, z, shells, shell_z)
            loss = (graph_means(c, batch, len(items)) - y).abs().mean()
            if cfg.site_weight > 0 and any(t is not None for _, _, t in items):
                target = torch.from_numpy(np.concatenate(
                    [np.full(p.n_atoms, np.nan) if t is None else t for p, _, t in items]
                ).astype(np.float32))
                known = torch.isfinite(target)
                loss = loss + cfg.site_weight * (c[known] - target[known]).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(items)
        losses.append(total / len(train))
        if log is not None and (epoch % 25 == 0 or epoch == cfg.epochs - 1):
            log(f"epoch {epoch} loss {losses[-1]:.4f}")
    return losses


@torch.no_grad()
def predict_inputs(net: ExcessNet, inputs: Sequence[ParticleInput]) -> np.ndarray:
    """[n] mean contribution (eV/atom) of each particle."""
    out = np.full(len(inputs), np.nan)
    for k, p in enumerate(inputs):
        feats, z, _, shells, shell_z = collate([p])
        out[k] = float(net(feats, z, shells, shell_z).double().mean())
    return out


# ----------------------------------------------------------------------------- checkpoint
def save_excess_checkpoint(folder: str | os.PathLike, net: ExcessNet, net_options: dict,
                           extra: dict | None = None) -> Path:
    """Write model.safetensors + config.json (net options, `extra` such as elements and metrics)."""
    from safetensors.torch import save_file  # noqa: PLC0415 - lazy, as the property checkpoints

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    with atomic_path(folder / WEIGHTS) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
    config = {"format": FORMAT, "net": net_options, **(extra or {})}
    atomic_write_text(folder / CONFIG, json.dumps(config, indent=1))
    return folder


def load_excess_checkpoint(folder: str | os.PathLike, device: str = "cpu"
                           ) -> tuple[ExcessNet, dict[str, Any]]:
    """(network in eval mode, config) from a checkpoint folder; CheckpointError naming the folder or
    file when it is missing, edited out of shape, or would build an oversized network."""
    from safetensors import SafetensorError  # noqa: PLC0415
    from safetensors.torch import load_file  # noqa: PLC0415

    folder = Path(folder)
    weights, config_file = folder / WEIGHTS, folder / CONFIG
    if not weights.is_file() or not config_file.is_file():
        raise CheckpointError(
            f"no particle excess-energy checkpoint here (needs {WEIGHTS} and {CONFIG}); make one "
            "with tools/make_excess_checkpoint.py", folder)
    try:
        config = json.loads(config_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read ({type(exc).__name__})", config_file) from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"not a {FORMAT} config", config_file)
    options = check_fields(config.get("net"), signature_hints(ExcessNet.__init__),
                           str(config_file), error=CheckpointError)
    size = count_parameters_meta(lambda: ExcessNet(**options))
    if size is not None and size > MAX_PARAMETERS:
        raise CheckpointError(f"network of {size} parameters exceeds {MAX_PARAMETERS}",
                              config_file)
    net = ExcessNet(**options)
    try:
        state = load_file(str(weights))
        if "first.weight" in state:  # a single-MLP checkpoint from before ensembles
            state = {k if k in ("mean", "std") else f"members.0.{k}": v for k, v in state.items()}
        net.load_state_dict(state)
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise CheckpointError(f"weights do not fit the config ({str(exc).splitlines()[0][:120]})",
                              weights) from None
    return net.to(device).eval(), config


def default_excess_checkpoint() -> Path:
    """checkpoints/particle-excess of the source checkout."""
    return CHECKPOINTS / DEFAULT_EXCESS_CHECKPOINT


# ----------------------------------------------------------------------------- evaluator
@register_evaluator("particle_excess")
class ParticleExcessEvaluator(Evaluator):
    """Predicted particle excess energy (eV/atom) of discrete particles.

    Records: {"particle_excess_energy_per_atom": float (NaN when not predicted),
    "status": "ok" | "no prediction: <reason>"}. Unit cells, empty structures and particles with
    an element outside the checkpoint's training elements get no prediction.
    """

    def __init__(self, checkpoint: str | os.PathLike | None = None, device: str = "cpu") -> None:
        self.checkpoint = Path(checkpoint) if checkpoint else default_excess_checkpoint()
        self.net, self.config = load_excess_checkpoint(self.checkpoint, device)
        self.device = device
        known = self.config.get("elements")
        self.elements = None if known is None else {int(z) for z in known}

    def _problem(self, structure: Structure) -> str | None:
        if structure.is_periodic:
            return "not a discrete particle"
        if structure.n_atoms == 0:
            return "no atoms"
        zs = set(structure.species.tolist())
        bad = sorted(z for z in zs if not 1 <= z <= MAX_Z)
        if not bad and self.elements is not None:
            bad = sorted(zs - self.elements)
        if bad:
            names = ", ".join(elements.symbol(z) if 1 <= z <= 118 else str(z) for z in bad)
            return f"element(s) {names} outside the model's training data"
        return None

    def evaluate(self, structures: Sequence[Structure]) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        todo, inputs = [], []
        for k, structure in enumerate(structures):
            problem = self._problem(structure)
            records.append({KEY: math.nan,
                            "status": f"no prediction: {problem}" if problem else "ok"})
            if not problem:
                todo.append(k)
                inputs.append(particle_input(structure, self.net.cutoff, self.net.relative,
                                             self.net.species > 0))
        if inputs:
            values = predict_inputs(self.net, inputs)
            for k, value in zip(todo, values, strict=True):
                records[k][KEY] = float(value)
        return records


def check_labels_folder(folder: str | os.PathLike) -> Path:
    """The `materials/` folder of a label set; InvdesignError naming it when absent or empty."""
    path = Path(folder) / "materials"
    if not path.is_dir() or not any(path.glob("*.json")):
        raise InvdesignError("no label files (materials/*.json); run tools/make_excess_labels.py",
                             folder)
    return path
