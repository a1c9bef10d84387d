"""Exact values of the matched metrics on asymmetric cases, where a swapped index would show."""

from __future__ import annotations

import numpy as np
import pytest

from invdesign.evaluators.metrics.structure import match, matched_errors

# Three atoms on distinct sites; the prediction lists them in a 3-cycle order (not an involution,
# so swapping the prediction and truth indices changes which pairs are compared).
TRUE = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
TRUE_SPECIES = np.array([8, 30, 78])
CYCLE = np.array([1, 2, 0])  # pred[i] = true[CYCLE[i]]


def test_matching_pairs_each_prediction_with_its_own_true_atom():
    m = match(TRUE[CYCLE] + 0.1, TRUE)
    assert np.array_equal(TRUE[m.true_index], TRUE[CYCLE][m.pred_index])
    np.testing.assert_allclose(m.diff, 0.1)


def test_species_accuracy_follows_the_pairing_not_the_list_order():
    pred = TRUE[CYCLE] + np.array([0.05, -0.05, 0.0])
    right = matched_errors(pred, TRUE, pred_species=TRUE_SPECIES[CYCLE], true_species=TRUE_SPECIES)
    assert right["species_accuracy"] == 1.0
    # one wrong species (the atom at true site 2 predicted as O): exactly 2 of 3 right
    wrong_species = TRUE_SPECIES[CYCLE].copy()
    wrong_species[CYCLE.tolist().index(2)] = 8
    partly = matched_errors(pred, TRUE, pred_species=wrong_species, true_species=TRUE_SPECIES)
    assert partly["species_accuracy"] == pytest.approx(2 / 3)
    # species given in the truth's order (not the prediction's) are wrong on every atom
    listed = matched_errors(pred, TRUE, pred_species=TRUE_SPECIES, true_species=TRUE_SPECIES)
    assert listed["species_accuracy"] == 0.0


def test_matched_mae_and_rmsd_values():
    shift = np.array([[0.1, 0.0, 0.0], [0.0, -0.2, 0.0], [0.0, 0.0, 0.3]])
    out = matched_errors(TRUE[CYCLE] + shift, TRUE)
    assert out["mae"] == pytest.approx(0.6 / 9)
    assert out["rmsd"] == pytest.approx(np.sqrt((0.01 + 0.04 + 0.09) / 3))
    assert out["n_matched"] == 3


def test_unequal_counts_match_the_smaller_set_only():
    out = matched_errors(TRUE[:2] + 0.1, TRUE)
    assert out["n_matched"] == 2
    assert out["mae"] == pytest.approx(0.1)
