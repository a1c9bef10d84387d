"""SAXS size fit: diameter and polydispersity of simulated sphere populations recovered."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.special import gammaln

from invdesign.core.errors import InvdesignError
from invdesign.evaluators.forward.saxs_fit import fit_saxs, guinier_radius, sphere_intensity
from invdesign.io.measured import MeasuredPattern

Q = np.geomspace(0.004, 0.4, 250)  # Å^-1


def _population(q: np.ndarray, radii: np.ndarray, number: np.ndarray) -> np.ndarray:
    """<V^2 P(q)>_n / <V>_n of spheres, by direct summation over a fine radius grid (numpy, not
    sasmodels)."""
    qr = np.outer(q, radii)
    volume = 4.0 / 3.0 * math.pi * radii ** 3
    amplitude = 3.0 * (np.sin(qr) - qr * np.cos(qr)) / qr ** 3 * volume
    return (amplitude ** 2 @ number) / (volume @ number)


def _schulz(mean: float, p: float) -> tuple[np.ndarray, np.ndarray]:
    z = 1.0 / p ** 2 - 1.0
    r = np.linspace(mean * max(1 - 6 * p, 0.02), mean * (1 + 8 * p), 4000)
    log_n = ((z + 1) * math.log(z + 1) + z * np.log(r / mean) - (z + 1) * r / mean
             - math.log(mean) - gammaln(z + 1))
    return r, np.exp(log_n)


def _lognormal(median: float, s: float) -> tuple[np.ndarray, np.ndarray]:
    r = np.geomspace(median * math.exp(-6 * s), median * math.exp(6 * s), 4000)
    n = np.exp(-np.log(r / median) ** 2 / (2 * s * s)) / (r * s * math.sqrt(2 * math.pi))
    return r, n * np.gradient(r)


def _measured(y: np.ndarray, dy: np.ndarray | None = None) -> MeasuredPattern:
    return MeasuredPattern(path=Path("sim.dat"), kind="saxs", x=Q, y=y, dy=dy, qmin=Q[0],
                           qmax=Q[-1], qdamp=0.0, biso=0.3, radiation="xray", wavelength=None,
                           composition=None, x_raw=Q, x_unit="q_A")


def _noisy(clean: np.ndarray, seed: int) -> np.ndarray:
    return clean * (1 + 0.01 * np.random.default_rng(seed).standard_normal(clean.size))


@pytest.mark.parametrize(("mean", "p"), [(60.0, 0.12), (25.0, 0.25)])
def test_schulz_spheres_diameter_and_polydispersity_within_5_percent(mean, p):
    r, n = _schulz(mean, p)
    fit = fit_saxs(_measured(_noisy(1e-4 * _population(Q, r, n) + 0.02, 1)))
    assert abs(fit.diameter / (2 * mean) - 1) < 0.05
    assert abs(fit.polydispersity / p - 1) < 0.05
    assert abs(fit.background / 0.02 - 1) < 0.05
    assert fit.distribution == "schulz"


def test_lognormal_spheres_median_diameter_and_width_within_5_percent():
    r, n = _lognormal(40.0, 0.15)
    y = _noisy(3e-5 * _population(Q, r, n) + 0.005, 2)
    fit = fit_saxs(_measured(y, dy=0.01 * y), distribution="lognormal")
    assert abs(fit.diameter / 80.0 - 1) < 0.05
    assert abs(fit.polydispersity / 0.15 - 1) < 0.05


def test_noise_free_sasmodels_curve_is_recovered_exactly():
    y = sphere_intensity(Q, 50.0, 0.1, scale=2.0, background=0.1)
    fit = fit_saxs(_measured(y))
    assert fit.diameter == pytest.approx(100.0, rel=1e-4)
    assert fit.polydispersity == pytest.approx(0.1, rel=1e-3)
    assert fit.scale == pytest.approx(2.0, rel=1e-3)
    assert fit.rw < 1e-5


def test_guinier_radius_of_a_monodisperse_sphere():
    q = np.linspace(0.001, 0.05, 200)
    radius = 30.0
    assert guinier_radius(q, sphere_intensity(q, radius, 0.0)) == pytest.approx(radius, rel=0.02)


def test_wrong_kind_and_distribution_are_refused():
    y = sphere_intensity(Q, 50.0, 0.1)
    with pytest.raises(InvdesignError, match="must be one of schulz, lognormal, not 'gauss'"):
        fit_saxs(_measured(y), distribution="gauss")
    xrd = MeasuredPattern(path=Path("x.xy"), kind="xrd", x=Q, y=y, dy=None, qmin=Q[0],
                          qmax=Q[-1], qdamp=0.0, biso=0.3, radiation="xray", wavelength=None,
                          composition=None, x_raw=Q, x_unit="q_A")
    with pytest.raises(InvdesignError, match="needs a SAXS pattern, not 'xrd'"):
        fit_saxs(xrd)
