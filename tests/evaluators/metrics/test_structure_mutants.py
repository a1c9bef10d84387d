"""Value tests of the structure metrics that kill the mutants surviving test_structure*.py
(benchmarks/mutation_score.py structure_metrics): tie order, defaults, pass-through of periodic and
species, the summary keys, mismatched list lengths, empty inputs. Values worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from invdesign.evaluators.metrics.structure import (
    aligned_errors,
    aligned_summary,
    chili_mae,
    count_accuracy,
    matched_errors,
    matched_summary,
    sort_by_norm,
    species_accuracy,
)

#: one atom 0.98 apart without the periodic wrap, 0.02 with it (fractional coordinates)
WRAP_TRUE = np.array([[0.01, 0.5, 0.5]])
WRAP_PRED = np.array([[0.99, 0.5, 0.5]])


def _three_shells() -> np.ndarray:
    """[36, 3] integer vectors in three shells (|r|^2 = 1, 4, 9), in a fixed shuffled order."""
    vecs = []
    for a, b, c in ((1, 0, 0), (2, 0, 0), (3, 0, 0), (2, 2, 1)):
        for s in ((1, 1, 1), (-1, 1, 1), (1, -1, 1), (1, 1, -1), (-1, -1, -1)):
            v = (s[0] * a, s[1] * b, s[2] * c)
            vecs += [v, (v[1], v[2], v[0]), (v[2], v[0], v[1])]
    unique = sorted(set(vecs))
    order = np.random.default_rng(5).permutation(len(unique))
    return np.array([unique[i] for i in order])


def test_sort_by_norm_keeps_ties_in_stored_order() -> None:
    atoms = _three_shells()
    assert len(atoms) >= 30
    # Python's sorted is stable; the exact integer |r|^2 is the key
    expected = sorted(atoms.tolist(), key=lambda v: v[0] ** 2 + v[1] ** 2 + v[2] ** 2)
    out = sort_by_norm(atoms)
    assert out.dtype == np.float64
    assert out.tolist() == expected


def test_sort_by_norm_returns_float_for_integer_input() -> None:
    out = sort_by_norm(np.array([[0, 0, 2], [1, 0, 0]]))
    assert out.dtype == np.float64
    assert out.tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]]


@pytest.mark.parametrize(
    "metric",
    [
        lambda p, t: chili_mae(p, t),
        lambda p, t: matched_summary(p, t),
        lambda p, t: aligned_summary(p, t, periodic=True),
        lambda p, t: species_accuracy(p, t),
    ],
)
def test_lists_of_different_lengths_are_refused(metric) -> None:
    one = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    with pytest.raises(ValueError, match="zip"):
        metric([one, one], [one])


def test_matched_summary_is_not_periodic_by_default_and_passes_periodic_on() -> None:
    plain = matched_summary([WRAP_PRED], [WRAP_TRUE])
    assert plain == pytest.approx({"matched_mae": 0.98 / 3, "matched_rmsd": 0.98}, abs=1e-12)
    assert "species_accuracy" not in plain
    wrapped = matched_summary([WRAP_PRED], [WRAP_TRUE], periodic=True)
    assert wrapped == pytest.approx({"matched_mae": 0.02 / 3, "matched_rmsd": 0.02}, abs=1e-12)


def test_matched_summary_species_accuracy_averages_over_structures() -> None:
    preds = [np.array([[0.0, 0, 0], [2.0, 0, 0]]), np.array([[0.0, 0, 0], [0, 0, 2.0],
                                                            [0, 2.0, 0]])]
    trues = [np.array([[2.1, 0, 0], [0.1, 0, 0]]), np.array([[0, 2.0, 0], [0, 0, 2.0],
                                                            [0.0, 0, 0]])]
    pred_sp = [np.array([8, 30]), np.array([8, 8, 30])]
    true_sp = [np.array([30, 30]), np.array([30, 30, 8])]
    out = matched_summary(preds, trues, pred_species=pred_sp, true_species=true_sp)
    # structure 1: pairs (0 -> 1: 8 vs 30), (1 -> 0: 30 vs 30): 1/2
    # structure 2: pairs (0 -> 2: 8 vs 8), (1 -> 1: 8 vs 30), (2 -> 0: 30 vs 30): 2/3
    assert out["species_accuracy"] == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-12)
    # MAE over 15 coordinates: structure 1 has two 0.1 errors, structure 2 none
    assert out["matched_mae"] == pytest.approx(0.2 / 15, abs=1e-12)
    assert out["matched_rmsd"] == pytest.approx(0.05, abs=1e-12)


def test_aligned_summary_is_not_periodic_by_default() -> None:
    """Two atoms on the x axis, 0.79 apart predicted, 0.19 true. As a particle (centroids
    aligned) each atom is 0.3 off in x: MAE 0.6 / 6, RMSD 0.3. As a cell the wrap makes the first
    pair 0.02 apart and no origin shift does better: MAE 0.02 / 6, RMSD sqrt(0.02^2 / 2)."""
    pred = np.array([[0.99, 0.5, 0.5], [0.2, 0.5, 0.5]])
    true = np.array([[0.01, 0.5, 0.5], [0.2, 0.5, 0.5]])
    assert aligned_summary([pred], [true]) == pytest.approx(
        {"aligned_mae": 0.1, "aligned_rmsd": 0.3}, abs=1e-9)
    assert aligned_summary([pred], [true], periodic=True) == pytest.approx(
        {"aligned_mae": 0.02 / 6, "aligned_rmsd": math.sqrt(0.02**2 / 2)}, abs=1e-9)


def test_count_accuracy_values_and_message() -> None:
    assert count_accuracy([3, 4, 5], [3, 4, 6]) == pytest.approx(2 / 3, abs=1e-15)
    assert math.isnan(count_accuracy([], []))
    with pytest.raises(ValueError, match="^3 predicted counts for 2 structures$"):
        count_accuracy([1, 2, 3], [1, 2])


def test_species_accuracy_missing_species_and_empty_structures() -> None:
    # predicted 8, 8, 29 against true 8, 30, 30: only one 8 pairs; 29 is absent from the truth
    assert species_accuracy([np.array([8, 8, 29])], [np.array([8, 30, 30])]) == pytest.approx(
        1 / 3, abs=1e-15)
    # two empty structures agree perfectly; averaged with a 0 score
    assert species_accuracy([np.array([], dtype=int), np.array([8])],
                            [np.array([], dtype=int), np.array([30])]) == 0.5
    assert math.isnan(species_accuracy([], []))


def test_empty_inputs_give_nan_not_errors() -> None:
    none = np.zeros((0, 3))
    e = matched_errors(none, WRAP_TRUE, pred_species=np.array([], dtype=int),
                       true_species=np.array([8]))
    assert e["n_matched"] == 0
    assert math.isnan(e["mae"]) and math.isnan(e["rmsd"]) and math.isnan(e["species_accuracy"])
    for periodic in (False, True):
        a = aligned_errors(none, WRAP_TRUE, periodic=periodic)
        assert set(a) == {"mae", "rmsd", "n_matched"} and a["n_matched"] == 0
        assert math.isnan(a["mae"]) and math.isnan(a["rmsd"])
        b = aligned_errors(WRAP_TRUE, none, periodic=periodic)
        assert b["n_matched"] == 0 and math.isnan(b["mae"])
    assert math.isnan(chili_mae([none], [WRAP_TRUE]))
    s = matched_summary([none], [WRAP_TRUE])
    assert math.isnan(s["matched_mae"]) and math.isnan(s["matched_rmsd"])
    s = aligned_summary([none], [WRAP_TRUE], periodic=True)
    assert math.isnan(s["aligned_mae"]) and math.isnan(s["aligned_rmsd"])


def test_one_sided_species_give_no_species_accuracy() -> None:
    e = matched_errors(WRAP_PRED, WRAP_TRUE, pred_species=np.array([8]))
    assert "species_accuracy" not in e
    e = matched_errors(WRAP_PRED, WRAP_TRUE, true_species=np.array([8]))
    assert "species_accuracy" not in e


def test_chili_mae_accumulates_over_structures() -> None:
    """Structure 1: one atom 0.5 off in x (3 coordinates); structure 2: two atoms exact (6)."""
    p1, t1 = np.array([[1.5, 0.0, 0.0]]), np.array([[1.0, 0.0, 0.0]])
    p2 = t2 = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    assert chili_mae([p1, p2], [t1, t2]) == pytest.approx(0.5 / 9, abs=1e-15)
    assert chili_mae([p2, p1], [t2, t1]) == pytest.approx(0.5 / 9, abs=1e-15)


def test_aligned_cell_values_exact() -> None:
    """Three atoms shifted by (0.3, 0.6, 0.9) across the cell faces, one also moved 0.04 in x:
    the best origin shift leaves (+-0.04 / 3 spread) residuals; the unshifted match is far."""
    true = np.array([[0.1, 0.2, 0.3], [0.5, 0.5, 0.5], [0.8, 0.1, 0.6]])
    pred = np.mod(true + [0.3, 0.6, 0.9], 1.0)
    pred[0, 0] += 0.03
    e = aligned_errors(pred, true, periodic=True)
    # the mean residual is removed: x residuals 0.02, -0.01, -0.01; y, z zero
    assert e["n_matched"] == 3
    assert e["mae"] == pytest.approx(0.04 / 9, abs=1e-9)
    assert e["rmsd"] == pytest.approx(math.sqrt((0.02**2 + 2 * 0.01**2) / 3), abs=1e-9)
    shifted = aligned_errors(true + 0.25, true, periodic=True)
    assert shifted["mae"] == pytest.approx(0.0, abs=1e-12)
