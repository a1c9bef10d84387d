"""Ranking crystal candidates against one powder pattern: screens, indexed starts, refinements.

`rank_powder` screens every candidate (`screen_powder`: the candidate's radii-scaled lattice, its
intensities) and refines the best `refine_top` screens. A candidate whose coordinates fit the
intensities badly can screen poorly even when its cell is right, and its radii-scaled cell may
be further off than the screen's scans reach. So each candidate is also indexed
(`powder_index.index_cell`: its crystal system and extinctions, the pattern's peak positions
only); one that indexes significantly (at least `MIN_SIGNIFICANCE`, -log10 of the chance of
indexing as many lines) is screened again from the indexed lattice, the better screen counting
(`screen_candidate`), and up to `INDEX_TOP` of the most significant whose screen is not among the
best are refined from their indexed lattice as well. The refined fits rank by Rwp (Hamilton's test
between fits of one structure, `powder_parsimony`), then the rest by screen Rwp. `sample --xrd`
(`pipeline.xrd.PowderRanker`) uses the same steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from invdesign.core.structure import Structure
from invdesign.evaluators.forward.powder_fit import (
    LATTICE_RANGE,
    PowderData,
    PowderFit,
    powder_data,
    refine_powder,
    screen_powder,
)
from invdesign.evaluators.forward.powder_index import (
    IndexResult,
    Lines,
    index_cell,
    observed_peaks,
)
from invdesign.evaluators.forward.powder_parsimony import parsimonious
from invdesign.evaluators.forward.powder_pattern import reflections
from invdesign.io.measured import MeasuredPattern

#: Candidates refined from their indexed cell beyond the best screens, and the significance
#: (-log10 P(chance)) their indexing needs.
INDEX_TOP = 2
MIN_SIGNIFICANCE = 5.0
#: Lattice scan of the screen from an indexed cell (relative): the cell is known to this order.
INDEXED_RANGE = 0.02
#: Reflections are listed down to this fraction of the data's smallest d (the search's reach).
DMIN_MARGIN = 0.7


@dataclass
class IndexedStart:
    """A candidate's indexed cell and its screen from there."""

    index: IndexResult
    cell: Structure
    screen: PowderFit


def pattern_lines(data: PowderData) -> Lines:
    """The observed lines of a powder pattern (`powder_index.observed_peaks`)."""
    return observed_peaks(data.two_theta, data.y, data.weight, data.wavelengths)


def indexed_start(cell: Structure, data: PowderData, lines: Lines) -> IndexedStart | None:
    """`cell` (its conventional cell) indexed on `lines` and screened from the indexed lattice;
    None when it is not indexed (triclinic, too few lines) or not significantly."""
    refl = reflections(cell, data.dmin * DMIN_MARGIN)
    result = index_cell(refl, lines)
    if result is None or result.significance < MIN_SIGNIFICANCE:
        return None
    conv = refl.cell
    species = np.array([site.specie.Z for site in conv])
    start = Structure.from_cell_parameters(species, conv.frac_coords, result.lattice,
                                           **dict(cell.info))
    return IndexedStart(result, start,
                        screen_powder(start, data, lattice_range=INDEXED_RANGE))


def screen_candidate(cell: Structure, data: PowderData, lines: Lines | None,
                     lattice_range: float = LATTICE_RANGE,
                     ) -> tuple[Structure, PowderFit, IndexedStart | None]:
    """The screen of `cell` from its own lattice and (with `lines`, when it indexes them
    significantly) from the indexed lattice: (the cell the better screen started from, that
    screen, the indexed start or None)."""
    fit = screen_powder(cell, data, lattice_range=lattice_range)
    start = None if lines is None else indexed_start(cell, data, lines)
    if start is not None and start.screen.rwp < fit.rwp:
        return start.cell, start.screen, start
    return cell, fit, start


def index_picks(starts: dict[int, IndexedStart], taken: set[int], k: int = INDEX_TOP,
                ) -> list[int]:
    """Up to `k` keys of `starts` not in `taken`, the most significant indexing first."""
    order = sorted((i for i in starts if i not in taken),
                   key=lambda i: (starts[i].index.key(), i))
    return order[:k]


def rank_powder(cells: list[Structure], measured: MeasuredPattern | PowderData, *,
                refine_top: int = 5, index_top: int = INDEX_TOP,
                **options: Any) -> list[tuple[int, PowderFit]]:
    """Screen every cell (from its own lattice and, when it indexes the pattern significantly,
    from the indexed lattice; the better screen counts), refine the `refine_top` best screens and
    up to `index_top` further cells from their indexed lattice; (index into `cells`, fit): the
    refined ones first by Rwp (a simpler fit of the same structure ahead of one with more
    parameters whose lower Rwp is not significant, `powder_parsimony`), then the others by screen
    Rwp."""
    two_theta_range = options.pop("two_theta_range", None)
    data = measured if isinstance(measured, PowderData) else powder_data(measured,
                                                                         two_theta_range)
    lattice_range = options.get("lattice_range", LATTICE_RANGE)
    lines = pattern_lines(data) if index_top > 0 else None
    starts: dict[int, IndexedStart] = {}
    screens: list[tuple[int, Structure, PowderFit]] = []
    for i, cell in enumerate(cells):
        start_cell, fit, start = screen_candidate(cell, data, lines, lattice_range)
        if start is not None:
            starts[i] = start
        screens.append((i, start_cell, fit))
    screens.sort(key=lambda item: item[2].rwp)
    chosen = screens[:refine_top]
    picks = set(index_picks(starts, {i for i, _, _ in chosen}, index_top))
    chosen += [(i, starts[i].cell, starts[i].screen) for i in sorted(picks)]
    refined = sorted(((i, refine_powder(cell, data, start=fit, **options))
                      for i, cell, fit in chosen), key=lambda item: item[1].rwp)
    order = parsimonious([fit for _, fit in refined])
    done = {i for i, _ in refined}
    return [refined[k] for k in order] + [(i, fit) for i, _, fit in screens if i not in done]
