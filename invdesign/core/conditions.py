"""Turning patterns (simulated or measured) into model-ready conditions.

Every generator sees a pattern the way CHILI's baselines do: the value row only, on the task's fixed
grid (`PatternSpec.grid()`), min-max normalised to [0, 1] per sample.

Mapping a pattern recorded on another grid (`to_model_grid`):
1. the grid x must be finite and strictly increasing after sorting (duplicates are an error);
2. the recorded range must overlap the model grid in at least `min_points` grid points, else the
   pattern is on the wrong variable or unit (a q grid in nm^-1, an r grid in nm) and
   `InvdesignError` names both ranges;
3. values are linearly interpolated (`numpy.interp`) at the grid points inside the recorded range;
4. grid points outside the recorded range get `fill` (default 0: no signal); a PDF measured to 30 Å
   thus reads as G(r) = 0 beyond 30 Å on the 0-60 Å xPDF grid, as for a particle smaller than 30 Å.
Normalisation comes after the mapping, so a pattern's absolute scale never matters.

A measured pattern for a view that states a resolution (`PatternSpec.smooth_fwhm`) is first
smoothed to it (`smoothed`): a Gaussian of that FWHM on a uniform grid of the recorded range.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from invdesign.core.errors import InvdesignError
from invdesign.core.patterns import PatternSpec, pattern_spec
from invdesign.core.tasks import Condition, TaskSpec

ArrayLike = np.ndarray | torch.Tensor


def minmax(values: ArrayLike) -> ArrayLike:
    """Min-max normalise along the last axis (CHILI): (v - min) / (max - min), per sample.

    Works on numpy arrays and torch tensors of shape [..., L]. A constant row has no information and
    becomes zeros (CHILI would divide by zero).
    """
    if isinstance(values, torch.Tensor):
        lo = values.amin(dim=-1, keepdim=True)
        span = values.amax(dim=-1, keepdim=True) - lo
        return torch.where(span > 0, (values - lo) / torch.where(span > 0, span, 1), 0.0)
    values = np.asarray(values, dtype=np.float64)
    lo = values.min(axis=-1, keepdims=True)
    span = values.max(axis=-1, keepdims=True) - lo
    safe = np.where(span > 0, span, 1.0)
    return np.where(span > 0, (values - lo) / safe, 0.0)


#: Points per FWHM of the uniform grid a pattern is smoothed on.
SMOOTH_POINTS = 10
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def smoothed(x: ArrayLike, y: ArrayLike, fwhm: float) -> tuple[np.ndarray, np.ndarray]:
    """y(x) convolved with a Gaussian of full width `fwhm` (x's unit), on a uniform grid of the
    recorded range (the recorded grid may be non-uniform, e.g. a 2θ scan converted to q) with the
    recorded median step, or `SMOOTH_POINTS` per FWHM when that is finer (a coarser grid would
    miss sharp peaks). Edges are mirrored. Returns (grid, values)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if not (np.isfinite(fwhm) and fwhm > 0):
        raise InvdesignError(f"smoothing width must be positive and finite, got {fwhm!r}")
    order = np.argsort(x)
    x, y = x[order], y[order]
    step = min(fwhm / SMOOTH_POINTS, float(np.median(np.diff(x))) or fwhm / SMOOTH_POINTS)
    grid = np.arange(x[0], x[-1] + 0.5 * step, step)
    values = gaussian_filter1d(np.interp(grid, x, y), fwhm / FWHM_PER_SIGMA / step, mode="mirror")
    return grid, values


def to_model_grid(
    x: ArrayLike, y: ArrayLike, spec: PatternSpec | str, *, min_points: int = 10, fill: float = 0.0
) -> np.ndarray:
    """Interpolate a pattern y(x) onto the grid of `spec` (see the module docstring for the rules).

    Args:
        x: [n] grid of the recorded pattern, in the spec's unit (q in Å^-1 or r in Å).
        y: [n] values.
        spec: the pattern type (or its CHILI name) whose grid the model uses.
        min_points: least number of model grid points that must fall inside the recorded range.
        fill: value for grid points outside the recorded range.

    Returns:
        [L] float64 values on `spec.grid()` (not normalised).
    """
    spec = pattern_spec(spec) if isinstance(spec, str) else spec
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise InvdesignError(f"{spec.name} pattern: {x.size} grid points but {y.size} values")
    if x.size < 2:
        raise InvdesignError(f"{spec.name} pattern: needs at least 2 points, got {x.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise InvdesignError(f"{spec.name} pattern contains NaN or inf")
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if np.any(np.diff(x) <= 0):
        raise InvdesignError(f"{spec.name} pattern: repeated {spec.grid_name} values in the grid")
    grid = spec.grid()
    inside = (grid >= x[0]) & (grid <= x[-1])
    if int(inside.sum()) < min_points:
        unit = "Å" if spec.grid_name == "r" else "Å^-1"
        raise InvdesignError(
            f"{spec.name} pattern covers {spec.grid_name} = {x[0]:.4g}..{x[-1]:.4g} but the model "
            f"grid is {grid[0]:.4g}..{grid[-1]:.4g} {unit}: only {int(inside.sum())} grid points "
            f"overlap (need {min_points}); wrong unit or pattern type?"
        )
    out = np.full(grid.shape, float(fill))
    out[inside] = np.interp(grid[inside], x, y)
    return out


def on_model_grid(pattern: np.ndarray, spec: PatternSpec | str) -> np.ndarray:
    """Values of a stored [2, n] pattern on the model grid: the value row as is when the stored grid
    is the model grid (all CHILI files), else interpolated with `to_model_grid`. Returns [L]."""
    spec = pattern_spec(spec) if isinstance(spec, str) else spec
    pattern = np.asarray(pattern)
    if pattern.ndim != 2 or pattern.shape[0] != 2:
        raise InvdesignError(
            f"{spec.name} pattern must be [2, n] (grid row, value row), got {pattern.shape}"
        )
    grid = spec.grid()
    if pattern.shape[1] == grid.size and np.allclose(
        pattern[0], grid, atol=1e-3 * (grid[1] - grid[0])
    ):
        return pattern[1].astype(np.float64)
    return to_model_grid(pattern[0], pattern[1], spec)


def prepare_condition(
    patterns: Mapping[str, tuple[ArrayLike, ArrayLike]],
    task: TaskSpec,
    composition: Mapping[int, float] | None = None,
    cell_params: ArrayLike | None = None,
    n_atoms: int | None = None,
) -> Condition:
    """A one-item `Condition` for `task` from patterns given as name -> (x, y) on any grid.

    Args:
        patterns: exactly the task's input patterns (names case-insensitive), each (x [n], y [n]).
        task: the task the generator was trained for.
        composition: optional atomic number -> fraction of atoms (normalised here).
        cell_params: optional [6] a, b, c (Å), alpha, beta, gamma (deg).
        n_atoms: optional known number of atoms.
    """
    given = {pattern_spec(name).name: value for name, value in patterns.items()}
    missing = [p for p in task.patterns if p not in given]
    extra = [p for p in given if p not in task.patterns]
    if missing or extra:
        raise InvdesignError(
            f"task {task.name} needs patterns {', '.join(task.patterns)}; "
            f"missing: {', '.join(missing) or '-'}, unexpected: {', '.join(extra) or '-'}"
        )
    tensors: dict[str, torch.Tensor] = {}
    for name in task.patterns:
        x, y = given[name]
        values = to_model_grid(x, y, name)
        if np.ptp(values) == 0:
            raise InvdesignError(
                f"{name} pattern is constant on the model grid: nothing to condition on"
            )
        tensors[name] = torch.as_tensor(minmax(values), dtype=torch.float32).unsqueeze(0)
    comp = None
    if composition is not None:
        comp = [normalise_composition(composition)]
    cell = None
    if cell_params is not None:
        cell = torch.as_tensor(np.asarray(cell_params, dtype=np.float32).reshape(1, 6))
    counts = None if n_atoms is None else torch.tensor([int(n_atoms)], dtype=torch.long)
    if counts is not None and not 1 <= int(counts[0]) <= task.max_atoms:
        raise InvdesignError(
            f"n_atoms={n_atoms} is outside 1..{task.max_atoms} for task {task.name}"
        )
    return Condition(tensors, comp, cell, counts)


def normalise_composition(composition: Mapping[int, float]) -> dict[int, float]:
    """Atomic number -> fraction summing to 1; raises on negative or empty compositions."""
    comp = {int(z): float(f) for z, f in composition.items() if float(f) != 0.0}
    if not comp or any(f < 0 for f in comp.values()) or any(not 1 <= z <= 118 for z in comp):
        raise InvdesignError(
            f"bad composition {dict(composition)}: need atomic numbers 1..118 with "
            "positive fractions"
        )
    total = sum(comp.values())
    return {z: f / total for z, f in sorted(comp.items())}
