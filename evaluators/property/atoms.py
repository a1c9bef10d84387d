"""CGCNN-style element features, an optional addition to the models' learned per-element embedding.

CGCNN and CrysToGraph (seeds/001) start from 92 curated one-hot element features, which let a
model trained on a few thousand structures share what it learns between chemically similar
elements; a bare learned embedding must learn every element from its own occurrences only.
`element_feature_table()` builds the same kind of encoding from pymatgen's element data: one-hot
group (18), period (7) and block (4), and 10-bin one-hots of Pauling electronegativity, atomic
radius (Å), first ionisation energy (eV), electron affinity (eV) and log molar volume (cm^3/mol).
A missing value leaves its block all zero. The table is kept in the model as a buffer, so a
checkpoint carries the exact features it was trained with.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import numpy as np
import torch
from pymatgen.core import Element
from torch import nn

N_ELEMENTS = 100
BLOCKS = ("s", "p", "d", "f")
N_BINS = 10
# (name, lower edge, upper edge) of each binned property; values outside are clipped to the end bins
BINNED = (
    ("electronegativity", 0.7, 4.0),
    ("atomic_radius", 0.25, 2.6),
    ("ionisation_energy", 3.5, 25.0),
    ("electron_affinity", -1.0, 3.7),
    ("log_molar_volume", math.log(4.0), math.log(75.0)),
)
N_ELEMENT_FEATURES = 18 + 7 + len(BLOCKS) + N_BINS * len(BINNED)


def _properties(z: int) -> dict[str, float | None]:

    element = Element.from_Z(z)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "No data available for ..." on heavy elements

        def get(fn):
            try:
                value = fn()
                return None if value is None else float(value)
            except (ValueError, TypeError, AttributeError, IndexError, KeyError):
                return None

        molar = get(lambda: element.molar_volume)
        return {
            "group": get(lambda: element.group),
            "period": get(lambda: element.row),
            "block": element.block,
            "electronegativity": get(lambda: element.X if element.X == element.X else None),
            "atomic_radius": get(lambda: element.atomic_radius),
            "ionisation_energy": get(lambda: element.ionization_energies[0]),
            "electron_affinity": get(lambda: element.electron_affinity),
            "log_molar_volume": None if not molar else math.log(molar),
        }


def _one_hot(index: int | None, size: int) -> list[float]:
    row = [0.0] * size
    if index is not None and 0 <= index < size:
        row[index] = 1.0
    return row


def _binned(value: float | None, lo: float, hi: float) -> list[float]:
    if value is None:
        return [0.0] * N_BINS
    index = int(np.clip((value - lo) / (hi - lo) * N_BINS, 0, N_BINS - 1))
    return _one_hot(index, N_BINS)


@lru_cache(maxsize=1)
def element_feature_table() -> np.ndarray:
    """[N_ELEMENTS + 1, N_ELEMENT_FEATURES] float32; row z holds element z (row 0 is all zero)."""
    table = np.zeros((N_ELEMENTS + 1, N_ELEMENT_FEATURES), dtype=np.float32)
    for z in range(1, N_ELEMENTS + 1):
        p = _properties(z)
        group = None if p["group"] is None else int(p["group"]) - 1
        period = None if p["period"] is None else int(p["period"]) - 1
        block = BLOCKS.index(p["block"]) if p["block"] in BLOCKS else None
        row = _one_hot(group, 18) + _one_hot(period, 7) + _one_hot(block, len(BLOCKS))
        for name, lo, hi in BINNED:
            row += _binned(p[name], lo, hi)
        table[z] = row
    return table


class AtomFeatureInput(nn.Module):
    """atom_fea [N, n] -> [N, dim]: per-atom features from outside the model (CHGNet's atom
    features, module `potential`), layer-normalised then mapped linearly (added to the embedding),
    so no scaler has to travel with a checkpoint."""

    def __init__(self, n: int, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(n)
        self.linear = nn.Linear(n, dim)

    def forward(self, atom_fea: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(atom_fea))


class ElementFeatures(nn.Module):
    """z [N] -> [N, dim]: a linear map of the element feature table (added to the models' learned
    embedding)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("table", torch.as_tensor(element_feature_table()))
        self.linear = nn.Linear(N_ELEMENT_FEATURES, dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.linear(self.table[z.clamp(max=N_ELEMENTS)])
