"""Gradient-based refinement of a candidate against a measured pattern, through DebyeCalculator.

Refined: atom positions, one uniform lattice expansion factor (positions scaled about the centroid),
biso (G(r) only) and optionally qdamp; the scale is the least-squares one at every step.
1. Lattice scan: the expansion factor on a grid (default +-4 %), with biso (and qdamp) fitted on a
   grid for each factor; the F(q) of each factor is computed once, so this costs one Debye sum per
   factor.
2. Adam on Rw^2 + a minimum-distance penalty sum relu(d_min_ij - d_ij)^2, where d_min_ij is
   `guard` x the sum of the two atoms' Slater radii (at most 0.9 x the starting distance of the
   pair); the best state that keeps every pair above its guard is returned.

What the extra parameters absorb: biso widens every peak alike; qdamp damps G(r) as
exp(-(r qdamp)^2 / 2) and so competes with the particle's own size envelope (a finite cluster has no
pairs beyond its diameter). With qdamp unknown (no calibrant), a too-small candidate is partly
rescued by qdamp -> 0 and a too-large one by a large qdamp; refine qdamp only when the header does
not give it, and read a fitted qdamp near 0 as "the particles are larger (or polydisperse)".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.spatial import cKDTree

from invdesign.core import elements
from invdesign.core.structure import Structure
from invdesign.evaluators.forward.evaluator import (
    DEFAULT_FIT_RANGE,
    ForwardEvaluator,
    check_finite,
)
from invdesign.evaluators.metrics.pattern import rw
from invdesign.io.measured import MeasuredPattern

BISO_GRID = np.array([0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.65, 0.8, 1.0, 1.25, 1.5, 2.0])  # Å^2
QDAMP_GRID = np.array([0.0, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08])  # Å^-1


@dataclass
class RefineResult:
    """Outcome of `refine`.

    Attributes:
        structure: the refined particle (positions in Å, same species and order as the input).
        rw_before: Rw of the input with the measured instrument's biso and qdamp.
        rw_after: Rw of `structure` with the fitted parameters.
        scale: least-squares scale of the final fit.
        lattice_scale: uniform expansion factor applied (1 = unchanged).
        biso: Å^2 and qdamp: Å^-1 used in the final fit.
        min_distance: smallest interatomic distance of `structure` in Å.
        steps: gradient steps taken; seconds: wall time.
        history: Rw after the lattice scan and after every gradient step.
    """

    structure: Structure
    rw_before: float
    rw_after: float
    scale: float
    lattice_scale: float
    biso: float
    qdamp: float
    min_distance: float
    steps: int
    seconds: float
    history: list[float] = field(default_factory=list)

    @property
    def params(self) -> dict[str, float]:
        """The fitted parameters as a flat record."""
        return {"scale": self.scale, "lattice_scale": self.lattice_scale, "biso": self.biso,
                "qdamp": self.qdamp}


def refine(structure: Structure, measured: MeasuredPattern | ForwardEvaluator, *,
           fit_range: tuple[float, float] | None = DEFAULT_FIT_RANGE, steps: int = 40,
           lr: float = 0.005, lattice_span: float = 0.04, lattice_points: int = 9,
           positions: bool = True, lattice: bool = True, biso: bool = True,
           qdamp: bool = False, guard: float = 0.8, max_seconds: float | None = None,
           device: str = "cpu", dtype: torch.dtype = torch.float32) -> RefineResult:
    """Refine a particle against a measured pattern (see the module docstring).

    Args:
        structure: finite particle (kind 'particle').
        measured: the pattern, or a `ForwardEvaluator` built on it (reused, so the fit range and
            grid are shared across candidates).
        fit_range: Å (PDF) or Å^-1 (I(q)); ignored when an evaluator is passed.
        steps: Adam steps on positions (and the continuous lattice factor, biso, qdamp).
        lr: Adam learning rate of the position displacements (Å per step); the logarithms of the
            lattice factor, biso and qdamp use 0.1 lr, 3 lr and 3 lr.
        lattice_span, lattice_points: the scan of the expansion factor, 1 +- span.
        positions, lattice, biso, qdamp: which parameters to refine.
        guard: minimum-distance factor on the sum of Slater radii.
        max_seconds: stop the gradient steps after this much wall time.
    """
    start = time.perf_counter()
    check_finite(structure)
    ev = measured if isinstance(measured, ForwardEvaluator) else ForwardEvaluator(
        measured, fit_range=fit_range, device=device, dtype=dtype)
    is_gr = ev.instrument.function == "gr"
    biso = biso and is_gr
    qdamp = qdamp and is_gr
    dtype, device = ev.dtype, ev.device
    symbols = structure.symbols
    centre = structure.positions.mean(axis=0)
    pos0 = torch.as_tensor(structure.positions - centre, dtype=dtype, device=device)

    # 1. lattice scan with biso/qdamp grids (1.0 and the instrument's values are always tried)
    factors = np.linspace(1 - lattice_span, 1 + lattice_span, lattice_points) if lattice \
        else np.array([1.0])
    factors = np.unique(np.round(np.append(factors, 1.0), 9))
    best, before = _scan(ev, symbols, pos0, factors, biso, qdamp)
    history = [best["rw"]]
    alpha, b_val, q_val = best["alpha"], best["biso"], best["qdamp"]

    # 2. gradient steps
    guard_pairs = _guard_pairs(structure, guard, alpha, _reach(steps, lr))
    log_alpha = torch.tensor(np.log(alpha), dtype=dtype, device=device, requires_grad=lattice)
    log_biso = torch.tensor(np.log(max(b_val, 1e-4)), dtype=dtype, device=device,
                            requires_grad=biso)
    log_qdamp = torch.tensor(np.log(max(q_val, 1e-4)), dtype=dtype, device=device,
                             requires_grad=qdamp)
    delta = torch.zeros_like(pos0, requires_grad=positions)
    groups = [{"params": [delta], "lr": lr}] if positions else []
    for param, on, rate in ((log_alpha, lattice, 0.1 * lr), (log_biso, biso, 3 * lr),
                            (log_qdamp, qdamp, 3 * lr)):
        if on:  # learning rates of the logarithms: relative change per step
            groups.append({"params": [param], "lr": rate})
    state = (alpha, b_val, q_val, np.zeros(pos0.shape))
    best_rw = best["rw"]
    taken = 0
    if groups and steps > 0:
        opt = torch.optim.Adam(groups)
        for _ in range(steps):
            if max_seconds is not None and time.perf_counter() - start > max_seconds:
                break
            opt.zero_grad()
            xyz = torch.exp(log_alpha) * (pos0 + delta)  # [n, 3] Å
            calc = ev.calculator([(symbols, xyz)], biso=torch.exp(log_biso) if biso else None,
                                 qdamp=torch.exp(log_qdamp) if qdamp else None)[0]
            value, _ = rw(ev.obs, calc)
            violation = _violation(xyz, *guard_pairs)
            loss = value.pow(2) + 100.0 * violation
            loss.backward()
            taken += 1
            current = value.item()
            history.append(current)
            if violation.item() == 0.0 and current < best_rw:
                best_rw = current
                state = (log_alpha.exp().item() if lattice else alpha,
                         log_biso.exp().item() if biso else b_val,
                         log_qdamp.exp().item() if qdamp else q_val,
                         delta.detach().cpu().numpy().copy())
            opt.step()
    alpha, b_val, q_val, disp = state
    new_pos = alpha * (structure.positions - centre + disp) + centre
    refined = Structure(structure.species, new_pos, None, "particle",
                        {**structure.info, "refined": True})
    with torch.no_grad():
        calc = ev.calculator([refined], biso=b_val if is_gr else None,
                             qdamp=q_val if is_gr else None)[0]
        after, scale = rw(ev.obs, calc)
    return RefineResult(
        structure=refined, rw_before=float(before), rw_after=float(after), scale=float(scale),
        lattice_scale=float(alpha), biso=float(b_val if is_gr else ev.instrument.biso),
        qdamp=float(q_val if is_gr else ev.instrument.qdamp),
        min_distance=_min_distance(refined.positions), steps=taken,
        seconds=time.perf_counter() - start, history=history)


def _scan(ev: ForwardEvaluator, symbols: list[str], pos0: torch.Tensor, factors: np.ndarray,
          fit_biso: bool, fit_qdamp: bool) -> tuple[dict[str, Any], float]:
    """Best (Rw, expansion factor, biso, qdamp) over the grids, without gradients, and the Rw of
    the unchanged structure with the instrument's values."""
    b0, q0 = ev.instrument.biso, ev.instrument.qdamp
    bisos = np.unique(np.append(BISO_GRID, b0)) if fit_biso else np.array([b0])
    qdamps = np.unique(np.append(QDAMP_GRID, q0)) if fit_qdamp else np.array([q0])
    b_grid, q_grid = (a.reshape(-1) for a in np.meshgrid(bisos, qdamps, indexing="ij"))
    start = int(np.nonzero((b_grid == b0) & (q_grid == q0))[0][0])
    best: dict[str, Any] = {"rw": np.inf}
    before = np.inf
    with torch.no_grad():
        for alpha in factors:
            raw = ev.calculator.raw([(symbols, pos0 * float(alpha))])  # [1, nq] or [1, n]
            if ev.instrument.function == "gr":
                calc = ev.calculator.transform(raw.expand(len(b_grid), -1),
                                               biso=torch.as_tensor(b_grid),
                                               qdamp=torch.as_tensor(q_grid))
            else:
                calc = raw
            values, _ = rw(ev.obs, calc)
            if alpha == 1.0:
                before = float(values[start])
            i = int(torch.argmin(values))
            if float(values[i]) < best["rw"]:
                best = {"rw": float(values[i]), "alpha": float(alpha),
                        "biso": float(b_grid[i] if len(b_grid) > i else ev.instrument.biso),
                        "qdamp": float(q_grid[i] if len(q_grid) > i else ev.instrument.qdamp)}
    return best, before


def _reach(steps: int, lr: float, cutoff: float = 5.0) -> float:
    """Å by which two atoms can at most approach each other in `steps` Adam steps: an Adam step
    moves a coordinate by at most ~3.2 lr (beta1 0.9, beta2 0.999), so a pair closes by at most
    2 sqrt(3) 3.2 lr per step, plus the lattice factor's 0.32 lr (relative) of a pair `cutoff` Å
    apart; with 0.5 Å to spare."""
    return steps * (2 * np.sqrt(3.0) * 3.2 * lr + 0.32 * lr * cutoff) + 0.5


def _guard_pairs(structure: Structure, guard: float, alpha: float, reach: float
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The pairs the guard watches and their minimum allowed distances in Å: every pair closer
    (after the lattice factor `alpha`) than its limit plus `reach`, the most two atoms can approach
    each other during the gradient steps. Found with a k-d tree, so a 4000-atom particle costs
    milliseconds; farther pairs cannot reach their limit.

    Returns:
        pairs: [m, 2] long atom indices (i < j); limits: [m] Å, `guard` x the sum of the two Slater
        radii, at most 0.9 x the pair's starting distance.
    """

    radii = np.nan_to_num(np.asarray(elements.atomic_radius(structure.species), dtype=float),
                          nan=1.0).reshape(-1)
    pos = alpha * structure.positions
    if structure.n_atoms < 2:
        return torch.zeros((0, 2), dtype=torch.long), torch.zeros(0, dtype=torch.float64)
    cutoff = guard * 2 * float(radii.max()) + reach
    pairs = cKDTree(pos).query_pairs(cutoff, output_type="ndarray").reshape(-1, 2)
    i, j = pairs[:, 0], pairs[:, 1]
    start = np.linalg.norm(pos[i] - pos[j], axis=1)
    limits = np.minimum(guard * (radii[i] + radii[j]), 0.9 * start)
    return torch.as_tensor(pairs, dtype=torch.long), torch.as_tensor(limits)


def _violation(xyz: torch.Tensor, pairs: torch.Tensor, limits: torch.Tensor) -> torch.Tensor:
    """sum over the watched pairs of relu(limit - d)^2 (Å^2)."""
    d = (xyz[pairs[:, 0]] - xyz[pairs[:, 1]]).norm(dim=1)  # [m]
    return torch.relu(limits.to(xyz) - d).pow(2).sum()


def _min_distance(positions: np.ndarray) -> float:
    """Smallest interatomic distance in Å of a particle (inf for one atom), via a k-d tree."""

    if len(positions) < 2:
        return float("inf")
    return float(cKDTree(positions).query(positions, k=2)[0][:, 1].min())
