"""PDFgui-readable fit files (`.fgr`): the calculated G(r) with the difference to the data."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np

from invdesign.io.atomic import atomic_write_text


def write_fgr(path: str | PathLike, r: np.ndarray, g_calc: np.ndarray, g_obs: np.ndarray,
              *, radiation: str = "xray", qmax: float | None = None, qdamp: float = 0.0,
              scale: float = 1.0, fit_range: tuple[float, float] | None = None,
              comment: str = "") -> Path:
    """Write r, Gcalc, dr, dGcalc, Gdiff as PDFgui's `FitDataSet.writeCalcStr` lays it out.

    Args:
        r: [n] Å; g_calc: [n] the scaled calculated G(r); g_obs: [n] the measured G(r) on `r`.
        The file is written atomically; reading it back gives Gobs = Gcalc + Gdiff.
    """
    path = Path(path)
    lines = [f"History written by invdesign {comment}".rstrip(), "produced by invdesign",
             "##### PDFgui fit", "stype=N  neutron scattering" if radiation == "neutron"
             else "stype=X  x-ray scattering"]
    if qmax:
        lines.append(f"qmax={qmax:.2f}")
    lines += [f"qdamp={qdamp:g}", "qbroad=0", f"dscale={scale:g}"]
    if fit_range is not None:
        lines += [f"fitrmin={fit_range[0]:g}", f"fitrmax={fit_range[1]:g}"]
    lines += ["##### start data", "#L r(A) G(r) d_r d_Gr Gdiff"]
    r, g_calc, g_obs = (np.asarray(a, dtype=np.float64) for a in (r, g_calc, g_obs))
    lines += [f"{a:g} {c:.8g} 0.0 0 {o - c:.8g}" for a, c, o in zip(r, g_calc, g_obs, strict=True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, "\n".join(lines) + "\n")
