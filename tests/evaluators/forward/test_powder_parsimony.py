"""Hamilton's test between powder fits of one structure (`powder_parsimony`)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from invdesign.core.structure import Structure
from invdesign.crystals.library import composition_of, typed_cells
from invdesign.evaluators.forward.powder_parsimony import hamilton_ratio, parsimonious


def test_hamilton_ratio_matches_the_f_table() -> None:
    # F(1, 100; 0.95) = 3.936 (tables): R = sqrt(1 + 3.936 / 100)
    assert hamilton_ratio(1, 100) == pytest.approx(np.sqrt(1 + 3.936 / 100), abs=1e-4)
    assert hamilton_ratio(3, 5000) < hamilton_ratio(3, 50)  # more data: smaller gains count
    with pytest.raises(ValueError):
        hamilton_ratio(0, 100)


def _fit(cell, rwp: float, n_params: int) -> SimpleNamespace:
    return SimpleNamespace(cell=cell, rwp=rwp, n_params=n_params, n_points=2000)


def test_a_richer_fit_of_the_same_structure_must_be_significantly_better() -> None:
    cells = {t.structure_type: t.cell for t in typed_cells(composition_of("TiO2"))}
    rutile = cells["rutile"]
    stretch = np.diag([1.004, 0.997, 1.0])  # the same structure, its cell a little orthorhombic
    distorted = Structure(rutile.species, rutile.positions @ stretch, rutile.cell @ stretch,
                          "unit_cell", {})
    slightly = [_fit(distorted, 0.1000, 17), _fit(rutile, 0.1001, 15)]
    assert parsimonious(slightly) == [1, 0]
    clearly = [_fit(distorted, 0.1000, 17), _fit(rutile, 0.1100, 15)]
    assert parsimonious(clearly) == [0, 1]
    other = [_fit(cells["anatase"], 0.1000, 17), _fit(rutile, 0.1001, 15)]
    assert parsimonious(other) == [0, 1]  # another structure: Rwp decides
