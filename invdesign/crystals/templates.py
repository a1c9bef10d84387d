"""Candidate particles of a metal oxide from the 12 CHILI-3K crystal types (known structures).

For a composition of one metal M and oxygen, every CHILI-3K crystal type whose formula has the
same O:M ratio is built with the builder's lattice estimate (`invdesign.crystals.crystal_types`)
and cut with DebyeCalculator's cutter at diameters around the size read off the data. This is the
compound counterpart of `packings`: a safety net beside a generator, never a replacement.
"""

from __future__ import annotations

from collections.abc import Iterator

from invdesign.core import elements
from invdesign.core.structure import Structure
from invdesign.crystals.crystal_types import CHILI3K_METALS, CRYSTAL_TYPES, unit_cell
from invdesign.crystals.cuts import cut_cells
from invdesign.crystals.packings import SIZE_STEPS

OXYGEN = 8
RATIO_TOLERANCE = 0.05


def matching_types(composition: dict[int, float] | None) -> list[str]:
    """CHILI-3K crystal types of a one-metal oxide with the composition's O:M ratio ([] if none)."""

    if not composition or set(composition) - {OXYGEN} == set() or OXYGEN not in composition:
        return []
    metals = [z for z in composition if z != OXYGEN]
    if len(metals) != 1 or elements.symbol(metals[0]) not in CHILI3K_METALS:
        return []
    ratio = composition[OXYGEN] / composition[metals[0]]
    return [name for name, t in CRYSTAL_TYPES.items()
            if abs(t.n_oxygen / t.n_metal - ratio) <= RATIO_TOLERANCE * max(ratio, 1.0)]


def template_candidates(composition: dict[int, float], diameter: float, n: int,
                        device: str = "cpu") -> Iterator[Structure]:
    """Up to `n` particles: each matching crystal type cut at `diameter` Å, then at the other
    `SIZE_STEPS` multiples of it. Yields them as they are cut."""

    types = matching_types(composition)
    if not types:
        return
    metal = elements.symbol(next(z for z in composition if z != OXYGEN))
    cells = {name: unit_cell(name, metal) for name in types}
    made = 0
    for size in SIZE_STEPS:
        for name, cell in cells.items():
            if made == n:
                return
            for particle in cut_cells([cell], diameter * size, device):
                particle.info.update({"source": "crystal_type", "shape": name})
                made += 1
                yield particle
