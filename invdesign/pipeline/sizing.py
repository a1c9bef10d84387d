"""Particle size and nearest-neighbour distance read off a measured G(r).

A finite particle's G(r) dies out at its diameter D (its envelope carries the sphere's shape
function gamma0(r / D), zero for r >= D). The estimate is deliberately simple: the r where the
envelope (largest |G| in 2 Å windows) falls below 1 % of its maximum (or the noise). Candidates are
cut at several diameters around it and the forward simulation decides, so it only has to be close.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Number density for compounds when estimating atom counts, atoms/Å^3 (oxides: 0.07-0.10).
COMPOUND_DENSITY = 0.085


@dataclass(frozen=True)
class SizeEstimate:
    """What the data say about the particle.

    Attributes:
        diameter: Å, where G(r) dies out; for a bulk sample the diameter used to model it.
        bulk: True when G(r) does not die out within the data (diameter is then a modelling choice).
        nn_distance: Å, position of the first G(r) peak.
    """

    diameter: float
    bulk: bool
    nn_distance: float

    def n_atoms(self, metallic: bool) -> int:
        """Atoms in a sphere of this diameter: close packing at the nn distance for metals, else
        `COMPOUND_DENSITY`."""
        rho = np.sqrt(2.0) / self.nn_distance**3 if metallic else COMPOUND_DENSITY
        return int(round(np.pi / 6.0 * self.diameter**3 * rho))


def first_peak(r: np.ndarray, g: np.ndarray, lo: float = 1.5, hi: float = 4.0) -> float:
    """Position (Å) of the highest G(r) point in [lo, hi] Å, refined by a parabola.

    Args:
        r: [n] Å, increasing. g: [n] G(r).
    """
    idx = np.flatnonzero((r >= lo) & (r <= hi))
    if idx.size < 3:
        raise ValueError(f"G(r) has fewer than 3 points in {lo}-{hi} Å")
    i = idx[np.argmax(g[idx])]
    if 0 < i < len(r) - 1:
        y0, y1, y2 = g[i - 1], g[i], g[i + 1]
        denom = y0 - 2 * y1 + y2
        if denom < 0:
            return float(r[i] + 0.5 * (y0 - y2) / denom * (r[i + 1] - r[i]))
    return float(r[i])


def shape_function(r: np.ndarray, diameter: float) -> np.ndarray:
    """Sphere shape function gamma0(r) [n] of a particle of `diameter` Å: 1 at 0, 0 beyond D."""
    x = np.clip(np.asarray(r, dtype=np.float64) / diameter, 0.0, 1.0)
    return 1.0 - 1.5 * x + 0.5 * x**3


def envelope(r: np.ndarray, g: np.ndarray, start: float = 1.5, window: float = 2.5
             ) -> tuple[np.ndarray, np.ndarray]:
    """Window centres [m] Å and the largest |G| in each window [m]."""
    edges = np.arange(start, r[-1] + 1e-9, window)
    centres, values = [], []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        sel = (r >= a) & (r < b)
        if sel.sum() >= 3:
            centres.append(0.5 * (a + b))
            values.append(np.abs(g[sel]).max())
    return np.array(centres), np.array(values)


def noise_level(r: np.ndarray, g: np.ndarray) -> float:
    """Standard deviation of point-to-point noise in G(r), from the median absolute second
    difference over the outer half of the data (a smooth signal contributes little there)."""
    outer = g[r >= r[0] + 0.5 * (r[-1] - r[0])]
    if outer.size < 5:
        return 0.0
    d2 = np.diff(outer, 2)
    return float(1.4826 * np.median(np.abs(d2 - np.median(d2))) / np.sqrt(6.0))


def estimate_size(r: np.ndarray, g: np.ndarray, threshold: float = 0.01,
                  bulk_diameter: float | None = None) -> SizeEstimate:
    """Diameter (Å) where G(r) dies out, and the first-peak distance.

    The diameter is the end of the last window whose largest |G| exceeds `threshold` x the
    largest window value. If that window is among the last 15 % of the data and still above 5 %,
    G(r) does not die out within the data: the sample is treated as bulk and modelled as a sphere
    of `bulk_diameter` Å (default 2.5 x the data's rmax, at most 60 Å).

    Args:
        r: [n] Å, increasing. g: [n] measured G(r).
    Raises:
        ValueError: G(r) not finite, too short, zero beyond 1.5 Å or all noise.
    """
    r, g = np.asarray(r, dtype=np.float64), np.asarray(g, dtype=np.float64)
    if not (np.isfinite(r).all() and np.isfinite(g).all()):
        raise ValueError("G(r) holds NaN or inf")
    nn = first_peak(r, g)
    window = 2.0
    x, env = envelope(r, g, window=window)
    if x.size < 3:
        raise ValueError("G(r) too short to estimate a particle size")
    if not env.max() > 0:
        raise ValueError("G(r) is zero everywhere beyond 1.5 Å (no signal to size)")
    # A window of pure noise peaks near 3.5 sigma: the threshold must clear it.
    floor = 4.0 * noise_level(r, g) / env.max()
    rel = env / env.max()
    above = np.flatnonzero(rel > max(threshold, floor))
    if above.size == 0:
        raise ValueError("G(r) does not rise above its point-to-point noise (no signal to size)")
    diameter = float(x[above[-1]] + window / 2)
    tail = rel[x > r[0] + 0.85 * (r[-1] - r[0])]
    bulk = (diameter >= r[0] + 0.85 * (r[-1] - r[0]) and tail.size > 0
            and tail.max() > max(0.05, 1.5 * floor))
    if bulk:
        diameter = bulk_diameter or min(2.5 * float(r[-1]), 60.0)
    return SizeEstimate(diameter=diameter, bulk=bool(bulk), nn_distance=nn)
