"""Polish any generator's samples against the pattern they should explain (issue 27 item 1).

The forward-model refinement the diffusion model's guided sampling does during sampling, done
afterwards for samples of any generator (MLP, VAE, unguided diffusion):
- particles: `refine.refine` (lattice scan, then Adam on positions and expansion, optionally
  biso, through DebyeCalculator, a minimum-distance guard);
- unit cells: `crystal_fit.refine_crystal`, the attenuated crystal (cell x sphere, PDFfit2's
  model): a screen of lattice scale, sphere diameter and Uiso, then lattice (as its space group
  allows), positions, delta2, Uiso per element and the diameter by L-BFGS. PDFs only.
Each result keeps the input structure's species and order; `rw_before` is the sample's Rw as it
came (particles: the instrument's biso and qdamp; cells: after the screen of global parameters
only, the cell's atoms unmoved), `rw_after` the refined one's.

`chili_pattern` wraps a CHILI pattern (a [2, n] stored pattern or the model-ready values on the
task's grid) as the `MeasuredPattern` the fits read, with CHILI's simulation parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from invdesign.core.errors import InvdesignError
from invdesign.core.patterns import PatternSpec
from invdesign.core.structure import Structure
from invdesign.evaluators.forward.crystal_fit import refine_crystal, screen_crystal
from invdesign.evaluators.forward.evaluator import DEFAULT_FIT_RANGE, ForwardEvaluator
from invdesign.evaluators.forward.refine import refine
from invdesign.io.measured import MeasuredPattern

#: Å^-1, CHILI's q damping of G(r) (DebyeCalculator's default)
CHILI_QDAMP = 0.04


@dataclass(frozen=True)
class Polished:
    """One polished sample: the refined `structure`, its Rw before and after (module docstring)
    and the seconds spent."""

    structure: Structure
    rw_before: float
    rw_after: float
    seconds: float


def chili_pattern(x: np.ndarray, y: np.ndarray, spec: PatternSpec,
                  name: str = "chili") -> MeasuredPattern:
    """A CHILI pattern y(x) [n] of type `spec` as a `MeasuredPattern` (CHILI's qmin, qmax, biso
    and q damping; no uncertainties). G(r) from r = 0 is shifted so G(0) = 0, which undoes the
    offset of a min-max normalised pattern."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    kind = "pdf" if spec.function == "gr" else ("saxs" if spec.qmin == 0 else "xrd")
    if spec.function == "gr" and x[0] == 0:
        y = y - y[0]
    return MeasuredPattern(Path(f"{name}.{spec.name}"), kind, x, y, None, spec.qmin, spec.qmax,
                           CHILI_QDAMP, spec.biso, spec.radiation, None, None, x,
                           "r_A" if spec.function == "gr" else "q_A", {"qdamp": "default"})


def polish(structures: Sequence[Structure], pattern: MeasuredPattern, *,
           fit_range: tuple[float, float] | None = DEFAULT_FIT_RANGE, steps: int = 40,
           max_seconds: float = 20.0, fit_biso: bool = False) -> list[Polished]:
    """Refine each structure against `pattern` (module docstring).

    Args:
        structures: particles or unit cells (unit cells: PDF patterns only).
        pattern: what they should explain.
        fit_range: Å or Å^-1, the compared range (None: all of the data).
        steps: gradient steps for particles.
        max_seconds: wall-time cap of each structure's refinement.
        fit_biso: particles: refine biso too (default: the pattern's biso, so the polished
            structure alone reproduces `rw_after`, as CHILI's patterns were simulated).
    """
    if any(s.is_periodic for s in structures) and pattern.kind != "pdf":
        raise InvdesignError(
            f"polishing unit cells needs a PDF; got a {pattern.kind} pattern", pattern.path)
    evaluator = None
    out: list[Polished] = []
    for s in structures:
        if s.is_periodic:
            start = screen_crystal(s, pattern, fit_range=fit_range, diameter=None,
                                   fit_qdamp=False)
            fit = refine_crystal(s, pattern, fit_range=fit_range, start=start, fit_qdamp=False,
                                 max_seconds=max_seconds)
            out.append(Polished(fit.cell, start.rw, fit.rw, start.seconds + fit.seconds))
            continue
        evaluator = evaluator or ForwardEvaluator(pattern, fit_range=fit_range)
        result = refine(s, evaluator, steps=steps, max_seconds=max_seconds, biso=fit_biso)
        out.append(Polished(result.structure, result.rw_before, result.rw_after, result.seconds))
    return out
