"""`rank_powder` on candidate sets where the structure types differ only by which element sits
on which sites."""

from __future__ import annotations

import pytest

from invdesign.crystals.anti import role_swaps
from invdesign.crystals.library import builtin_types, composition_of, typed_cells
from invdesign.evaluators.forward.powder_rank import rank_powder


def test_an_anti_nias_pattern_ranks_anti_nias_before_nias(simulate_powder):
    """FeS with S on NiAs's octahedral sites: the anti-type explains the intensities, NiAs (the
    same lattice and reflections, the elements swapped) does not."""
    types = [t for t in builtin_types() if t.name in ("nias", "rocksalt", "wurtzite")]
    types += role_swaps([t for t in types if t.name == "nias"])
    placed = typed_cells(composition_of("FeS"), None, types)
    names = [t.structure_type for t in placed]
    truth = placed[names.index("nias:anti")].cell
    measured, abc = simulate_powder(truth, (1.02, 1.02, 0.99))
    ranked = rank_powder([t.cell for t in placed], measured, refine_top=len(placed))
    assert names[ranked[0][0]] == "nias:anti"
    normal = next(fit for i, fit in ranked if names[i] == "nias")
    assert normal.rwp > 2 * ranked[0][1].rwp
    assert sorted(ranked[0][1].params[k] for k in "abc") == pytest.approx(sorted(abc), rel=1e-3)
