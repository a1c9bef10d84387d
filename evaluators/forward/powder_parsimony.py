"""Hamilton's R-factor ratio test between powder fits of one structure with different parameters.

A lower-symmetry description of a structure (CaCl2-type for rutile, a P2_1 ordering for a
P6_3mc one) always fits at least as well as the higher-symmetry one: its extra free lattice
parameters and coordinates absorb noise. Crystallographers keep the simpler model unless the
better fit is significant: Hamilton's test (Acta Cryst. 18, 502, 1965) compares the ratio of the
weighted R factors with R_crit = sqrt(1 + b / (n - m) F(b, n - m; 1 - alpha)), b the extra
parameters, n the data points, m the larger model's parameters.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from scipy.stats import f as f_dist

from invdesign.crystals.dedup import same_structure

#: Significance level of the test.
ALPHA = 0.05


def hamilton_ratio(extra: int, dof: int, alpha: float = ALPHA) -> float:
    """The R-factor ratio above which `extra` more parameters improve a fit with `dof` degrees of
    freedom (data points less parameters) significantly at level `alpha`."""
    if extra < 1 or dof < 1:
        raise ValueError(f"Hamilton's test needs extra >= 1 and dof >= 1, not {extra}, {dof}")
    return math.sqrt(1.0 + extra / dof * float(f_dist.ppf(1.0 - alpha, extra, dof)))


def parsimonious(fits: Sequence[Any], alpha: float = ALPHA) -> list[int]:
    """Order of `fits` (objects with `rwp`, `n_params`, `n_points`, `cell`; given best Rwp
    first): a fit moves ahead of every better-Rwp fit that has more parameters, describes the same
    structure (`crystals.dedup.same_structure` of the fitted cells) and is not significantly
    better by Hamilton's test. Fits of different structures keep their Rwp order."""
    order = list(range(len(fits)))
    for _ in range(len(fits) ** 2 + 1):  # each move puts a simpler fit earlier; bounded anyway
        moved = False
        for a, b in itertools.combinations(range(len(order)), 2):
            rich, simple = fits[order[a]], fits[order[b]]
            extra = rich.n_params - simple.n_params
            dof = rich.n_points - rich.n_params
            if extra < 1 or dof < 1 or not rich.rwp > 0:
                continue
            if simple.rwp / rich.rwp > hamilton_ratio(extra, dof, alpha):
                continue  # the richer fit is significantly better
            if same_structure(rich.cell, simple.cell):
                order.insert(a, order.pop(b))
                moved = True
                break
        if not moved:
            break
    return order
