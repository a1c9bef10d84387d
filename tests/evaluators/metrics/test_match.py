"""StructureMatcher match rate and RMSE (issue 27 item 2): a cell against itself at another origin
and atom order matches with RMSE ~0, another structure type does not, and k counts exactly."""

from __future__ import annotations

import numpy as np
import pytest

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.evaluators.metrics.match import (
    MATCHER_OPTIONS,
    composition_of,
    match_structure,
    match_summary,
    matcher,
    valid_fraction,
)
from invdesign.testing import caesium_chloride_cell, rock_salt_cell


def _moved(cell: Structure, shift: np.ndarray, order: np.ndarray) -> Structure:
    """The same crystal with its origin moved by `shift` (fractional) and atoms reordered."""
    frac = np.mod(cell.frac_positions[order] + shift, 1.0)
    return Structure.from_fractional(cell.species[order], frac, cell.cell)


def _zinc_blende(a: float = 4.2, metal: int = 12, anion: int = 8) -> Structure:
    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    return Structure.from_fractional([metal] * 4 + [anion] * 4,
                                     np.vstack([fcc, fcc + 0.25]) % 1.0, np.eye(3) * a)


def test_the_matcher_has_diffcsp_tolerances() -> None:
    sm = matcher()
    assert MATCHER_OPTIONS == {"stol": 0.5, "angle_tol": 10, "ltol": 0.3}
    assert (sm.stol, sm.angle_tol, sm.ltol) == (0.5, 10, 0.3)


def test_a_cell_at_another_origin_and_atom_order_matches_with_zero_rmse() -> None:
    truth = rock_salt_cell()
    sample = _moved(truth, np.array([0.13, 0.41, 0.77]), np.array([5, 2, 7, 0, 3, 6, 1, 4]))
    assert not np.allclose(sample.frac_positions, truth.frac_positions)
    (rms,) = match_structure([sample], truth).rms
    assert rms == pytest.approx(0.0, abs=1e-6)


def test_a_displaced_cell_matches_with_its_rmse() -> None:
    truth = rock_salt_cell()
    frac = truth.frac_positions.copy()
    frac[0] += [0.02, 0.0, 0.0]  # 0.084 Å of one atom of eight
    sample = Structure.from_fractional(truth.species, frac, truth.cell)
    (rms,) = match_structure([sample], truth).rms
    # pymatgen's matcher (primitive_cell=True, as DiffCSP uses it) first reduces both cells to
    # primitive ones with a 0.25 Å tolerance, which averages the moved metal with its three
    # lattice-translation copies: in units of (V / n)^(1/3) = 2.1 Å the 0.084 Å step is 0.04,
    # a quarter of it 0.01 on one of the two primitive atoms; the mean removed, +-0.005 each.
    assert rms == pytest.approx(0.005, abs=1e-9)


def test_another_structure_type_does_not_match() -> None:
    truth = rock_salt_cell()
    # same atoms per volume, simple cubic against face-centred lattice: no match
    assert match_structure([caesium_chloride_cell(a=2.646)], truth).rms == (None,)
    assert match_structure([truth], caesium_chloride_cell(a=2.646)).rms == (None,)
    # DiffCSP's site tolerance is loose: zinc blende (anion at 1/4 1/4 1/4 of the same fcc
    # lattice) matches rock salt, each atom sqrt(3)/4 (V / n)^(1/3) off its site after centring
    (rms,) = match_structure([_zinc_blende()], truth).rms
    assert rms == pytest.approx(np.sqrt(3) / 4, abs=1e-9)


def test_k_counts_a_test_structure_once_when_any_of_its_first_k_samples_matches() -> None:
    rs, zb = rock_salt_cell(), caesium_chloride_cell(a=2.646)
    near = _moved(rs, np.array([0.5, 0.0, 0.0]), np.arange(8))
    matches = [
        match_structure([zb, zb, near], rs),  # matched only at k = 3
        match_structure([near, zb, zb], rs),  # matched at k = 1
        match_structure([zb, zb, zb], rs),  # never
        match_structure([near, near, near], rs),  # at k = 1, once
    ]
    one, three = match_summary(matches, 1), match_summary(matches, 3)
    assert (one["match_rate"], three["match_rate"]) == (0.5, 0.75)
    assert (one["n"], three["n"], one["k"], three["k"]) == (4, 4, 1, 3)
    assert one["rmse"] == pytest.approx(0.0, abs=1e-6)
    assert match_summary([match_structure([zb], rs)], 1) == {
        "k": 1, "n": 1, "match_rate": 0.0, "rmse": None}
    with pytest.raises(InvdesignError, match="k = 4 needs at least k samples"):
        match_summary(matches, 4)


def test_overlapping_samples_are_not_compared_and_are_invalid() -> None:
    truth = rock_salt_cell()
    frac = truth.frac_positions.copy()
    frac[1] = frac[0] + [0.05, 0.0, 0.0]  # 0.21 Å apart
    bad = Structure.from_fractional(truth.species, frac, truth.cell)
    assert match_structure([bad, truth], truth).rms[0] is None
    assert valid_fraction([[bad, truth], [truth]], [composition_of(truth)] * 2) == 2 / 3
    assert valid_fraction([[truth]]) == 1.0


def test_particles_are_refused() -> None:
    particle = Structure(np.array([12, 8]), np.array([[0.0, 0, 0], [2.1, 0, 0]]), None,
                         "particle", {})
    with pytest.raises(InvdesignError, match="compares unit cells; got a particle"):
        match_structure([particle], rock_salt_cell())
