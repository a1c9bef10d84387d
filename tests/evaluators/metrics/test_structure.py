"""Structure metrics on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from invdesign.evaluators.metrics import structure as metrics
from invdesign.evaluators.metrics.structure import (
    chili_mae,
    count_accuracy,
    match,
    matched_errors,
    matched_summary,
    species_accuracy,
)

ATOMS = np.array(
    [[0.0, 0.0, 0.0], [1.9, 0.1, 0.0], [0.2, 2.1, 0.3], [-2.2, 0.4, 1.0], [0.5, -0.3, 2.6]]
)


def test_permuted_copy_scores_zero():
    perm = np.array([3, 0, 4, 1, 2])
    e = matched_errors(ATOMS[perm], ATOMS)
    assert e["mae"] == 0.0 and e["rmsd"] == 0.0 and e["n_matched"] == 5
    assert chili_mae([ATOMS[perm]], [ATOMS], sort_pred=True) == 0.0
    assert chili_mae([ATOMS[perm]], [ATOMS]) > 0.5  # CHILI's metric is order-dependent


def test_shifted_copy_scores_the_shift():
    shift = np.array([0.1, -0.1, 0.1])
    e = matched_errors(ATOMS + shift, ATOMS)
    assert e["mae"] == pytest.approx(0.1)
    assert e["rmsd"] == pytest.approx(np.linalg.norm(shift))


def test_periodic_wraparound_counts_as_near():
    true = np.array([[0.01, 0.5, 0.5], [0.5, 0.02, 0.98]])
    pred = np.array([[0.99, 0.5, 0.5], [0.5, 0.99, 0.01]])
    periodic = matched_errors(pred, true, periodic=True)
    assert periodic["mae"] == pytest.approx((0.02 + 0.03 + 0.03) / 6)
    assert matched_errors(pred, true, periodic=False)["mae"] > 0.4


def test_matching_pairs_species_and_counts_unmatched():
    pred = np.array([[0.0, 0, 0], [1.0, 0, 0], [5.0, 5, 5]])
    true = np.array([[1.1, 0, 0], [0.1, 0, 0]])
    m = match(pred, true)
    assert sorted(zip(m.pred_index.tolist(), m.true_index.tolist(), strict=True)) == [
        (0, 1),
        (1, 0),
    ]
    e = matched_errors(
        pred, true, pred_species=np.array([8, 12, 8]), true_species=np.array([12, 12])
    )
    assert e["n_matched"] == 2
    assert e["species_accuracy"] == pytest.approx(0.5)


def test_chili_mae_compares_prediction_slots_with_sorted_targets():
    pred = np.array([[0.0, 0, 3.0], [1.0, 0, 0]])  # slot order kept; sorted: (1,0,0), (0,0,3)
    true = np.array([[0.0, 2.0, 0], [0.0, 0, 1.0]])  # sorted: (0,0,1), (0,2,0)
    assert chili_mae([pred], [true]) == pytest.approx((0 + 0 + 2 + 1 + 2 + 0) / 6)
    assert chili_mae([pred], [true], sort_pred=True) == pytest.approx((1 + 0 + 1 + 0 + 2 + 3) / 6)


def test_chili_mae_of_the_slots_is_not_scrambled_by_ties():
    true = np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])  # equal |r|
    noisy = true + np.array([[1e-4, 0, 0], [0, 0, 0], [0, 0, -1e-4]])  # slot order kept
    assert chili_mae([noisy], [true]) == pytest.approx(2e-4 / 9)
    assert chili_mae([noisy], [true], sort_pred=True) > 0.1


def test_summary_weights_coordinates_like_chili():
    preds = [ATOMS + 0.1, ATOMS[:2] + 0.4]
    s = matched_summary(preds, [ATOMS, ATOMS[:2]])
    assert s["matched_mae"] == pytest.approx((15 * 0.1 + 6 * 0.4) / 21)


def test_count_and_species_accuracy():
    assert count_accuracy([3, 4, 5, 5], [3, 4, 6, 5]) == 0.75
    assert species_accuracy([np.array([8, 8, 12])], [np.array([12, 8, 8])]) == 1.0
    assert species_accuracy([np.array([8, 8, 8, 12])], [np.array([12, 12, 8])]) == pytest.approx(
        0.5
    )
    with pytest.raises(ValueError):
        count_accuracy([1, 2], [1])


def _octahedron() -> np.ndarray:
    from ase.cluster import Octahedron

    xyz = Octahedron("Pt", 5).positions  # 85 atoms, centrosymmetric
    return xyz - xyz.mean(axis=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aligned_recovers_a_rotated_permuted_particle(seed):
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    true = _octahedron()
    turn = Rotation.random(random_state=seed).as_matrix()
    pred = (true @ turn.T + rng.normal(0, 0.03, true.shape) + [1.0, -2.0, 0.5])[
        rng.permutation(len(true))
    ]
    assert metrics.matched_errors(pred, true)["mae"] > 0.3  # the frame alone costs this much
    e = metrics.aligned_errors(pred, true)
    assert e["n_matched"] == len(true)
    assert e["mae"] < 0.04  # only the 0.03 Å noise is left (mean |N(0, 0.03)| = 0.024)


def test_aligned_finds_a_mirror_image():
    rng = np.random.default_rng(3)
    true = rng.normal(0, 3.0, (30, 3))  # no symmetry: the mirror image is not a rotation of it
    pred = true * [1.0, 1.0, -1.0]
    rotations_only = metrics.aligned_errors(pred, true, n_random=0)
    assert metrics.aligned_errors(pred, true)["mae"] < 1e-6
    assert rotations_only["mae"] < 1e-6  # the 48 cube starts include the mirror z -> -z


def test_aligned_particle_keeps_a_real_difference():
    rng = np.random.default_rng(4)
    true = _octahedron()
    pred = true * 1.1  # 10 % larger: no rotation removes that
    e = metrics.aligned_errors(pred[rng.permutation(len(pred))], true)
    assert 0.05 < e["mae"] <= metrics.matched_errors(pred, true)["mae"] + 1e-12


def test_aligned_cell_removes_an_origin_shift_across_the_boundary():
    rng = np.random.default_rng(5)
    true = rng.random((12, 3))
    pred = (true + [0.37, 0.91, 0.05] + rng.normal(0, 0.002, true.shape)) % 1.0
    pred = pred[rng.permutation(12)]
    assert metrics.matched_errors(pred, true, periodic=True)["mae"] > 0.05
    assert metrics.aligned_errors(pred, true, periodic=True)["mae"] < 0.003


def test_aligned_never_exceeds_matched():
    rng = np.random.default_rng(6)
    for periodic in (False, True):
        for _ in range(5):
            pred, true = rng.random((9, 3)), rng.random((7, 3))
            if not periodic:
                pred, true = pred * 8, true * 8
            a = metrics.aligned_errors(pred, true, periodic)
            m = metrics.matched_errors(pred, true, periodic)
            assert a["n_matched"] == 7
            assert a["mae"] <= m["mae"] + 1e-12


def test_aligned_summary_pools_like_matched_summary():
    true = [np.zeros((1, 3)) + 0.5, np.array([[0.1, 0.1, 0.1], [0.6, 0.6, 0.6]])]
    pred = [t + 0.25 for t in true]
    out = metrics.aligned_summary(pred, true, periodic=True)
    assert out["aligned_mae"] < 1e-9  # a pure shift
    assert set(out) == {"aligned_mae", "aligned_rmsd"}
