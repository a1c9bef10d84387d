"""Agreement between a measured and a calculated pattern (PDF community conventions).

Rw = sqrt(sum (y_obs - s y_calc)^2 / sum y_obs^2), with the scale
s = sum y_obs y_calc / sum y_calc^2 fitted by least squares (unweighted); Pearson r is scale-free.
All functions work on the last axis of torch tensors ([..., n]), are differentiable, and accept
numpy arrays (returned as tensors).
"""

from __future__ import annotations

import numpy as np
import torch

Array = np.ndarray | torch.Tensor


def _t(a: Array) -> torch.Tensor:
    return a if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a, dtype=np.float64))


def fit_scale(obs: Array, calc: Array) -> torch.Tensor:
    """[...] least-squares scale s minimising sum (obs - s calc)^2 (0 when calc is all zero)."""
    obs, calc = _t(obs), _t(calc)
    obs = obs.to(calc.dtype)
    den = (calc * calc).sum(-1)
    return (obs * calc).sum(-1) / torch.where(den > 0, den, torch.ones_like(den))


def rw(obs: Array, calc: Array, scale: Array | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(Rw [...], scale [...]) of calc against obs; the scale is fitted when not given."""
    obs, calc = _t(obs), _t(calc)
    obs = obs.to(calc.dtype)
    s = fit_scale(obs, calc) if scale is None else _t(scale).to(calc.dtype)
    resid = obs - s.unsqueeze(-1) * calc
    return torch.sqrt((resid * resid).sum(-1) / (obs * obs).sum(-1)), s


def pearson(obs: Array, calc: Array) -> torch.Tensor:
    """[...] Pearson correlation coefficient of obs and calc (0 for a constant curve)."""
    obs, calc = _t(obs), _t(calc)
    obs = obs.to(calc.dtype)
    a = obs - obs.mean(-1, keepdim=True)
    b = calc - calc.mean(-1, keepdim=True)
    den = torch.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    return (a * b).sum(-1) / torch.where(den > 0, den, torch.ones_like(den))
