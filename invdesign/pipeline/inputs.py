"""The run's inputs: measured patterns, species, what was taken from where, and what the
generator sees of the data (each pattern on the model's grid, checked).

A generator is conditioned on a pattern on its task's fixed grid (`PatternSpec.grid()`, e.g. r =
0-60 Å for xPDF), min-max normalised. The measured range must cover that grid: a model input is
never padded with invented values. One exception is stated, not silent: G(r) of a finite particle
is zero beyond the particle's diameter, so when the data die out before their rmax (the size
estimate is not bulk-like) the rest of the grid is G(r) = 0, and a note says so. Anything else
(a bulk-like G(r) that ends before the grid does, data that start after the grid's start, an I(q)
that does not span the grid) is refused with one line naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from invdesign.core import elements
from invdesign.core.conditions import minmax, smoothed, to_model_grid
from invdesign.core.errors import DataFormatError, InvdesignError
from invdesign.core.patterns import pattern_spec
from invdesign.core.tasks import TaskSpec
from invdesign.core.validate import finite_in_range, int_in_range
from invdesign.io.composition import check_amounts, parse_composition
from invdesign.io.composition import metal_core as core_of
from invdesign.io.measured import MeasuredPattern, check_covers, check_pattern, read_pattern
from invdesign.pipeline.forward import pattern_names
from invdesign.pipeline.sizing import SizeEstimate

KINDS = ("pdf", "xrd", "saxs")
#: Most candidates one run produces (each is simulated, written and ranked).
MAX_N = 1000
#: Further header values shown with the instrument values (r range, rpoly, data format).
HEADER_KEYS = ("rmin", "rmax", "rstep", "rpoly", "dataformat", "x_unit")


@dataclass(frozen=True)
class ModelInput:
    """One measured pattern as the model receives it.

    Attributes:
        kind: 'pdf', 'xrd' or 'saxs' (the measured pattern).
        name: the task's pattern name ('xPDF', 'xrd', 'saxs', ...).
        grid: [L] the model grid (r in Å or q in Å^-1).
        values: [L] min-max normalised values on `grid`.
        note: how the data were mapped, when it needs saying (zero beyond a particle), else None.
    """

    kind: str
    name: str
    grid: np.ndarray
    values: np.ndarray
    note: str | None = None


def model_inputs(patterns: dict[str, MeasuredPattern], task: TaskSpec,
                 size: SizeEstimate | None, check: bool = True) -> dict[str, ModelInput]:
    """kind -> `ModelInput` for every pattern `task` is conditioned on.

    Args:
        patterns: kind -> measured pattern.
        task: the task of the generator that will be sampled.
        size: the size estimate of the PDF (None without a PDF).
        check: refuse ranges that do not cover the grid (`DataFormatError` naming the file). With
            False (the model is not sampled, the input is only plotted) nothing is refused.
    """
    out = {}
    for kind, name in pattern_names(patterns, task).items():
        pattern = patterns[kind]
        spec = pattern_spec(name)
        grid = spec.grid()
        note = coverage(pattern, grid, size) if check else None
        x, y = pattern.x, pattern.y
        if spec.smooth_fwhm:  # a view trained on broad peaks: the data smoothed to that width
            x, y = smoothed(x, y, spec.smooth_fwhm)
            note = ((note + "; ") if note else "") + (
                f"smoothed to the model's resolution (Gaussian FWHM {spec.smooth_fwhm:g} Å^-1)")
        values = minmax(to_model_grid(x, y, spec))
        out[kind] = ModelInput(kind, spec.name, grid, np.asarray(values), note)
    return out


def coverage(pattern: MeasuredPattern, grid: np.ndarray, size: SizeEstimate | None) -> str | None:
    """Refuse `pattern` when its range cannot cover `grid` (see the module docstring); returns the
    note for a PDF whose zero tail beyond the particle is used, else None."""
    grid_min, grid_max = float(grid[0]), float(grid[-1])
    step = float(np.median(np.diff(pattern.x)))
    starts_late = pattern.xmin > grid_min + step + 1e-9
    ends_early = pattern.xmax < grid_max - step - 1e-9
    if pattern.kind == "pdf" and ends_early and not starts_late:
        if size is None or size.bulk:
            raise DataFormatError(
                f"r range {pattern.xmin:.4g}..{pattern.xmax:.4g} Å does not cover the model grid "
                f"{grid_min:.4g}..{grid_max:.4g} Å and G(r) has not died out by "
                f"{pattern.xmax:.4g} Å (bulk-like): zero padding would invent data; give G(r) up "
                f"to {grid_max:.4g} Å", pattern.path)
        return (f"{pattern.path.name}: G(r) ends at {pattern.xmax:g} Å, the model grid at "
                f"{grid_max:g} Å; the data die out by ~{size.diameter:.0f} Å (no pairs beyond "
                f"the particle), so the model sees G(r) = 0 from {pattern.xmax:g} Å on")
    check_covers(pattern, grid_min, grid_max)
    return None


def describe(inputs: dict[str, ModelInput]) -> dict[str, Any]:
    """'<kind>.model_input' -> one line per input, for the printed 'taken' values."""
    out = {}
    for kind, inp in inputs.items():
        unit = "Å" if kind == "pdf" else "Å^-1"
        text = (f"{inp.name} grid {inp.grid[0]:g}..{inp.grid[-1]:g} {unit}, "
                f"{inp.grid.size} points, min-max normalised")
        out[f"{kind}.model_input"] = text + (f"; {inp.note}" if inp.note else "")
    return out


def check_options(n: Any, seed: Any, refine_top: Any,
                  fit_range: Any = None) -> tuple[int, int, int, tuple[float, float] | None]:
    """The run's numeric options checked where they enter `sample` (one line naming the option).
    (Diffusion `steps` are checked against the checkpoint's schedule by the sampler.)

    Args:
        n: candidates, 1..`MAX_N` (a larger run is refused with the limit, not cut short).
        seed: 0..2^32 - 1. refine_top: 1..`MAX_N`.
        fit_range: None or (lo, hi), finite, 0 <= lo < hi (Å for a PDF, Å^-1 for I(q)).
    Returns:
        (n, seed, refine_top, fit_range) as ints and floats.
    """
    n = int_in_range(n, "--n", 1, MAX_N, why=" candidates per run (run again with another --seed "
                     "for more)")
    seed = int_in_range(seed, "--seed", 0, 2**32 - 1)
    refine_top = int_in_range(refine_top, "--refine-top", 1, MAX_N)
    if fit_range is not None:
        if isinstance(fit_range, (str, bytes)) or len(fit_range) != 2:
            raise InvdesignError(f"--fit-range must be two numbers (RMIN RMAX), not {fit_range!r}")
        lo = finite_in_range(fit_range[0], "--fit-range RMIN", 0.0, None)
        hi = finite_in_range(fit_range[1], "--fit-range RMAX", 0.0, None)
        if not lo < hi:
            raise InvdesignError(f"--fit-range {lo:g} {hi:g}: RMIN must be below RMAX")
        fit_range = (lo, hi)
    return n, seed, refine_top, fit_range


def check_guidance(scale: Any, start: Any, resample_every: Any = None,
                   resample_temperature: Any = None) -> dict[str, Any]:
    """The diffusion guidance options as they enter `sample` (None: the checkpoint's): scale
    finite and >= 0, start in [0, 1], resampling every 0.. guided steps (0: never) at a
    temperature > 0; one line naming the option otherwise."""
    return {
        "guidance_scale": None if scale is None else finite_in_range(
            scale, "--guidance-scale", 0.0, None),
        "guidance_start": None if start is None else finite_in_range(
            start, "--guidance-start", 0.0, 1.0),
        "resample_every": None if resample_every is None else int_in_range(
            resample_every, "--resample-every", 0, None),
        "resample_temperature": None if resample_temperature is None else finite_in_range(
            resample_temperature, "--resample-temperature", 0.0, None, lo_open=True),
    }


def read_patterns(measured: Any) -> dict[str, Any]:
    """kind -> MeasuredPattern from a pattern, a path (a PDF) or a mapping kind -> either."""

    if not isinstance(measured, Mapping):
        measured = {"pdf": measured}
    out = {}
    for kind, value in measured.items():
        if kind not in KINDS:
            raise InvdesignError(f"unknown pattern kind {kind!r}; choose from {', '.join(KINDS)}")
        if value is None:
            continue
        out[kind] = (check_pattern(value) if isinstance(value, MeasuredPattern)
                     else read_pattern(value, kind=kind))
    if not out:
        raise InvdesignError("no measured pattern given (--pdf, --xrd or --saxs)")
    return out


def resolve_composition(composition: str | Mapping | None, patterns: dict[str, Any],
                        metal_core: bool = False) -> tuple[dict[int, float] | None, str]:
    """Atomic number -> fraction, and where it came from ('argument', '<source>, FILE', 'model')."""

    source = "argument"
    if composition is None:
        for kind in KINDS:
            pattern = patterns.get(kind)
            if pattern is not None and pattern.composition:
                origin = pattern.sources.get("composition", "header")
                composition, source = pattern.composition, f"{origin}, {pattern.path.name}"
                break
    if composition is None:
        return None, "model"
    if isinstance(composition, str):
        parsed = parse_composition(composition)
    else:
        parsed = check_amounts(
            {(elements.symbol(int(k)) if isinstance(k, (int, np.integer)) else str(k)): v
             for k, v in composition.items()}, "composition")
    if metal_core:
        parsed = core_of(parsed)
        source += ", metal core only"
    total = sum(parsed.values())
    return {elements.atomic_number(s): v / total for s, v in parsed.items()}, source


def taken_values(patterns: dict[str, Any]) -> dict[str, str]:
    """'pdf.qmax' -> '22.0 (header)' etc. for every instrument value of every pattern."""
    taken: dict[str, str] = {}
    for kind, p in patterns.items():
        taken[kind] = f"{p.path} ({p.producer}, {p.x.size} points, {p.xmin:g}..{p.xmax:g})"
        for name in ("qmin", "qmax", "qdamp", "biso", "radiation", "wavelength"):
            value = getattr(p, name)
            if value is not None:
                taken[f"{kind}.{name}"] = f"{value:g} ({p.sources.get(name, 'default')})" \
                    if isinstance(value, float) else f"{value} ({p.sources.get(name, 'default')})"
        header = {k: p.header[k] for k in HEADER_KEYS if k in p.header}
        if header:
            taken[f"{kind}.header"] = ", ".join(f"{k} = {v:g}" if isinstance(v, float)
                                                else f"{k} = {v}" for k, v in header.items())
        for i, note in enumerate(p.notes):
            taken[f"{kind}.note{i + 1}"] = note
    return taken


def format_fractions(comp: dict[int, float] | None) -> str:

    if not comp:
        return "from the model"
    return " ".join(f"{elements.symbol(z)}{v:.3g}" for z, v in comp.items())
