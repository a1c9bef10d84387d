"""Scattering patterns of structures with DebyeCalculator, as tensors on the chosen device.

Only this package imports `debyecalculator`. Results stay on the device (`keep_on_device=True`) so gradients
flow back to positions when they require grad.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from invdesign.data.patterns import PATTERNS, PatternSpec
from invdesign.structure import Structure


@lru_cache(maxsize=32)
def _calculator(spec: PatternSpec, device: str, dtype: torch.dtype):
    from debyecalculator import DebyeCalculator

    kwargs = dict(qmin=spec.qmin, qmax=spec.qmax, qstep=spec.qstep, biso=spec.biso, device=device,
                  radiation_type=spec.radiation, dtype=dtype)
    if spec.function == "gr":
        kwargs.update(rmin=spec.rmin, rmax=spec.rmax, rstep=spec.rstep)
    return DebyeCalculator(**kwargs)


def simulate(structure: Structure, spec: PatternSpec, device: str = "cpu",
             dtype: torch.dtype = torch.float32) -> np.ndarray:
    """Pattern `spec` of a (finite) structure -> [2, n] array: grid row, value row.

    Unit cells are simulated as the finite set of atoms given (no periodic images), as DebyeCalculator does.
    """
    calc = _calculator(spec, device, dtype)
    source = (structure.symbols, torch.as_tensor(structure.positions, dtype=dtype, device=device))
    fn = calc.gr if spec.function == "gr" else calc.iq
    grid, values = fn(source)
    grid, values = np.asarray(grid, dtype=np.float64), np.asarray(values, dtype=np.float64)
    n = spec.n_points
    return np.stack([grid[:n], values[:n]])


def simulate_all(structure: Structure, names: tuple[str, ...] = tuple(PATTERNS),
                 device: str = "cpu") -> dict[str, np.ndarray]:
    """All requested CHILI patterns (default: the six of Table 6) of a structure."""
    return {name: simulate(structure, PATTERNS[name], device) for name in names}
