"""Forward simulation of candidates against a measured pattern: Rw, fitted scale, Pearson r.

Every candidate's pattern is computed with DebyeCalculator on the measured grid with the measured
instrument parameters (qmin, qmax, qdamp, biso, radiation), through `MeasuredGridCalculator`.
PDFs are compared over the fit range (default 1.5 Å to min(data rmax, 30 Å)); XRD and SAXS over
the whole measured q range unless a range is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.evaluators.base import Evaluator, register_evaluator
from invdesign.evaluators.metrics.pattern import pearson, rw
from invdesign.io.measured import MeasuredPattern
from invdesign.physics.calculator import Instrument, MeasuredGridCalculator

DEFAULT_FIT_RANGE = (1.5, 30.0)  # Å, for PDFs


@dataclass(frozen=True)
class FitCurve:
    """A candidate's fit: x [n] (r Å or q Å^-1), observed [n], calculated [n] (already scaled),
    difference obs - calc [n], Rw, scale and Pearson r."""

    x: np.ndarray
    obs: np.ndarray
    calc: np.ndarray
    diff: np.ndarray
    rw: float
    scale: float
    pearson: float


def fit_window(measured: MeasuredPattern,
               fit_range: tuple[float, float] | None = DEFAULT_FIT_RANGE) -> tuple[float, float]:
    """(lo, hi) of the comparison: the requested range clipped to the data; refused (naming the
    file) when fewer than 10 data points remain."""
    if fit_range is None:
        fit_range = (measured.xmin, measured.xmax)
    lo, hi = max(float(fit_range[0]), measured.xmin), min(float(fit_range[1]), measured.xmax)
    inside = (measured.x >= lo) & (measured.x <= hi)
    if hi <= lo or int(inside.sum()) < 10:
        raise InvdesignError(
            f"fit range {fit_range[0]:g}..{fit_range[1]:g} leaves fewer than 10 points of the data "
            f"({measured.xmin:g}..{measured.xmax:g})", measured.path)
    return lo, hi


def instrument_of(measured: MeasuredPattern, qstep: float | None = None) -> Instrument:
    """The DebyeCalculator parameters of a measured pattern."""
    return Instrument(function=measured.function, radiation=measured.radiation,
                      qmin=measured.qmin, qmax=measured.qmax, qdamp=measured.qdamp,
                      biso=measured.biso, qstep=qstep)


def check_finite(structure: Structure) -> None:
    if structure.is_periodic:
        raise InvdesignError("forward simulation needs a finite particle, not a periodic unit "
                             "cell; cut a particle from the cell first")


@register_evaluator("forward")
class ForwardEvaluator(Evaluator):
    """Scores candidates by forward simulation against one measured pattern.

    Args:
        measured: the pattern (from `invdesign.io.read_pattern`).
        fit_range: (lo, hi) in Å for PDFs (default 1.5-30 Å), in Å^-1 for I(q) (default: all data);
            clipped to the data's range.
        device: torch device; dtype: torch.float32 (fast) or torch.float64.
        qstep: q spacing of the transform (see `Instrument`), None for the default.
    """

    def __init__(self, measured: MeasuredPattern,
                 fit_range: tuple[float, float] | None = DEFAULT_FIT_RANGE, device: str = "cpu",
                 dtype: torch.dtype = torch.float32, qstep: float | None = None) -> None:
        self.measured = measured
        if measured.kind != "pdf" and fit_range == DEFAULT_FIT_RANGE:
            fit_range = None
        self.fit_range = fit_window(measured, fit_range)
        mask = (measured.x >= self.fit_range[0]) & (measured.x <= self.fit_range[1])
        self.x = measured.x[mask]
        self.device, self.dtype = device, dtype
        self.obs = torch.as_tensor(measured.y[mask], dtype=dtype, device=device)
        self.instrument = instrument_of(measured, qstep)
        self.calculator = MeasuredGridCalculator(self.instrument, self.x, device, dtype)

    def simulate(self, structures: Sequence[Structure], biso: Any = None,
                 qdamp: Any = None) -> torch.Tensor:
        """[B, n] unscaled calculated patterns on the fit grid `self.x`."""
        for structure in structures:
            check_finite(structure)
        return self.calculator(list(structures), biso=biso, qdamp=qdamp)

    def evaluate(self, structures: Sequence[Structure]) -> list[dict[str, Any]]:
        """Per structure: rw, scale, pearson, n_atoms, fit_min, fit_max (x units of the pattern)."""
        records = []
        for structure in structures:
            with torch.no_grad():
                calc = self.simulate([structure])[0]
                value, scale = rw(self.obs, calc)
                corr = pearson(self.obs, calc)
            records.append({"rw": float(value), "scale": float(scale), "pearson": float(corr),
                            "n_atoms": structure.n_atoms, "fit_min": self.fit_range[0],
                            "fit_max": self.fit_range[1]})
        return records

    def fit_curve(self, structure: Structure, biso: float | None = None,
                  qdamp: float | None = None) -> FitCurve:
        """Observed and scaled calculated curve of one structure on the fit grid."""
        with torch.no_grad():
            calc = self.simulate([structure], biso=biso, qdamp=qdamp)[0]
            value, scale = rw(self.obs, calc)
            corr = pearson(self.obs, calc)
        obs = self.obs.cpu().double().numpy()
        fitted = (scale * calc).cpu().double().numpy()
        return FitCurve(self.x.copy(), obs, fitted, obs - fitted, float(value), float(scale),
                        float(corr))
