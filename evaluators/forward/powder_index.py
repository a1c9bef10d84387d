"""Lattice of a candidate from the measured peak positions alone (indexing within a crystal system).

A candidate's lattice is scaled from radii and may be 10-30 % off along single axes, and its
atomic coordinates may fit the measured intensities no better than the background; a whole-pattern
screen with the candidate's intensities then misses its cell. Indexing programs (ITO, TREOR,
DICVOL) find a cell from peak positions only; this module does the same within the candidate's
crystal system and space group, searching near the candidate's own cell:

1. `observed_peaks`: the first `N_LINES` peaks of the pattern (local maxima of a smoothed,
   background-subtracted profile above a prominence threshold; a Kα2 shoulder of a stronger peak
   dropped), as Q² = 1/d² (Å^-2).
2. `allowed`: the hkl the space group does not extinguish (structure factor of atoms on two random
   general positions, so accidental absences of the candidate's coordinates do not count).
3. 1/d² is linear in the reciprocal metric tensor G*, and a crystal system's G* form a linear
   subspace, so `index_cell` scans the lattice lengths (and a monoclinic angle) on a coarse grid
   within `SPAN` of the candidate's cell, scoring the low-angle lines, then refines the best grid
   points by assigning each line its nearest allowed reflection and solving linear least squares
   for G* in that subspace (a few rounds).
4. The figure of merit is de Wolff's M(N) = Q²_N / (2 ε N_calc): ε the mean |ΔQ²| of the N lines,
   N_calc the allowed reflections up to the N-th line; lines beyond `TOLERANCE` count as unindexed
   and add `TOLERANCE` to ε. Larger is better; 10 or more is taken as a plausible cell by
   indexing programs.

Triclinic cells are not searched (six parameters, and any pattern indexes in P1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
from scipy.ndimage import gaussian_filter1d, minimum_filter1d
from scipy.signal import find_peaks

from invdesign.evaluators.forward.powder_pattern import Reflections

#: Lines used (de Wolff's M20) and the low-angle lines scored on the coarse grid.
N_LINES = 20
N_COARSE = 10
#: Relative range of each lattice length searched around the candidate's cell.
SPAN = 0.3
#: Relative grid step of the lengths (coarse scan) and step of a monoclinic angle (deg).
GRID_STEP = 0.02
ANGLE_SPAN, ANGLE_STEP = 8.0, 2.0
#: A line is indexed when its 2θ is within this (deg; at least two data steps) of a reflection.
TOL_TWO_THETA = 0.03
MAX_ZERO = math.radians(0.3)  # bound of the zero shift (rad of 2θ)
#: Peaks kept: prominence above this fraction of the strongest peak's.
PROMINENCE = 0.02
NOISE = 8.0  # σ of the smoothed profile; maxima of pure noise reach about 6
SMOOTH = 1.5  # points, the Gaussian smoothing before peak search
GRID_KEEP = 40  # coarse grid points refined
ROUNDS = 6
DENSITY_WINDOW = 0.05
CHUNK = 20000  # grid points scored at once


@dataclass(frozen=True)
class Lines:
    """Observed lines: Q² = 1/d² (Å^-2) [n], increasing; `slope` dQ²/d(2θ) per rad of 2θ (for a
    zero shift); `tolerance` the |ΔQ²| within which a line counts as indexed (`TOL_TWO_THETA`)."""

    q2: np.ndarray
    slope: np.ndarray
    tolerance: np.ndarray

    @property
    def size(self) -> int:
        return int(self.q2.size)

    def head(self, n: int) -> Lines:
        return Lines(self.q2[:n], self.slope[:n], self.tolerance[:n])


@dataclass(frozen=True)
class IndexResult:
    """The indexed cell of a candidate: lattice [6] (Å, deg), de Wolff's M(N), lines indexed of
    the lines used, zero shift (deg of 2θ)."""

    lattice: np.ndarray
    figure_of_merit: float
    indexed: int
    lines: int
    zero: float
    significance: float

    def key(self) -> tuple[float, float]:
        """Sort key, best first: the more significant, then the larger figure of merit."""
        return (-self.significance, -self.figure_of_merit)


def observed_peaks(two_theta: np.ndarray, y: np.ndarray, weight: np.ndarray,
                   wavelengths: tuple[float, ...], n_lines: int = N_LINES) -> Lines:
    """Q² (Å^-2) of the first `n_lines` peaks of a pattern on an increasing 2θ axis (deg) with
    weights 1/σ² (a peak must rise `NOISE` σ above the background)."""
    step = float(np.median(np.diff(two_theta)))
    smooth = gaussian_filter1d(np.asarray(y, float), SMOOTH)
    window = max(int(round(2.0 / max(step, 1e-6))), 5)  # 2 deg rolling minimum as background
    base = gaussian_filter1d(minimum_filter1d(smooth, window, mode="nearest"), window / 2)
    signal = smooth - base
    peaks, props = find_peaks(signal, prominence=0.0)
    if peaks.size == 0:
        return Lines(np.zeros(0), np.zeros(0), np.zeros(0))
    prom = props["prominences"]
    noise = NOISE * _sigma(np.asarray(y, float), np.asarray(weight, float))[peaks] / math.sqrt(
        2 * math.sqrt(math.pi) * SMOOTH)  # of the smoothed profile
    keep = (prom >= PROMINENCE * prom.max()) & (prom >= noise)
    peaks, prom = peaks[keep], prom[keep]
    inner = np.clip(peaks, 1, signal.size - 2)
    left, mid, right = signal[inner - 1], signal[inner], signal[inner + 1]
    curvature = left - 2 * mid + right
    shift = np.where(curvature < 0, 0.5 * (left - right) / np.where(curvature < 0, curvature, -1),
                     0.0)  # the vertex of the parabola through the top three points
    tth = np.interp(inner + np.clip(shift, -0.5, 0.5), np.arange(two_theta.size), two_theta)
    if len(wavelengths) > 1:  # drop a Kα2 shoulder of a stronger Kα1 line
        ratio = wavelengths[1] / wavelengths[0]
        partner = np.degrees(2 * np.arcsin(np.clip(ratio * np.sin(np.radians(tth / 2)), 0, 1)))
        shoulder = np.zeros(tth.size, bool)
        for i in range(tth.size):
            near = np.abs(tth - partner[i]) < max(3 * step, 0.02)
            near[i] = False
            shoulder |= near & (prom < prom[i])
        tth = tth[~shoulder]
    tth = np.sort(tth)[:n_lines]
    theta = np.radians(tth / 2)
    q2 = (2 * np.sin(theta) / wavelengths[0]) ** 2
    slope = q2 / np.tan(theta)  # dQ²/d(2θ), 2θ in rad
    tolerance = slope * math.radians(max(TOL_TWO_THETA, 2 * step))
    return Lines(q2, slope, tolerance)


def _sigma(y: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """[n] standard uncertainty of each point: 1/sqrt(weight) when the weights say something
    (uncertainties or counts), else (uniform weights) the noise of the data themselves, from the
    median absolute second difference (of white noise: 1.4826 x MAD / sqrt(6))."""
    if np.ptp(weight) > 0 or weight[0] != 1.0:
        return 1.0 / np.sqrt(np.maximum(weight, 1e-300))
    second = np.diff(y, 2)
    mad = float(np.median(np.abs(second - np.median(second))))
    return np.full(y.shape, 1.4826 * mad / math.sqrt(6.0))


def allowed(refl: Reflections, seed: int = 0) -> np.ndarray:
    """[m] bool: the representatives not extinguished by the space group of `refl.cell`."""
    try:
        ops = SpacegroupAnalyzer(refl.cell, symprec=0.01).get_symmetry_operations(
            cartesian=False)
    except (TypeError, ValueError):
        return np.ones(len(refl.hkl), bool)
    rng = np.random.default_rng(seed)
    power = np.zeros(len(refl.hkl))
    for _ in range(2):
        x = rng.random(3)
        orbit = np.array([op.operate(x) for op in ops])  # [n_ops, 3]
        phase = 2 * np.pi * refl.hkl @ orbit.T
        power = np.maximum(power, np.abs(np.exp(1j * phase).sum(axis=1)) ** 2 / len(ops) ** 2)
    return power > 1e-6


def _monomials(hkl: np.ndarray) -> np.ndarray:
    """[m, 6] h², k², l², 2hk, 2hl, 2kl: 1/d² is their dot product with (G*11, G*22, G*33,
    G*12, G*13, G*23)."""
    h, k, l = (hkl[:, i].astype(float) for i in range(3))  # noqa: E741
    return np.stack([h * h, k * k, l * l, 2 * h * k, 2 * h * l, 2 * k * l], axis=1)


def _gstar(lattice: np.ndarray) -> np.ndarray:
    """[..., 6] reciprocal metric components of [..., 6] lattices (a, b, c Å, angles deg)."""
    lattice = np.asarray(lattice, float)
    a, b, c = lattice[..., 0], lattice[..., 1], lattice[..., 2]
    ca, cb, cg = (np.cos(np.radians(lattice[..., i])) for i in (3, 4, 5))
    metric = np.stack([np.stack([a * a, a * b * cg, a * c * cb], -1),
                       np.stack([a * b * cg, b * b, b * c * ca], -1),
                       np.stack([a * c * cb, b * c * ca, c * c], -1)], -2)
    g = np.linalg.inv(metric)
    return np.stack([g[..., 0, 0], g[..., 1, 1], g[..., 2, 2], g[..., 0, 1], g[..., 0, 2],
                     g[..., 1, 2]], -1)


def _lattice(gstar: np.ndarray) -> np.ndarray | None:
    """[6] lattice of reciprocal metric components (None when not positive definite)."""
    g = np.array([[gstar[0], gstar[3], gstar[4]], [gstar[3], gstar[1], gstar[5]],
                  [gstar[4], gstar[5], gstar[2]]])
    if np.any(np.linalg.eigvalsh(g) <= 0):
        return None
    metric = np.linalg.inv(g)
    abc = np.sqrt(np.diag(metric))
    cosines = [metric[1, 2] / (abc[1] * abc[2]), metric[0, 2] / (abc[0] * abc[2]),
               metric[0, 1] / (abc[0] * abc[1])]
    return np.concatenate([abc, np.degrees(np.arccos(np.clip(cosines, -1, 1)))])


def _grid(refl: Reflections) -> np.ndarray:
    """[n_grid, 6] G* of the coarse scan around the candidate's lattice."""
    lattice0 = refl.lattice
    free0 = refl.free_values(lattice0)
    axes = []
    for name, value in zip(refl.free, free0, strict=True):
        if name in ("a", "b", "c"):
            axes.append(value * np.exp(np.arange(math.log(1 - SPAN), math.log(1 + SPAN) + 1e-9,
                                                 GRID_STEP)))
        else:
            axes.append(value + np.arange(-ANGLE_SPAN, ANGLE_SPAN + 1e-9, ANGLE_STEP))
    mesh = np.meshgrid(*axes, indexing="ij")
    lattices = np.tile(lattice0, (mesh[0].size, 1))
    ties = {"a": [0] + [i for i, name in ((1, "b"), (2, "c")) if name not in refl.free],
            "b": [1], "c": [2], "alpha": [3], "beta": [4], "gamma": [5],
            "angle": [refl.angle_index]}
    for name, values in zip(refl.free, mesh, strict=True):
        for column in ties[name]:
            lattices[:, column] = values.ravel()
    return _gstar(lattices)


def _subspace(refl: Reflections) -> np.ndarray:
    """[6, k] orthonormal basis of the G* the crystal system allows (the tangent space of G* over
    the free lattice parameters, which is the whole linear subspace)."""
    free0 = refl.free_values(refl.lattice)
    columns = []
    for j in range(free0.size):
        step = np.zeros_like(free0)
        step[j] = 1e-4 * max(abs(free0[j]), 1.0)
        columns.append((_gstar(refl.full_lattice(free0 + step))
                        - _gstar(refl.full_lattice(free0 - step))) / (2 * step[j]))
    q, _ = np.linalg.qr(np.array(columns).T)
    return q


def _coarse_scores(calc: np.ndarray, obs: np.ndarray, tolerance: float) -> np.ndarray:
    """[n_grid] truncated squared misfit of the observed lines to their nearest reflections
    (calc [n_grid, m] Q², obs [n] Q²)."""
    calc = np.sort(calc, axis=1)
    score = np.zeros(calc.shape[0])
    for q2 in obs:
        j = np.clip((calc < q2).sum(axis=1), 1, calc.shape[1] - 1)
        rows = np.arange(calc.shape[0])
        near = np.minimum(np.abs(calc[rows, j] - q2), np.abs(calc[rows, j - 1] - q2))
        score += np.minimum((near / (tolerance * q2)) ** 2, 1.0)
    return score


def figure_of_merit(calc: np.ndarray, lines: Lines, zero: float = 0.0,
                    ) -> tuple[float, int, float]:
    """For calculated Q² [m] and the observed lines (their Q² corrected by a zero shift, rad of
    2θ): de Wolff's M(N), the lines indexed (within their tolerance) and the significance
    -log10 P(chance indexes as many), P the tail of the Poisson-binomial count of lines that fall
    within tolerance of a reflection by chance, each with the local density of reflections
    (within `DENSITY_WINDOW` of the line, relative)."""
    obs = lines.q2 - zero * lines.slope
    calc = np.sort(calc)
    near = np.abs(calc[None, :] - obs[:, None]).min(axis=1)
    indexed = near <= lines.tolerance
    eps = float(np.mean(np.where(indexed, near, lines.tolerance)))
    n_calc = max(int(np.sum(calc <= obs[-1] + lines.tolerance[-1])), 1)
    fom = float(obs[-1] / (2 * max(eps, 1e-12) * n_calc))
    half = DENSITY_WINDOW * obs
    density = (np.searchsorted(calc, obs + half) - np.searchsorted(calc, obs - half)) / (2 * half)
    chance = 1.0 - np.exp(-2.0 * lines.tolerance * np.maximum(density, 0.5 / (2 * half)))
    k = int(indexed.sum())
    return fom, k, _tail_log10(chance, k)


def _tail_log10(p: np.ndarray, k: int) -> float:
    """-log10 P(X >= k) for X the number of successes of independent trials with chances p."""
    dist = np.zeros(p.size + 1)
    dist[0] = 1.0
    for pi in p:
        dist[1:] = dist[1:] * (1 - pi) + dist[:-1] * pi
        dist[0] *= 1 - pi
    return float(-np.log10(max(dist[k:].sum(), 1e-300)))


def _refine(gstar: np.ndarray, monomials: np.ndarray, basis: np.ndarray, lines: Lines,
            ) -> tuple[np.ndarray, float]:
    """(G*, zero shift in rad of 2θ) after rounds of nearest-reflection assignment and linear
    least squares in the subspace with a zero shift; the window for a line to take part shrinks
    to its tolerance."""
    g0, obs, slope = gstar.copy(), lines.q2, lines.slope
    zero = 0.0
    for rnd in range(ROUNDS):
        corrected = obs - zero * slope
        calc = monomials @ gstar
        j = np.abs(calc[None, :] - corrected[:, None]).argmin(axis=1)
        window = np.maximum(lines.tolerance, 0.03 / 2 ** rnd * obs)
        use = np.abs(calc[j] - corrected) <= window
        if use.sum() < basis.shape[1] + 2:
            break
        design = np.column_stack([monomials[j[use]] @ basis, slope[use]]) / obs[use, None]
        target = (obs[use] - monomials[j[use]] @ g0) / obs[use]
        coef, *_ = np.linalg.lstsq(design, target, rcond=None)
        zero = float(np.clip(coef[-1], -MAX_ZERO, MAX_ZERO))
        gstar = g0 + basis @ coef[:-1]
    return gstar, zero


def index_cell(refl: Reflections, lines: Lines) -> IndexResult | None:
    """The best cell for `obs` (Q² of the observed lines, increasing) within the crystal system
    and space group of `refl` and within `SPAN` of its lattice; None for triclinic cells, too few
    lines, or no positive-definite solution."""
    if refl.system == "triclinic" or lines.size < max(len(refl.free) + 3, 5):
        return None
    monomials = _monomials(refl.hkl[allowed(refl)])
    q2 = monomials @ _gstar(refl.lattice)
    reach = 1.05 / (1 - SPAN) ** 2  # the largest Q² growth within the search
    monomials = monomials[q2 <= lines.q2[-1] * reach]
    coarse_obs = lines.q2[:N_COARSE]
    low = monomials[monomials @ _gstar(refl.lattice) <= coarse_obs[-1] * reach]
    if low.shape[0] == 0:
        return None
    grid = _grid(refl)
    scores = np.concatenate([
        _coarse_scores(grid[i:i + CHUNK] @ low.T, coarse_obs, GRID_STEP * 2)
        for i in range(0, grid.shape[0], CHUNK)])
    basis = _subspace(refl)
    best: IndexResult | None = None
    for i in np.argsort(scores, kind="stable")[:GRID_KEEP]:
        gstar, zero = _refine(grid[i], monomials, basis, lines)
        lattice = _lattice(gstar)
        if lattice is None:
            continue
        fom, indexed, significance = figure_of_merit(monomials @ gstar, lines, zero)
        result = IndexResult(lattice, fom, indexed, lines.size, math.degrees(zero),
                             significance)
        if best is None or result.key() < best.key():
            best = result
    return best
