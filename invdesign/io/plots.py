"""Pictures of measured data: the original pattern against the version the model sees."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np

from invdesign.io.atomic import atomic_path
from invdesign.io.measured import MeasuredPattern


def plot_model_input(pattern: MeasuredPattern, model_x: np.ndarray, model_y: np.ndarray,
                     out: str | PathLike, label: str = "model input") -> Path:
    """Save a png: the measured data (scaled to [0, 1]) against the model-ready values.

    Args:
        pattern: the measured pattern as read.
        model_x: [L] the model grid (r in Å or q in Å^-1).
        model_y: [L] the values the model receives on that grid (e.g. min-max normalised).
        out: png path; written atomically (temporary file + rename).
    """
    import matplotlib  # noqa: PLC0415 - lazy: matplotlib loads only when a plot is written (CLI start-up)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - lazy: as above

    out = Path(out)
    y = pattern.y
    span = float(y.max() - y.min()) or 1.0
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(pattern.x, (y - y.min()) / span, lw=1.0, label=f"{pattern.path.name} (min-max scaled)")
    ax.plot(np.asarray(model_x), np.asarray(model_y), lw=1.0, ls="--", label=label)
    ax.set_xlabel("r (Å)" if pattern.kind == "pdf" else "q (Å$^{-1}$)")
    ax.set_ylabel("scaled value")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
    finally:
        plt.close(fig)
    return out
