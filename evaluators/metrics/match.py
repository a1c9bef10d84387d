"""The field's generation metrics for unit cells: StructureMatcher match rate and RMSE at k samples.

DiffCSP's protocol (Jiao et al. 2023, after CDVAE): pymatgen's
`StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3)` compares each sample with its test structure;
a test structure counts as matched when any of its first k samples matches, and its RMSE is that
of its best (lowest) match, as `StructureMatcher.get_rms_dist` gives it: the root-mean-square
site displacement after the best lattice and origin fit, divided by (V / n)^(1/3) (the mean
volume per site, so dimensionless). The reported RMSE is the mean over matched test structures.
Like DiffCSP, a sample whose two nearest atoms are closer than `min_distance` (0.5 Å) is not
compared (it cannot match). The valid fraction is that of `validity.check_validity` (distance rule
and composition) over all samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymatgen.analysis.structure_matcher import StructureMatcher

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.evaluators.metrics.validity import check_validity, min_distance

#: DiffCSP's StructureMatcher tolerances (site tolerance in (V / n)^(1/3), angles in degrees,
#: lattice lengths relative).
MATCHER_OPTIONS: dict[str, float] = {"stol": 0.5, "angle_tol": 10, "ltol": 0.3}
#: Å, DiffCSP's structural validity: samples with a closer pair are not compared
MIN_DISTANCE = 0.5


def matcher() -> StructureMatcher:
    """pymatgen's matcher with DiffCSP's tolerances (`MATCHER_OPTIONS`)."""
    return StructureMatcher(**MATCHER_OPTIONS)


@dataclass(frozen=True)
class Match:
    """One test structure against its samples.

    Attributes:
        rms: [k] normalised RMS displacement of each sample (None: no match, or not compared).
    """

    rms: tuple[float | None, ...]

    def best(self, k: int) -> float | None:
        """The lowest RMS among the first k samples (None: none of them matches)."""
        found = [r for r in self.rms[:k] if r is not None]
        return min(found) if found else None


def match_structure(samples: Sequence[Structure], truth: Structure,
                    sm: StructureMatcher | None = None,
                    min_dist: float | None = MIN_DISTANCE) -> Match:
    """Compare every sample (unit cells) with `truth`; see the module docstring."""
    if truth.cell is None or any(s.cell is None for s in samples):
        raise InvdesignError("the match rate compares unit cells; got a particle")
    sm = sm or matcher()
    target = truth.to_pymatgen()
    out: list[float | None] = []
    for s in samples:
        if min_dist is not None and s.n_atoms > 1 and min_distance(s) < min_dist:
            out.append(None)
            continue
        found = sm.get_rms_dist(s.to_pymatgen(), target)
        out.append(None if found is None else float(found[0]))
    return Match(tuple(out))


def match_summary(matches: Sequence[Match], k: int) -> dict[str, Any]:
    """{'k', 'n', 'match_rate' (fraction of test structures with a match among their first k
    samples), 'rmse' (mean best RMS over the matched ones; None when none matched)}."""
    if k < 1 or any(len(m.rms) < k for m in matches):
        raise InvdesignError(f"k = {k} needs at least k samples per test structure")
    best = [m.best(k) for m in matches]
    found = [b for b in best if b is not None]
    return {"k": k, "n": len(matches),
            "match_rate": len(found) / len(matches) if matches else None,
            "rmse": float(np.mean(found)) if found else None}


def valid_fraction(samples: Sequence[Sequence[Structure]],
                   compositions: Sequence[dict[int, float] | None] | None = None) -> float:
    """Fraction of all samples (per test structure a list) that `check_validity` passes, with the
    test structure's composition when given (atomic number -> amount)."""
    comps = compositions if compositions is not None else [None] * len(samples)
    flags = [check_validity(s, comp).valid
             for group, comp in zip(samples, comps, strict=True) for s in group]
    if not flags:
        raise InvdesignError("no samples to check")
    return sum(flags) / len(flags)


def composition_of(s: Structure) -> dict[int, float]:
    """Atomic number -> count of a structure (the composition a sample should keep)."""
    z, counts = np.unique(s.species, return_counts=True)
    return {int(a): float(c) for a, c in zip(z, counts, strict=True)}
