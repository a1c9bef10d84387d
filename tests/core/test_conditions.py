"""Min-max normalisation, mapping patterns onto model grids, and condition building."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from invdesign.core.conditions import minmax, on_model_grid, prepare_condition, to_model_grid
from invdesign.core.errors import InvdesignError
from invdesign.core.patterns import pattern_spec
from invdesign.core.tasks import TaskSpec


def test_minmax_per_sample_numpy_and_torch():
    values = np.array([[1.0, 3.0, 2.0], [-4.0, 0.0, 4.0], [7.0, 7.0, 7.0]])
    expected = np.array([[0.0, 1.0, 0.5], [0.0, 0.5, 1.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(minmax(values), expected)
    np.testing.assert_allclose(minmax(torch.tensor(values)).numpy(), expected)


def test_same_grid_is_returned_unchanged():
    spec = pattern_spec("saxs")
    y = np.random.default_rng(0).uniform(size=spec.n_points)
    np.testing.assert_array_equal(to_model_grid(spec.grid(), y, spec), y)
    np.testing.assert_array_equal(on_model_grid(np.stack([spec.grid(), y]), "saxs"), y)


def test_linear_pattern_is_interpolated_exactly_and_outside_is_filled():
    spec = pattern_spec("xPDF")  # r = 0 .. 59.99 Å, step 0.01
    x = np.linspace(1.5, 30.0, 400)  # a measured PDF on a coarser, shorter grid
    out = to_model_grid(x[::-1], 2 * x[::-1] + 1, spec)  # descending input is sorted
    grid = spec.grid()
    inside = (grid >= 1.5) & (grid <= 30.0)
    np.testing.assert_allclose(out[inside], 2 * grid[inside] + 1, rtol=1e-12)
    assert np.all(out[~inside] == 0.0)


def test_pattern_on_wrong_range_raises_naming_both_ranges():
    with pytest.raises(
        InvdesignError, match=r"covers q = 0\.\.0\.5 but the model grid is 1\.\.29\.95"
    ):
        to_model_grid(np.linspace(0, 0.5, 50), np.ones(50), "xrd")


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (np.array([1.0, 2.0, np.nan]), np.ones(3), "NaN or inf"),
        (np.array([1.0, 2.0, 2.0]), np.ones(3), "repeated q"),
        (np.array([1.0, 2.0]), np.ones(3), "2 grid points but 3 values"),
        (np.array([1.0]), np.ones(1), "at least 2 points"),
    ],
)
def test_bad_patterns_raise(x, y, message):
    with pytest.raises(InvdesignError, match=message):
        to_model_grid(x, y, "saxs")


def test_prepare_condition_builds_a_normalised_one_item_condition():
    task = TaskSpec.parse("xrd+saxs->pos_abs")
    q1, q2 = pattern_spec("xrd").grid(), pattern_spec("saxs").grid()
    cond = prepare_condition(
        {"XRD": (q1, np.sin(q1) + 5), "saxs": (q2, np.exp(-q2))},
        task,
        composition={8: 2, 30: 2},
        n_atoms=12,
    )
    assert cond.batch_size == 1
    assert cond.patterns["xrd"].shape == (1, q1.size) and cond.patterns["saxs"].shape == (
        1,
        q2.size,
    )
    for values in cond.patterns.values():
        assert values.min().item() == 0.0 and values.max().item() == 1.0
    assert cond.composition == [{8: 0.5, 30: 0.5}]
    assert cond.n_atoms.tolist() == [12]


def test_prepare_condition_rejects_wrong_patterns_and_values():
    task = TaskSpec.parse("xPDF->pos_abs")
    r = pattern_spec("xPDF").grid()
    with pytest.raises(InvdesignError, match="missing: xPDF, unexpected: saxs"):
        prepare_condition({"saxs": (r, r)}, task)
    with pytest.raises(InvdesignError, match="constant"):
        prepare_condition({"xPDF": (r, np.ones_like(r))}, task)
    with pytest.raises(InvdesignError, match="outside 1..200"):
        prepare_condition({"xPDF": (r, np.sin(r))}, task, n_atoms=500)
    with pytest.raises(InvdesignError, match="bad composition"):
        prepare_condition({"xPDF": (r, np.sin(r))}, task, composition={8: -1.0})
