"""Particle size from a SAXS curve: polydisperse spheres (sasmodels' `sphere` model with a Schulz
or log-normal radius distribution) plus a flat background.

I(q) = scale x <V^2 P(q; R)>_n / <V>_n + background, the average over the number distribution of
radii (sasmodels' convention). Fitted: the distribution's centre radius R and relative width p
(`radius_pd`: σ/mean for 'schulz', σ of ln R for 'lognormal', whose centre is the median); scale
and background are solved by linear least squares at every step (background >= 0). Start: a grid
over R (around the Guinier estimate, R = sqrt(5/3) Rg) and p, then `scipy.optimize.least_squares`.
Residuals are relative ((I - calc) / σ with the file's σ, else σ = |I|): a SAXS curve spans
decades.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import cache

import numpy as np
from sasmodels.core import load_model
from sasmodels.data import empty_data1D
from sasmodels.direct_model import DirectModel
from scipy.optimize import least_squares

from invdesign.core.errors import InvdesignError
from invdesign.io.measured import MeasuredPattern

DISTRIBUTIONS: tuple[str, ...] = ("schulz", "lognormal")
PD_POINTS = 61  # radius points of the distribution integral
PD_NSIGMA = 4.0
PD_RANGE = (0.01, 0.8)
GRID_PD = (0.05, 0.1, 0.2, 0.35, 0.5)


@dataclass
class SaxsFit:
    """Fitted sphere population.

    Attributes:
        diameter: 2 R in Å (R the mean radius for 'schulz', the median for 'lognormal').
        polydispersity: relative width p of the radius distribution (see the module docstring).
        distribution: 'schulz' or 'lognormal'.
        scale, background: of I(q) (background in the data's units).
        rw: sqrt(Σ w r^2 / Σ w I^2) with the fit's weights. steps, seconds: cost.
    """

    diameter: float
    polydispersity: float
    distribution: str
    scale: float
    background: float
    rw: float
    steps: int
    seconds: float


@cache
def _sphere_model():
    return load_model("sphere")


class _Curve:
    """Unit-scale sphere intensities on fixed q (Å^-1) for (radius, pd)."""

    def __init__(self, q: np.ndarray, distribution: str) -> None:
        self.kernel = DirectModel(empty_data1D(q), _sphere_model())
        self.distribution = distribution
        self.calls = 0

    def __call__(self, radius: float, pd: float) -> np.ndarray:
        self.calls += 1
        return np.asarray(self.kernel(
            scale=1.0, background=0.0, sld=1.0, sld_solvent=0.0, radius=radius, radius_pd=pd,
            radius_pd_n=PD_POINTS, radius_pd_nsigma=PD_NSIGMA, radius_pd_type=self.distribution))


def sphere_intensity(q: np.ndarray, radius: float, pd: float, *, distribution: str = "schulz",
                     scale: float = 1.0, background: float = 0.0) -> np.ndarray:
    """[n] I(q) of polydisperse spheres (radius Å, q Å^-1; sasmodels units: contrast 1e-6 Å^-2,
    so scale is the volume fraction times the contrast^2 in those units)."""
    _check_distribution(distribution)
    return scale * _Curve(np.asarray(q, float), distribution)(radius, pd) + background


def guinier_radius(q: np.ndarray, intensity: np.ndarray) -> float:
    """Sphere radius (Å) sqrt(5/3) Rg from the Guinier slope of ln I over q Rg < 1.3 (iterated from
    the first points)."""
    ok = intensity > 0
    q, ln_i = q[ok], np.log(intensity[ok])
    n = max(5, q.size // 10)
    rg = 0.0
    for _ in range(5):
        slope = np.polyfit(q[:n] ** 2, ln_i[:n], 1)[0]
        if slope >= 0:
            break
        rg = math.sqrt(-3 * slope)
        n = max(5, int(np.searchsorted(q, 1.3 / rg)))
    if rg <= 0:
        return float(math.pi / q[q.size // 2])
    return math.sqrt(5.0 / 3.0) * rg


def fit_saxs(measured: MeasuredPattern, *, distribution: str = "schulz",
             q_range: tuple[float, float] | None = None) -> SaxsFit:
    """Fit polydisperse spheres to a measured SAXS pattern (kind 'saxs', q in Å^-1)."""
    start = time.perf_counter()
    _check_distribution(distribution)
    if measured.kind != "saxs":
        raise InvdesignError(f"a SAXS size fit needs a SAXS pattern, not {measured.kind!r}")
    q, y = np.asarray(measured.x, float), np.asarray(measured.y, float)
    sigma = None if measured.dy is None else np.asarray(measured.dy, float)
    keep = q > 0 if q_range is None else (q >= q_range[0]) & (q <= q_range[1])
    q, y = q[keep], y[keep]
    sigma = np.abs(y) if sigma is None else sigma[keep]
    if q.size < 10 or not np.all(sigma > 0):
        raise InvdesignError("a SAXS fit needs at least 10 points with non-zero intensity "
                             "in the q range")
    weight = 1.0 / sigma ** 2
    curve = _Curve(q, distribution)

    def solve(p: np.ndarray) -> tuple[np.ndarray, float, float]:
        shape = curve(math.exp(p[0]), p[1])
        scale, background = _scale_background(shape, y, weight)
        return (y - scale * shape - background) * np.sqrt(weight), scale, background

    r0 = guinier_radius(q, y)
    grid = [(math.log(r0 * f), pd) for f in np.geomspace(0.5, 2.0, 15) for pd in GRID_PD]
    scores = [float(np.sum(solve(np.array(p))[0] ** 2)) for p in grid]
    p0 = np.array(grid[int(np.argmin(scores))])
    lower = np.array([math.log(1.0), PD_RANGE[0]])
    upper = np.array([math.log(1e5), PD_RANGE[1]])
    result = least_squares(lambda p: solve(p)[0], np.clip(p0, lower, upper),
                           bounds=(lower, upper), x_scale="jac", method="trf", max_nfev=200)
    residual, scale, background = solve(result.x)
    rw = float(np.linalg.norm(residual) / np.linalg.norm(y * np.sqrt(weight)))
    return SaxsFit(diameter=2 * math.exp(result.x[0]), polydispersity=float(result.x[1]),
                   distribution=distribution, scale=scale, background=background, rw=rw,
                   steps=curve.calls, seconds=time.perf_counter() - start)


def _scale_background(shape: np.ndarray, y: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    """Weighted least-squares scale and background >= 0 of y ≈ scale x shape + background."""
    a = np.column_stack([shape, np.ones_like(shape)]) * np.sqrt(weight)[:, None]
    b = y * np.sqrt(weight)
    scale, background = np.linalg.lstsq(a, b, rcond=None)[0]
    if background < 0:
        background = 0.0
        scale = float(a[:, 0] @ b / (a[:, 0] @ a[:, 0]))
    return float(scale), float(background)


def _check_distribution(distribution: str) -> None:
    if distribution not in DISTRIBUTIONS:
        raise InvdesignError(f"size distribution must be one of {', '.join(DISTRIBUTIONS)}, not "
                             f"{distribution!r}")
