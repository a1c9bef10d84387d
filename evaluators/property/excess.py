"""Particle excess energy: a discrete particle's energy per atom above its bulk, from local
environments.

Definition (eV/atom), the label of `tools/make_excess_labels.py`:

    particle_excess_energy_per_atom = E_f(particle) - E_f(bulk cell of the same material)

both the CHGNet formation-energy recipe of `reference.py` (E/n - sum_i x_i mu_i, single points, the
particle in its vacuum box). For a stoichiometric cut this is E(particle)/N - E(bulk)/n_bulk;
forming E_f on both sides keeps off-stoichiometric cuts meaningful.

Model (`ExcessNet`): per-atom descriptors of the local environment (`atom_features`: Gaussian
neighbour counts in distance and in distance over the pair's radius sum, split by electronegativity
difference; surface vectors; the first shell's mean of those; the element's descriptors), taken from
a sparse neighbour list (`neighbour_pairs`: scipy's k-d tree, all pairs within `cutoff` Å; no dense
n x n matrix), go through an MLP with a learned per-element offset to a per-atom contribution c_i
(eV); the prediction is their mean. Optional: a particle-relative feature block (`relative`,
computable from the particle alone) and an ensemble of `members` MLPs averaged per atom. Cost is
linear in atoms. Training fits the mean to the label
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
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.spatial import cKDTree
from torch import nn

import invdesign
from invdesign.core import elements
from invdesign.core.errors import CheckpointError, InvdesignError
from invdesign.core.schema import check_fields, count_parameters_meta, signature_hints
from invdesign.core.structure import Structure
from invdesign.evaluators.base import Evaluator, register_evaluator
from invdesign.io.atomic import atomic_path, atomic_write_text

DEFAULT_EXCESS_CHECKPOINT = "particle-excess"
CHECKPOINTS = Path(invdesign.__file__).resolve().parents[1] / "checkpoints"
WEIGHTS, CONFIG = "model.safetensors", "config.json"
FORMAT = "invdesign-particle-excess/1"
MAX_Z = 103
MAX_PARAMETERS = 5_000_000
KEY = "particle_excess_energy_per_atom"


# ----------------------------------------------------------------------------- inputs
@cache
def element_descriptors() -> np.ndarray:
    """[MAX_Z + 1, 8] float32 per atomic number (row 0 unused), scaled to O(1): Pauling
    electronegativity / 4, row / 7, group / 18, metallic-else-atomic radius (Å), atomic radius (Å),
    electron affinity / 4 (eV), metal flag, MP elemental reference energy mu / 10 (eV/atom; a
    cohesive-energy scale, which carries the bond strength to materials not trained on). NaN where
    pymatgen/mendeleev/the MP table lack a value."""
    from pymatgen.core import Element  # noqa: PLC0415 - lazy: only the descriptor table needs it

    from invdesign.evaluators.property.reference import elemental_references  # noqa: PLC0415

    mu = elemental_references()
    table = elements._table()  # noqa: SLF001 - the project's element table
    out = np.full((MAX_Z + 1, 8), np.nan, dtype=np.float32)
    for z in range(1, MAX_Z + 1):
        el = Element.from_Z(z)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pymatgen warns for noble gases without an X
            x = float(el.X)
        group = float(el.group) if el.group else np.nan
        out[z] = [
            x / 4.0,
            el.row / 7.0,
            group / 18.0,
            float(elements.metallic_radius(z)) if np.isfinite(elements.metallic_radius(z))
            else np.nan,
            table["atomic_radius"][z - 1] / 100.0,
            table["electron_affinity"][z - 1] / 4.0,
            float(elements.is_metal(z)),
            mu.get(elements.symbol(z), np.nan) / 10.0,
        ]
    return out


def pair_radius(z: np.ndarray) -> np.ndarray:
    """[n] radius per atom (Å) for reduced distances: metallic, else Slater atomic radius."""
    return np.asarray(elements.metallic_radius(np.asarray(z, dtype=int)), dtype=np.float64)


def neighbour_pairs(positions: np.ndarray, cutoff: float) -> tuple[np.ndarray, np.ndarray,
                                                                    np.ndarray]:
    """Directed pairs (i, j, distance Å) with 0 < |r_i - r_j| <= cutoff, both directions, from a
    k-d tree (cost ~ n x neighbours). Sorted by i, then j."""
    positions = np.asarray(positions, dtype=np.float64)
    tree = cKDTree(positions)
    pairs = tree.query_pairs(cutoff, output_type="ndarray")
    if pairs.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    i = np.concatenate([pairs[:, 0], pairs[:, 1]]).astype(np.int64)
    j = np.concatenate([pairs[:, 1], pairs[:, 0]]).astype(np.int64)
    order = np.lexsort((j, i))
    i, j = i[order], j[order]
    d = np.linalg.norm(positions[i] - positions[j], axis=1)
    return i, j, d


# Radial channels: Gaussians of the reduced distance s = d / (r_i + r_j) (shell structure of any
# material on one scale) and of the distance itself (Å), smoothly cut off at `cutoff`.
REDUCED_CENTRES = np.linspace(0.6, 2.0, 15)
REDUCED_WIDTH = 0.1
DISTANCE_CENTRES = np.linspace(1.0, 5.5, 10)
DISTANCE_WIDTH = 0.35
FIRST_SHELL = 1.3  # s below which a neighbour counts as first shell (smooth step, width 0.05)


def _gaussians(x: np.ndarray, centres: np.ndarray, width: float) -> np.ndarray:
    return np.exp(-(((x[:, None] - centres[None, :]) / width) ** 2))


def _sum_by_atom(i: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """[n, k] sums of per-edge `values` [e, k] over each atom's edges (a sparse [n, e] incidence
    matrix times `values`: linear in edges)."""
    incidence = csr_matrix((np.ones(i.size), (i, np.arange(i.size))), shape=(n, i.size))
    return np.asarray(incidence @ values)


def n_features(relative: bool = False) -> int:
    """Width of `atom_features` (with or without the particle-relative block)."""
    own = REDUCED_CENTRES.size + 2 + len(STEINHARDT)
    base = 2 * own + REDUCED_CENTRES.size + DISTANCE_CENTRES.size + element_descriptors().shape[1]
    return base + (N_RELATIVE if relative else 0)


# Particle-relative block: each atom's reduced counts (15) and first-shell coordination (1) minus
# the INTERIOR_QUANTILE of the same column over the particle's atoms of its element (the atom's
# deficit against the particle's own most-coordinated, bulk-like atoms of that element; computable
# from the particle alone); the broken-bond fraction b = 1 - sqrt(CN / CN_interior) (the
# second-moment bond-cutting estimate of a surface atom's energy share) and b x mu / 10 (that share
# on the element's cohesive scale, for materials not trained on); and two particle-level terms:
# n^(-1/3) (a surface-fraction scale, 0 for the bulk) and the particle's mean first-shell deficit.
INTERIOR_QUANTILE = 90.0
N_RELATIVE = REDUCED_CENTRES.size + 1 + 2 + 2


STEINHARDT = (2, 4, 6)  # bond-orientational orders q_l of the first shell


# Legendre polynomials P_l(x) as coefficients of x^0, x^2, x^4, x^6 (even l only)
_LEGENDRE = {2: (-0.5, 1.5, 0.0, 0.0), 4: (3 / 8, -30 / 8, 35 / 8, 0.0),
             6: (-5 / 16, 105 / 16, -315 / 16, 231 / 16)}


@cache
def _monomials(power: int) -> tuple[np.ndarray, np.ndarray]:
    """Exponents [k, 3] (a + b + c = power) and multinomial weights [k] with
    (u . v)^power = sum_k weight_k (u_x v_x)^a (u_y v_y)^b (u_z v_z)^c."""
    exps = np.array([(a, b, power - a - b) for a in range(power + 1)
                     for b in range(power + 1 - a)])
    weights = np.array([math.factorial(power) / math.prod(math.factorial(int(e)) for e in row)
                        for row in exps])
    return exps, weights


def _steinhardt(i: np.ndarray, unit: np.ndarray, w: np.ndarray, n: int) -> np.ndarray:
    """[n, len(STEINHARDT)] bond-orientational orders q_l of the `w`-weighted edges of each atom
    (unit vectors `unit` [e, 3]). By the addition theorem, q_l^2 = 4 pi / (2l + 1) sum_m
    |<Y_lm>|^2 = sum_jk w_j w_k P_l(u_j . u_k) / W^2, and sum_jk w_j w_k (u_j . u_k)^p is a
    weighted sum of squared per-atom monomial moments: linear in edges, no spherical harmonics."""
    keep = w > 1e-3
    i, unit, w = i[keep], unit[keep], w[keep]
    total = np.bincount(i, weights=w, minlength=n)
    # powers 0..6 of each component by repeated products ([e, 7] per axis): fast, exact
    pw = np.ones((3, unit.shape[0], 7))
    for p in range(1, 7):
        pw[:, :, p] = pw[:, :, p - 1] * unit.T
    sums = {0: total**2}
    for power in (2, 4, 6):
        exps, weights = _monomials(power)
        mono = pw[0][:, exps[:, 0]] * pw[1][:, exps[:, 1]] * pw[2][:, exps[:, 2]]
        sums[power] = (_sum_by_atom(i, mono * w[:, None], n) ** 2) @ weights
    out = np.zeros((n, len(STEINHARDT)))
    for k, order in enumerate(STEINHARDT):
        c = _LEGENDRE[order]
        value = c[0] * sums[0] + c[1] * sums[2] + c[2] * sums[4] + c[3] * sums[6]
        out[:, k] = np.sqrt(np.maximum(value, 0.0)) / np.maximum(total, 1e-6)
    return out


def _relative_block(z: np.ndarray, columns: np.ndarray, mu: np.ndarray, n_total: float
                    ) -> np.ndarray:
    """[n, N_RELATIVE]: deficits of `columns` [n, 16] (last: first-shell coordination) against the
    per-element INTERIOR_QUANTILE, the broken-bond fraction b and b x `mu` (eV/atom / 10),
    n_total^(-1/3) (0 for an infinite crystal) and the mean first-shell deficit."""
    ref = np.zeros_like(columns)
    for element in np.unique(z):
        mask = z == element
        ref[mask] = np.percentile(columns[mask], INTERIOR_QUANTILE, axis=0)
    deficit = columns - ref
    broken = 1.0 - np.sqrt(np.clip(columns[:, -1] / np.maximum(ref[:, -1], 1e-6), 0.0, 4.0))
    size = 0.0 if not np.isfinite(n_total) else float(n_total) ** (-1.0 / 3.0)
    glob = np.broadcast_to([size, float(deficit[:, -1].mean())], (len(z), 2))
    return np.concatenate([deficit, broken[:, None], (broken * mu)[:, None], glob], axis=1)


def atom_features(structure: Structure, cutoff: float = 5.5, relative: bool = False,
                  core: int | None = None) -> np.ndarray:
    """[n_atoms, n_features(relative)] float32 descriptors of each atom's local environment.

    Per atom i, over the neighbours j within `cutoff` Å (k-d tree pairs, cosine cutoff f(d)):
    Gaussian counts in the reduced distance s_ij (15), the same weighted by the electronegativity
    difference (X_j - X_i) / 4 (15; tells cation from anion shells), Gaussian counts in d_ij (10),
    the length of the mean unit vector to first-shell neighbours and to all neighbours (2; ~0 in
    the bulk, large at a surface), the first shell's bond-orientational orders q_2, q_4, q_6 (3),
    the first-shell mean of the neighbours' reduced counts, vector lengths and q_l (20; the next
    shell), and i's element descriptors (8). With `relative`, the particle-relative block (20, see
    N_RELATIVE). All invariant to rotation, translation and atom order.

    `core`: return only the first `core` atoms and treat them as an infinite crystal (the
    relative block's reference is taken over them and the size term is 0); `bulk_input` uses it.
    """
    z = structure.species
    n = structure.n_atoms
    pos = structure.positions
    desc = np.nan_to_num(element_descriptors()[z], nan=0.0)
    i, j, d = neighbour_pairs(pos, cutoff)
    r = pair_radius(z)
    s = d / (r[i] + r[j])
    fc = 0.5 * (np.cos(np.pi * d / cutoff) + 1.0)
    g = _gaussians(s, REDUCED_CENTRES, REDUCED_WIDTH) * fc[:, None]
    dx = (desc[j, 0] - desc[i, 0])[:, None]  # electronegativity difference / 4
    gd = _gaussians(d, DISTANCE_CENTRES, DISTANCE_WIDTH) * fc[:, None]
    counts = _sum_by_atom(i, g, n)
    first = 1.0 / (1.0 + np.exp((s - FIRST_SHELL) / 0.05)) * fc
    unit = (pos[j] - pos[i]) / np.maximum(d, 1e-9)[:, None]
    vec = np.zeros((n, 2))
    for k, w in enumerate((first, fc)):
        total = _sum_by_atom(i, unit * w[:, None], n)
        weight = np.bincount(i, weights=w, minlength=n)
        vec[:, k] = np.linalg.norm(total, axis=1) / np.maximum(weight, 1e-6)
    own = np.concatenate([counts, vec, _steinhardt(i, unit, first, n)], axis=1)
    first_weight = np.bincount(i, weights=first, minlength=n)
    second = _sum_by_atom(i, own[j] * first[:, None], n) / np.maximum(first_weight, 1e-6)[:, None]
    feats = np.concatenate([own, _sum_by_atom(i, g * dx, n), _sum_by_atom(i, gd, n), second,
                            desc], axis=1)
    keep = n if core is None else int(core)
    feats = feats[:keep]
    if relative:
        columns = np.concatenate([counts[:keep], first_weight[:keep, None]], axis=1)
        feats = np.concatenate(
            [feats, _relative_block(z[:keep], columns, desc[:keep, 7],
                                    math.inf if core is not None else n)],
            axis=1)
    return feats.astype(np.float32)


class _Member(nn.Module):
    """One MLP of the ensemble: standardised features -> hidden layers -> c_i, plus a learned
    per-element offset of the first hidden layer (zero-initialised)."""

    def __init__(self, width: int, hidden: int, layers: int, embed: bool) -> None:
        super().__init__()
        self.use_embed = embed
        self.embed = nn.Embedding(MAX_Z + 1, hidden)
        nn.init.zeros_(self.embed.weight)
        self.first = nn.Linear(width, hidden)
        blocks: list[nn.Module] = []
        for _ in range(layers - 1):
            blocks += [nn.SiLU(), nn.Linear(hidden, hidden)]
        self.body = nn.Sequential(*blocks, nn.SiLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = self.first(x) + self.embed(z) if self.use_embed else self.first(x)
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
    """

    def __init__(self, hidden: int = 96, layers: int = 2, cutoff: float = 5.5,
                 embed: bool = True, relative: bool = False, members: int = 1) -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        self.relative = bool(relative)
        width = n_features(self.relative)
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("std", torch.ones(width))
        self.members = nn.ModuleList(_Member(width, hidden, layers, bool(embed))
                                     for _ in range(max(int(members), 1)))

    def forward(self, features: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x = (features - self.mean) / self.std
        out = self.members[0](x, z)
        for member in self.members[1:]:
            out = out + member(x, z)
        return out / len(self.members)


@dataclass
class ParticleInput:
    """Model input of one particle: features [n, F] float32 and species [n]."""

    features: np.ndarray
    species: np.ndarray

    @property
    def n_atoms(self) -> int:
        return int(self.species.shape[0])


def particle_input(structure: Structure, cutoff: float = 5.5, relative: bool = False
                   ) -> ParticleInput:
    """Features and species of a particle (positions in Å)."""
    return ParticleInput(atom_features(structure, cutoff, relative),
                         structure.species.astype(np.int64))


def bulk_input(cell: Structure, cutoff: float = 5.5, relative: bool = False) -> ParticleInput:
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
    species = np.tile(cell.species, len(shifts))
    feats = atom_features(Structure(species, pos), cutoff, relative, core=cell.n_atoms)
    return ParticleInput(feats, cell.species.astype(np.int64))


def collate(inputs: Sequence[ParticleInput]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(features [n_total, F], species [n_total], graph index [n_total]) of a batch."""
    return (torch.from_numpy(np.concatenate([p.features for p in inputs])),
            torch.from_numpy(np.concatenate([p.species for p in inputs])),
            torch.from_numpy(np.repeat(np.arange(len(inputs)), [p.n_atoms for p in inputs])))


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
            feats, z, batch = collate([p for p, _, _ in items])
            y = torch.tensor([label for _, label, _ in items], dtype=torch.float32)
            c = net(feats, z)
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
        c = net(torch.from_numpy(p.features), torch.from_numpy(p.species))
        out[k] = float(c.double().mean())
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
                inputs.append(particle_input(structure, self.net.cutoff, self.net.relative))
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
