"""The six CHILI scattering patterns and their grids (CHILI Table 6), and the measured-range views.

Every pattern is stored as a [2, n] array: row 0 the grid (q in Å^-1 or r in Å), row 1 the values.

A view (`VIEWS`) is a task input read from a stored pattern on a narrower grid: the q range that
measured data of the kind actually cover. CHILI's `xrd` grid runs to q = 30 Å^-1 (a total-
scattering measurement); a Cu-tube powder scan ends near q = 7 Å^-1 and lab SAXS near 0.5 Å^-1,
so a model conditioned on the full grid can never take them (a model input is never padded with
invented values). `xrd_lab` (q 1.1-5 Å^-1, 2θ ≈ 16-76° with Cu Kα) and `saxs_lab` (q 0.02-0.5
Å^-1) are read from the stored `xrd` and `saxs` patterns, so every CHILI-layout folder serves
them without a rebuild. A view may state the resolution (`smooth_fwhm`, Å^-1) its training
patterns have: CHILI's XRD is of 5-25 Å-radius particles, whose peaks are 0.1 Å^-1 wide and
broader, so a measured powder pattern of large crystallites is smoothed to that width before it
is put on the grid (`invdesign.core.conditions.smoothed`).
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
        source: for a view, the stored pattern it is read from (None: stored itself).
        smooth_fwhm: for a view, the Gaussian FWHM (grid unit) measured data are smoothed to
            before they are put on the grid (None: not smoothed).
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
    source: str | None = None
    smooth_fwhm: float | None = None

    @property
    def stored(self) -> str:
        """The stored pattern (CHILI field) the values are read from."""
        return self.source or self.name

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


#: Measured-range views of stored patterns (see the module docstring); grids on the stored grids'
#: points, so reading a view is a slice.
VIEWS: dict[str, PatternSpec] = {
    spec.name: spec
    for spec in (
        PatternSpec("xrd_lab", "XRD", "iq", "xray", 1.1, 5.0, 0.05, source="xrd",
                    smooth_fwhm=0.11),
        PatternSpec("saxs_lab", "SAXS", "iq", "xray", 0.02, 0.5, 0.01, source="saxs"),
    )
}


def pattern_spec(name: str) -> PatternSpec:
    """Look up a pattern or view by name (case-insensitive: 'xpdf' -> 'xPDF')."""
    for key, spec in {**PATTERNS, **VIEWS}.items():
        if key.lower() == name.lower():
            return spec
    raise InvdesignError(f"unknown pattern {name!r}; choose from "
                         f"{', '.join([*PATTERNS, *VIEWS])}")
