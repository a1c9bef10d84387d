"""Forward simulation: candidates' patterns on the measured grid (DebyeCalculator), Rw and Pearson r
(`ForwardEvaluator`, registered as 'forward' when the package is imported: the registry does it
on the first lookup of 'forward'), and gradient-based refinement (`refine`)."""

from invdesign.evaluators.forward.evaluator import (
    DEFAULT_FIT_RANGE,
    FitCurve,
    ForwardEvaluator,
    fit_window,
    instrument_of,
)
from invdesign.evaluators.forward.refine import RefineResult, refine
from invdesign.evaluators.metrics.pattern import fit_scale, pearson, rw

__all__ = ["DEFAULT_FIT_RANGE", "FitCurve", "ForwardEvaluator", "RefineResult", "fit_scale",
           "fit_window", "instrument_of", "pearson", "refine", "rw"]
