"""Fixtures of the forward-model tests: a simulated powder pattern of a known cell."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pymatgen.analysis.diffraction.xrd import XRDCalculator
from pymatgen.core import Lattice
from scipy.special import voigt_profile

from invdesign.core.structure import Structure
from invdesign.io.measured import MeasuredPattern

CU = 1.5406


def powder_file(tth: np.ndarray, y: np.ndarray) -> MeasuredPattern:
    q = 4 * np.pi * np.sin(np.radians(tth / 2)) / CU
    return MeasuredPattern(path=Path("sim.xy"), kind="xrd", x=q, y=y, dy=None, qmin=q[0],
                           qmax=q[-1], qdamp=0.0, biso=0.3, radiation="xray", wavelength=CU,
                           composition=None, x_raw=tth, x_unit="2theta_deg")


def _simulate(cell: Structure, stretch: tuple[float, float, float], size: float = 200.0,
              seed: int = 0) -> tuple[MeasuredPattern, np.ndarray]:
    """XRDCalculator sticks of the stretched cell, each a Voigt (instrument Gaussian FWHM 0.06 deg,
    Scherrer Lorentzian FWHM 0.9 λ / (size cos θ)), on a sloped background, Poisson counts."""
    s = cell.to_pymatgen()
    a, b, c, alpha, beta, gamma = s.lattice.parameters
    s.lattice = Lattice.from_parameters(a * stretch[0], b * stretch[1], c * stretch[2], alpha,
                                        beta, gamma)
    sticks = XRDCalculator(wavelength=CU).get_pattern(s, scaled=False, two_theta_range=(17, 93))
    tth = np.arange(20.0, 90.0, 0.02)
    y = np.zeros_like(tth)
    sigma = 0.06 / (2 * math.sqrt(2 * math.log(2)))
    for centre, area in zip(sticks.x, sticks.y, strict=True):
        gamma_l = math.degrees(0.9 * CU / (size * math.cos(math.radians(centre / 2)))) / 2
        y += area * voigt_profile(tth - centre, sigma, gamma_l)
    y = 4000 * y / y.max() + 200 + 100 * np.exp(-(tth - 20) / 15)
    y = np.random.default_rng(seed).poisson(y).astype(float)
    return powder_file(tth, y), np.array(s.lattice.abc)



@pytest.fixture
def simulate_powder() -> Callable[..., tuple[MeasuredPattern, np.ndarray]]:
    """`_simulate(cell, stretch, size=200, seed=0)`: (pattern, the stretched cell's a, b, c)."""
    return _simulate
