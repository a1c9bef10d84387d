"""Whole-pattern fit of a crystal to a measured powder X-ray pattern, ranked by Rwp.

The model (`powder_pattern`): reflections of the candidate cell for the measured wavelength(s),
pseudo-Voigt peaks broadened by the instrument (U, W), crystallite size and microstrain, times a
scale, plus a Chebyshev background. Refined: the lattice parameters the crystal system leaves
free, the zero shift, U, W, size, strain, one overall B and, last, the atomic coordinates the
space group leaves free (`powder_positions`; occupancies and per-site B stay fixed); the scale
and the background are solved by weighted linear least squares at every step (variable
projection).

Search: the candidate's lattice may be off by several per cent, so the fit starts with broad peaks:
a scan of an isotropic lattice scale, then of each further free parameter (c/a, ..., the monoclinic
angle), then `scipy.optimize.least_squares` with broad, then measured-like, then fully free peak
widths. A cell further off is found by indexing the pattern's peak positions (`powder_index`,
used by `powder_rank`). Weights: 1/σ^2 from the file's uncertainties, else 1/max(I, 1) for counts
(non-negative data reaching above 50), else uniform. Rwp = sqrt(Σ w (I - calc)^2 / Σ w I^2).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.polynomial import chebyshev
from scipy.optimize import least_squares
from threadpoolctl import threadpool_limits

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.evaluators.forward.powder_pattern import (
    LATTICE_NAMES,
    Profile,
    Reflections,
    powder_pattern,
    reflections,
)
from invdesign.evaluators.forward.powder_positions import (
    MAX_FREE,
    MAX_SHIFT,
    displacement_basis,
    moved,
)
from invdesign.io.measured import MeasuredPattern

N_BACKGROUND = 8  # Chebyshev terms
LATTICE_RANGE = 0.12  # relative: the scan and the bounds of the lattice lengths
SCAN_STEP = 0.0025  # relative step of the isotropic scan
ANGLE_RANGE = 6.0  # deg, scan and bounds of a free angle
AXIS_RANGE = 0.1  # relative: the scan of each further free length after the isotropic scale
#: Model evaluations of one `refine_powder` (its least-squares stages, Jacobians included).
#: Uncapped, 11 of 12 refinements of the best candidates of four measured patterns took 212-1829.
MAX_EVALUATIONS = 2000
#: Nominal 2θ (deg) of the largest q when a q-axis pattern states no wavelength.
NOMINAL_MAX_TWO_THETA = 120.0


@dataclass(frozen=True)
class PowderData:
    """A measured pattern as the fit uses it: 2θ (deg, increasing), intensity, weights [n]."""

    two_theta: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    wavelengths: tuple[float, ...]
    notes: tuple[str, ...] = ()

    @property
    def dmin(self) -> float:
        """Smallest d (Å) of a reflection the pattern holds (its largest 2θ plus 2° at the longest
        wavelength)."""
        top = min(float(self.two_theta[-1]) + 2.0, 179.0)
        return max(self.wavelengths) / (2 * math.sin(math.radians(top / 2)))

    def binned(self, step: float) -> PowderData:
        """Averages of consecutive points so that the step is at least `step` (deg)."""
        k = int(step / max(float(np.median(np.diff(self.two_theta))), 1e-9))
        if k <= 1:
            return self
        n = self.two_theta.size // k * k
        avg = [v[:n].reshape(-1, k).mean(axis=1) for v in (self.two_theta, self.y)]
        wsum = self.weight[:n].reshape(-1, k).sum(axis=1)
        return replace(self, two_theta=avg[0], y=avg[1], weight=wsum)


@dataclass
class PowderFit:
    """The fitted candidate.

    Attributes:
        cell: the refined conventional cell (kind 'unit_cell').
        rwp: weighted profile R (fraction). scale: of the Bragg intensities.
        params: a, b, c (Å), alpha, beta, gamma (deg), zero (deg), u, w (deg^2), size (Å),
            strain, biso (Å^2).
        background: Chebyshev coefficients over the fitted 2θ range mapped to [-1, 1].
        system, spacegroup: of the candidate's conventional cell.
        steps: model evaluations. seconds: wall time.
        n_params: refined parameters (free lattice, zero, profile, B, free coordinates, scale and
            background); n_points: data points fitted (both for Hamilton's test,
            `powder_parsimony`).
        stage: 'screen' (broad peaks, binned data: Rwp comparable among screens only) or
            'refined'.
    """

    cell: Structure
    rwp: float
    scale: float
    params: dict[str, float]
    background: tuple[float, ...]
    system: str
    spacegroup: str
    steps: int
    seconds: float
    stage: str = "refined"
    notes: tuple[str, ...] = ()
    n_params: int = 0
    n_points: int = 0


def powder_data(measured: MeasuredPattern,
                two_theta_range: tuple[float, float] | None = None) -> PowderData:
    """The measured XRD pattern on a 2θ axis (deg) with weights; a q axis without a wavelength
    gets a nominal one (noted) so that `NOMINAL_MAX_TWO_THETA` is the largest angle."""
    if measured.kind != "xrd":
        raise InvdesignError(f"a powder fit needs an XRD pattern, not {measured.kind!r}")
    notes: list[str] = []
    lam = measured.wavelength
    if measured.x_unit == "2theta_deg" and lam is not None:
        tth = np.asarray(measured.x_raw, float)
    else:
        if lam is None:
            lam = 4 * math.pi * math.sin(math.radians(NOMINAL_MAX_TWO_THETA / 2)) / measured.xmax
            notes.append(f"no wavelength: nominal {lam:.4f} Å (q axis mapped to 2-theta)")
        sin_t = np.asarray(measured.x, float) * lam / (4 * math.pi)
        tth = np.degrees(2 * np.arcsin(np.clip(sin_t, 0.0, 1.0)))
    y = np.asarray(measured.y, float)
    if measured.dy is not None:
        weight = 1.0 / np.asarray(measured.dy, float) ** 2
    elif y.min() >= 0 and y.max() > 50:
        weight = 1.0 / np.maximum(y, 1.0)
    else:
        weight = np.ones_like(y)
    keep = np.isfinite(tth) & (tth > 0) & (tth < 179)
    if two_theta_range is not None:
        keep &= (tth >= two_theta_range[0]) & (tth <= two_theta_range[1])
    if keep.sum() < 10:
        raise InvdesignError("fewer than 10 points of the XRD pattern in the fitted 2-theta range")
    waves = (lam,)
    lam2 = measured.header.get("wavelength2")
    if lam2 is not None and measured.x_unit == "2theta_deg":
        waves = (lam, float(lam2))
    return PowderData(tth[keep], y[keep], weight[keep], waves, tuple(notes))


class _Model:
    """Rwp of one candidate for parameter vectors (free lattice, zero, ln size, strain, U, W, B,
    then one coefficient per column of `positions`, the symmetry-allowed displacements)."""

    def __init__(self, refl: Reflections, data: PowderData, n_background: int,
                 positions: np.ndarray | None = None) -> None:
        self.refl, self.data = refl, data
        self.positions = np.zeros((3 * len(refl.cell), 0)) if positions is None else positions
        self.frac0 = refl.cell.frac_coords
        t = data.two_theta
        u = 2 * (t - t[0]) / (t[-1] - t[0]) - 1
        self.basis = chebyshev.chebvander(u, n_background - 1)  # [n, n_bg]
        self.sqrt_w = np.sqrt(data.weight)
        self.norm = float(np.sqrt(np.sum(data.weight * data.y ** 2)))
        self.calls = 0

    def unpack(self, p: np.ndarray) -> tuple[np.ndarray, Profile]:
        k = len(self.refl.free)
        lattice = self.refl.full_lattice(p[:k])
        zero, log_size, strain, u, w, biso = p[k:k + 6]
        return lattice, Profile(zero, u, w, math.exp(log_size), strain, biso)

    def frac(self, p: np.ndarray) -> np.ndarray:
        """[n, 3] fractional coordinates of the conventional cell at p."""
        k = len(self.refl.free) + 6
        return moved(self.frac0, self.positions, p[k:k + self.positions.shape[1]])

    def reflections(self, p: np.ndarray) -> Reflections:
        if self.positions.shape[1] == 0:
            return self.refl
        phase = 2 * np.pi * self.refl.hkl @ self.frac(p).T
        return replace(self.refl, cos_phase=np.cos(phase), sin_phase=np.sin(phase))

    def solve(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Weighted residual [n], the linear coefficients (scale, background...) and the Bragg
        curve."""
        self.calls += 1
        lattice, profile = self.unpack(p)
        bragg = powder_pattern(self.reflections(p), lattice, self.data.two_theta,
                               self.data.wavelengths, profile)
        design = np.column_stack([bragg, self.basis]) * self.sqrt_w[:, None]
        target = self.data.y * self.sqrt_w
        coef = _linear_fit(design, target)
        if not coef[0] > 0:  # no negative scale: background alone
            coef = np.concatenate([[0.0], _linear_fit(design[:, 1:], target)])
        return target - design @ coef, coef, bragg

    def residual(self, p: np.ndarray) -> np.ndarray:
        return self.solve(p)[0] / self.norm

    def rwp(self, p: np.ndarray) -> float:
        return float(np.linalg.norm(self.residual(p)))


class _Setup:
    """Reflections, the coarse (binned, broad-peak) and full models and the bounds of one fit."""

    def __init__(self, cell: Structure, data: PowderData, n_background: int,
                 lattice_range: float) -> None:
        self.data, self.lattice_range = data, lattice_range
        self.refl = reflections(cell, data.dmin * (1 - lattice_range))
        self.free0 = self.refl.free_values(self.refl.lattice)
        self.k = k = self.free0.size
        self.step = step = float(np.median(np.diff(data.two_theta)))
        tan75 = math.tan(math.radians(np.percentile(data.two_theta, 75) / 2))
        self.broad = max(math.degrees(4 * tan75 * SCAN_STEP), 3 * step)
        self.narrow = max(3 * step, 0.02)
        self.coarse = _Model(self.refl, data.binned(self.broad / 5), min(n_background, 6))
        self.full = _Model(self.refl, data, n_background)
        self.profile0 = np.array([0.0, math.log(1e5), 0.0, 0.0, self.broad ** 2, 0.5])
        self.lengths = np.array([name in ("a", "b", "c") for name in self.refl.free])
        free0, lengths = self.free0, self.lengths
        spread = lattice_range + AXIS_RANGE  # isotropic scale and one axis against the others
        lo_l = np.where(lengths, free0 * max(1 - spread, 0.5), free0 - ANGLE_RANGE - 2)
        hi_l = np.where(lengths, free0 * (1 + spread), free0 + ANGLE_RANGE + 2)
        zero_max = max(0.5, 10 * step)
        self.lower = np.concatenate([lo_l, [-zero_max, math.log(20.0), 0.0, 0.0, 1e-6, 0.0]])
        self.upper = np.concatenate([hi_l, [zero_max, math.log(1e6), 0.05, 2.0, 1.0, 5.0]])
        self.active_lattice = tuple(range(k + 1))

    def scan(self) -> np.ndarray:
        """Free lattice values from the isotropic scan and the coordinate scans (broad peaks)."""
        k, free0, lengths, coarse = self.k, self.free0, self.lengths, self.coarse
        grid = np.arange(-self.lattice_range, self.lattice_range + 1e-12, SCAN_STEP)
        trials = [np.where(lengths, free0 * (1 + g), free0) for g in grid]
        iso = [coarse.rwp(np.concatenate([free, self.profile0])) for free in trials]
        best: tuple[float, np.ndarray] | None = None
        for i in _local_minima(iso, 3):
            free = trials[i]
            for _ in range(2):
                for j in range(1, k):
                    span = (np.arange(-AXIS_RANGE, AXIS_RANGE + 1e-12, 0.005) * free[j]
                            if lengths[j]
                            else np.arange(-ANGLE_RANGE, ANGLE_RANGE + 1e-12, 0.5))
                    scores = [coarse.rwp(np.concatenate([free + np.eye(k)[j] * s,
                                                         self.profile0])) for s in span]
                    free = free + np.eye(k)[j] * span[int(np.argmin(scores))]
            score = coarse.rwp(np.concatenate([free, self.profile0]))
            if best is None or score < best[0]:
                best = (score, free)
        assert best is not None
        return best[1]

    def vector(self, fit: PowderFit) -> np.ndarray:
        """The parameter vector of a previous fit of the same cell."""
        p = fit.params
        lattice = np.array([p[name] for name in LATTICE_NAMES])
        profile = [p["zero"], math.log(p["size"]), p["strain"], p["u"], p["w"], p["biso"]]
        return np.clip(np.concatenate([self.refl.free_values(lattice), profile]), self.lower,
                       self.upper)

    def result(self, model: _Model, p: np.ndarray, stage: str, start_time: float) -> PowderFit:
        residual, coef, _ = model.solve(p)
        lattice, profile = model.unpack(p)
        params = dict(zip(LATTICE_NAMES, (float(v) for v in lattice), strict=True))
        params.update(zero=float(profile.zero), u=float(profile.u), w=float(profile.w),
                      size=float(profile.size), strain=float(profile.strain),
                      biso=float(profile.biso))
        refl = self.refl
        cell = Structure.from_cell_parameters(
            np.array([site.specie.Z for site in refl.cell]), model.frac(p), lattice,
            spacegroup=refl.spacegroup, crystal_system=refl.system)
        return PowderFit(
            cell=cell, rwp=float(np.linalg.norm(residual) / model.norm), scale=float(coef[0]),
            params=params, background=tuple(float(c) for c in coef[1:]), system=refl.system,
            spacegroup=refl.spacegroup, steps=self.coarse.calls + self.full.calls,
            seconds=time.perf_counter() - start_time, stage=stage, notes=self.data.notes,
            n_params=int(p.size + model.basis.shape[1] + 1), n_points=int(residual.size))


def screen_powder(cell: Structure, measured: MeasuredPattern | PowderData, *,
                  lattice_range: float = LATTICE_RANGE,
                  two_theta_range: tuple[float, float] | None = None) -> PowderFit:
    """Fast fit: lattice scans and least squares of lattice and zero with broad Gaussian peaks on
    binned data (stage 'screen'); its Rwp ranks candidates against each other, not against a
    refined fit."""
    start_time = time.perf_counter()
    data = _as_data(measured, two_theta_range)
    with threadpool_limits(1):  # small dense algebra: BLAS threads only contend
        setup = _Setup(cell, data, N_BACKGROUND, lattice_range)
        p = np.clip(np.concatenate([setup.scan(), setup.profile0]), setup.lower, setup.upper)
        p = _least_squares(setup.coarse, p, setup.active_lattice, setup.lower, setup.upper)
        return setup.result(setup.coarse, p, "screen", start_time)


class _Budget:
    """Model evaluations left to a fit (finite-difference Jacobians included) and, optionally, a
    wall-time deadline; `take` raises `_OutOfBudget` once either is spent."""

    def __init__(self, evaluations: int, seconds: float | None = None) -> None:
        self.left = int(evaluations)
        self.deadline = None if seconds is None else time.perf_counter() + seconds

    def spent(self) -> bool:
        return self.left <= 0 or (self.deadline is not None
                                  and time.perf_counter() > self.deadline)

    def take(self) -> None:
        if self.spent():
            raise _OutOfBudget
        self.left -= 1


def refine_powder(cell: Structure, measured: MeasuredPattern | PowderData, *,
                  start: PowderFit | None = None, n_background: int = N_BACKGROUND,
                  max_evaluations: int = MAX_EVALUATIONS, max_seconds: float | None = None,
                  lattice_range: float = LATTICE_RANGE,
                  two_theta_range: tuple[float, float] | None = None,
                  positions: bool = True) -> PowderFit:
    """Full fit (stage 'refined') from `start` (a `screen_powder` fit of the same cell; None runs
    the screen first): lattice and zero with measured-like widths, a W scan, then every parameter
    free, then (`positions`, while the budget lasts) also the atomic coordinates the space group
    leaves free (`powder_positions`, at most `MAX_FREE` of them, each within `MAX_SHIFT`), kept
    when they lower Rwp. The least-squares stages share `max_evaluations` model evaluations, so
    the result does not depend on the machine's speed or load; `max_seconds` adds a wall-time
    cap (then it does)."""
    start_time = time.perf_counter()
    data = _as_data(measured, two_theta_range)
    screened_here = start is None
    if start is None:
        start = screen_powder(cell, data, lattice_range=lattice_range)
    budget = _Budget(max_evaluations, max_seconds)
    with threadpool_limits(1):  # small dense algebra: BLAS threads only contend
        setup = _Setup(cell, data, n_background, lattice_range)
        p, k, full = setup.vector(start), setup.k, setup.full
        p[k + 4] = (2 * setup.narrow) ** 2
        p = _least_squares(full, p, setup.active_lattice, setup.lower, setup.upper, budget)
        widths = np.geomspace(setup.narrow / 2, 1.0, 12)
        scores = [full.rwp(np.concatenate([p[:k + 4], [wd ** 2], p[k + 5:]])) for wd in widths]
        p[k + 4] = widths[int(np.argmin(scores))] ** 2
        p = _least_squares(full, p, tuple(range(k + 6)), setup.lower, setup.upper, budget)
        model = full
        if positions:
            model, p = _refine_positions(setup, p, budget)
        fit = setup.result(model, p, "refined", start_time)
    if screened_here:
        fit.steps += start.steps
    fit.seconds = time.perf_counter() - start_time
    return fit


def _refine_positions(setup: _Setup, p: np.ndarray,
                      budget: _Budget) -> tuple[_Model, np.ndarray]:
    """Every parameter and the free atomic coordinates; (model, p) of the better of the fits with
    and without them."""
    if budget.spent():
        return setup.full, p
    basis = displacement_basis(setup.refl.cell)
    kp = basis.shape[1]
    if not 0 < kp <= MAX_FREE:
        return setup.full, p
    model = _Model(setup.refl, setup.data, setup.full.basis.shape[1], basis)
    lower = np.concatenate([setup.lower, np.full(kp, -MAX_SHIFT)])
    upper = np.concatenate([setup.upper, np.full(kp, MAX_SHIFT)])
    q = _least_squares(model, np.concatenate([p, np.zeros(kp)]), tuple(range(p.size + kp)),
                       lower, upper, budget)
    better = model.rwp(q) < setup.full.rwp(p)
    setup.full.calls += model.calls  # the fit's step count includes this stage either way
    return (model, q) if better else (setup.full, p)


def fit_powder(cell: Structure, measured: MeasuredPattern | PowderData,
               **options: Any) -> PowderFit:
    """`screen_powder` then `refine_powder` (options as `refine_powder`'s)."""
    return refine_powder(cell, measured, start=None, **options)


def _as_data(measured: MeasuredPattern | PowderData,
             two_theta_range: tuple[float, float] | None) -> PowderData:
    if isinstance(measured, PowderData):
        return measured
    return powder_data(measured, two_theta_range)


def _linear_fit(design: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares coefficients of design [n, m] for target [n] (normal equations on unit-norm
    columns; an all-zero column gets 0)."""
    norms = np.linalg.norm(design, axis=0)
    safe = np.where(norms > 0, norms, 1.0)
    a = design / safe
    gram = a.T @ a + 1e-12 * np.eye(a.shape[1])
    coef = np.linalg.solve(gram, a.T @ target) / safe
    return np.where(norms > 0, coef, 0.0)


def _local_minima(values: list[float], n: int) -> list[int]:
    """Indices of the `n` lowest local minima of a 1-d scan."""
    v = np.asarray(values)
    inner = [i for i in range(v.size) if (i == 0 or v[i] <= v[i - 1])
             and (i == v.size - 1 or v[i] <= v[i + 1])]
    return sorted(inner, key=lambda i: v[i])[:n]


class _OutOfBudget(Exception):
    """Raised inside `least_squares` when a fit's evaluations (or its time cap) are spent."""


def _least_squares(model: _Model, p: np.ndarray, active: tuple[int, ...], lower: np.ndarray,
                   upper: np.ndarray, budget: _Budget | None = None) -> np.ndarray:
    """`least_squares` over the `active` entries of p (others fixed), a bounded number of steps
    and, with a `budget`, at most its evaluations (then the best point evaluated so far)."""
    idx = np.array(active)
    if budget is not None and budget.spent():
        return p
    best = [math.inf, p[idx].copy()]

    def fun(q: np.ndarray) -> np.ndarray:
        if budget is not None:
            budget.take()
        trial = p.copy()
        trial[idx] = q
        residual = model.residual(trial)
        cost = float(residual @ residual)
        if cost < best[0]:
            best[:] = [cost, q.copy()]
        return residual

    x0 = np.clip(p[idx], lower[idx] + 1e-12, upper[idx] - 1e-12)
    out = p.copy()
    try:
        out[idx] = least_squares(fun, x0, bounds=(lower[idx], upper[idx]), x_scale="jac",
                                 max_nfev=25 * (idx.size + 1), method="trf", ftol=1e-6,
                                 xtol=1e-6).x
    except _OutOfBudget:
        out[idx] = best[1]
    return out


def powder_curve(fit: PowderFit, measured: MeasuredPattern | PowderData,
                 two_theta_range: tuple[float, float] | None = None,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2θ (deg) [n], the fitted total curve [n] and its background [n] on the measured points."""
    data = measured if isinstance(measured, PowderData) else powder_data(measured,
                                                                          two_theta_range)
    p = fit.params
    profile = Profile(p["zero"], p["u"], p["w"], p["size"], p["strain"], p["biso"])
    refl = reflections(fit.cell, min(data.wavelengths) / 2.0 * 0.9)
    bragg = powder_pattern(refl, refl.lattice, data.two_theta, data.wavelengths, profile)
    t = data.two_theta
    background = chebyshev.chebval(2 * (t - t[0]) / (t[-1] - t[0]) - 1, np.array(fit.background))
    return t, fit.scale * bragg + background, background
