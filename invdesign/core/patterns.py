"""The six CHILI scattering patterns and their grids (CHILI Table 6).

Every pattern is stored as a [2, n] array: row 0 the grid (q in Å^-1 or r in Å), row 1 the values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from invdesign.core.errors import InvdesignError

Radiation = Literal["xray", "neutron"]


@dataclass(frozen=True)
class PatternSpec:
    """Simulation parameters and grid of one pattern type.

    Attributes:
        name: CHILI field name ('saxs', 'sans', 'xrd', 'nd', 'xPDF', 'nPDF').
        h5_name: dataset name in the official HDF5 `ScatteringData/<size>/` group.
        function: 'iq' (intensity I(q) on a q grid) or 'gr' (reduced PDF G(r) on an r grid).
        radiation: 'xray' or 'neutron'.
        qmin, qmax, qstep: Å^-1; for 'gr' the q range of the Fourier transform.
        rmin, rmax, rstep: Å, only for 'gr'.
        biso: Å^2, isotropic displacement used for all atoms.
    """

    name: str
    h5_name: str
    function: Literal["iq", "gr"]
    radiation: Radiation
    qmin: float
    qmax: float
    qstep: float
    rmin: float | None = None
    rmax: float | None = None
    rstep: float | None = None
    biso: float = 0.3

    @property
    def grid_name(self) -> str:
        return "r" if self.function == "gr" else "q"

    @property
    def n_points(self) -> int:
        lo, hi, step = self._grid_params()
        return int(round((hi - lo) / step))

    def _grid_params(self) -> tuple[float, float, float]:
        if self.function == "gr":
            assert self.rmin is not None and self.rmax is not None and self.rstep is not None
            return self.rmin, self.rmax, self.rstep
        return self.qmin, self.qmax, self.qstep

    def grid(self) -> np.ndarray:
        """[n] the grid as DebyeCalculator produces it: lo, lo + step, ..., hi - step."""
        lo, _, step = self._grid_params()
        return lo + step * np.arange(self.n_points)


PATTERNS: dict[str, PatternSpec] = {
    spec.name: spec
    for spec in (
        PatternSpec("saxs", "SAXS", "iq", "xray", 0.0, 3.0, 0.01),
        PatternSpec("sans", "SANS", "iq", "neutron", 0.0, 3.0, 0.01),
        PatternSpec("xrd", "XRD", "iq", "xray", 1.0, 30.0, 0.05),
        PatternSpec("nd", "ND", "iq", "neutron", 1.0, 30.0, 0.05),
        PatternSpec("xPDF", "xPDF", "gr", "xray", 1.0, 30.0, 0.05, 0.0, 60.0, 0.01),
        PatternSpec("nPDF", "nPDF", "gr", "neutron", 1.0, 30.0, 0.05, 0.0, 60.0, 0.01),
    )
}


def pattern_spec(name: str) -> PatternSpec:
    """Look up a pattern by CHILI name (case-insensitive: 'xpdf' -> 'xPDF')."""
    for key, spec in PATTERNS.items():
        if key.lower() == name.lower():
            return spec
    raise InvdesignError(f"unknown pattern {name!r}; choose from {', '.join(PATTERNS)}")
