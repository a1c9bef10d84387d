"""Forward simulation: candidates' patterns on the measured grid (DebyeCalculator), Rw and Pearson r
(`ForwardEvaluator`, registered as 'forward' when the package is imported: the registry does it
on the first lookup of 'forward'), and gradient-based refinement (`refine`); attenuated crystals
(unit cell x sphere, PDFfit2's model): `screen_crystal`, `refine_crystal`, `crystal_curve`."""

from invdesign.evaluators.forward.crystal_fit import (
    CrystalFit,
    crystal_curve,
    refine_crystal,
    screen_crystal,
)
from invdesign.evaluators.forward.evaluator import (
    DEFAULT_FIT_RANGE,
    FitCurve,
    ForwardEvaluator,
    fit_window,
    instrument_of,
)
from invdesign.evaluators.forward.refine import RefineResult, refine
from invdesign.evaluators.metrics.pattern import fit_scale, pearson, rw

__all__ = ["DEFAULT_FIT_RANGE", "CrystalFit", "FitCurve", "ForwardEvaluator", "RefineResult",
           "crystal_curve", "fit_scale", "fit_window", "instrument_of", "pearson", "refine",
           "refine_crystal", "rw", "screen_crystal"]
