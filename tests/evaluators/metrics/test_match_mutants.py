"""Value tests that pin `evaluators/metrics/match.py` where the behaviour tests leave freedom
(mutation testing, issue 28): the overlap guard's edges, samples after a skipped one, the RMS
taken (not the max displacement), the composition used by the valid fraction, exact refusals."""

from __future__ import annotations

import re

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.evaluators.metrics.match import (
    composition_of,
    match_structure,
    match_summary,
    valid_fraction,
)
from invdesign.testing import rock_salt_cell


def _pair(distance: float) -> Structure:
    """Rock salt with its second atom `distance` Å from the first (a 4.2 Å cube)."""
    cell = rock_salt_cell()
    frac = cell.frac_positions.copy()
    frac[1] = frac[0] + [distance / 4.2, 0.0, 0.0]
    return Structure.from_fractional(cell.species, frac, cell.cell)


def test_the_guard_skips_only_closer_than_min_distance_and_goes_on() -> None:
    truth = rock_salt_cell()
    close = _pair(0.42)
    found = match_structure([close, truth], truth, min_dist=0.5)
    assert found.rms[0] is None and found.rms[1] == pytest.approx(0.0, abs=1e-6)  # not a break
    # exactly at the limit: compared (the guard is strict), and without a guard always compared
    assert match_structure([close], truth, min_dist=0.42 + 1e-9).rms == (None,)
    assert len(match_structure([close], truth, min_dist=None).rms) == 1
    at_limit = match_structure([close], truth, min_dist=float(0.42 * (1 - 1e-12)))
    assert len(at_limit.rms) == 1


def test_one_and_two_atom_cells_are_compared_by_the_guard_rule() -> None:
    """n_atoms > 1: a one-atom cell is never skipped; a two-atom cell with a close pair is."""
    one = Structure.from_fractional(np.array([29]), np.zeros((1, 3)), 2.0 * np.eye(3))
    assert match_structure([one], one, min_dist=5.0).rms[0] == pytest.approx(0.0, abs=1e-9)
    two = Structure.from_fractional(np.array([29, 29]), [[0, 0, 0], [0.1, 0, 0]],
                                    4.0 * np.eye(3))
    assert match_structure([two], two, min_dist=0.5).rms == (None,)


def test_the_rms_is_the_first_value_of_get_rms_dist() -> None:
    """get_rms_dist returns (rms, max displacement): a cell with one atom moved gives an RMS
    below its maximum displacement."""
    truth = rock_salt_cell()
    frac = truth.frac_positions.copy()
    frac[0] += [0.02, 0.0, 0.0]
    moved = Structure.from_fractional(truth.species, frac, truth.cell)
    rms, max_dist = StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3).get_rms_dist(
        moved.to_pymatgen(), truth.to_pymatgen())
    assert rms < max_dist
    assert match_structure([moved], truth).rms[0] == pytest.approx(rms, rel=1e-9)


def test_the_valid_fraction_uses_each_groups_composition() -> None:
    truth = rock_salt_cell()  # MgO, valid by distance
    wrong = {12: 1.0, 8: 3.0}  # a composition the cell does not keep
    assert valid_fraction([[truth]], [wrong]) == 0.0
    assert valid_fraction([[truth]], None) == 1.0
    assert valid_fraction([[truth], [truth]], [wrong, composition_of(truth)]) == 0.5
    with pytest.raises(ValueError):
        valid_fraction([[truth], [truth]], [wrong])  # one composition per group


def test_refusals_are_exact() -> None:
    with pytest.raises(InvdesignError, match=r"^no samples to check$"):
        valid_fraction([[]])
    with pytest.raises(InvdesignError,
                       match=re.escape("the match rate compares unit cells; got a particle")):
        match_structure([Structure(np.array([8]), np.zeros((1, 3)))], rock_salt_cell())


def test_no_test_structures_give_no_rate() -> None:
    assert match_summary([], 1) == {"k": 1, "n": 0, "match_rate": None, "rmse": None}


def test_composition_of_counts_each_element() -> None:
    cell = rock_salt_cell()
    assert composition_of(cell) == {8: 4.0, 12: 4.0}
