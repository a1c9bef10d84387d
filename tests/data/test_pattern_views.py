"""Measured-range views (`invdesign.core.patterns.VIEWS`): a task on `xrd_lab` / `saxs_lab`
reads the stored `xrd` / `saxs` pattern of every graph and keeps its points inside the view's
grid (the view's grid lies on the stored grid's points), min-max normalised over that window; a
measured pattern is smoothed to the view's resolution before it is put on the grid."""

from __future__ import annotations

import numpy as np
import pytest

from invdesign.core.conditions import minmax, smoothed
from invdesign.core.errors import InvdesignError
from invdesign.core.patterns import PATTERNS, VIEWS, pattern_spec
from invdesign.core.tasks import TaskSpec
from invdesign.data.dataset import ChiliDataset
from invdesign.data.hdf5_io import write_chili_file
from invdesign.data.task_data import load_task_data, task_fields
from invdesign.data.toy import toy_record


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("views")
    for k in range(3):
        write_chili_file(root / f"Toy{k}.h5", toy_record(
            name=f"Toy{k}", n_unit_cell=4 + k, particle_atoms=(6, 9), seed=k))
    return root


def test_view_grids_lie_on_the_stored_grids_inside_their_range():
    for view in VIEWS.values():
        stored = PATTERNS[view.stored].grid()
        grid = view.grid()
        assert grid.size > 40
        assert stored[0] <= grid[0] and grid[-1] <= stored[-1]
        assert np.abs(stored[np.searchsorted(stored, grid - 1e-9)] - grid).max() < 1e-9
    assert pattern_spec("XRD_LAB").stored == "xrd" and pattern_spec("xrd").stored == "xrd"
    with pytest.raises(InvdesignError, match="xrd_lab, saxs_lab"):
        pattern_spec("xrd_wide")


@pytest.mark.parametrize(("view", "target"), [("xrd_lab", "unit_cell_pos_frac"),
                                              ("saxs_lab", "pos_abs")])
def test_view_task_reads_the_stored_pattern_window(root, view, target):
    ds = ChiliDataset(root)
    spec = VIEWS[view]
    task = TaskSpec.parse(f"{view}->{target}")
    assert spec.stored in task_fields(task, shared=False) and view not in task_fields(task)
    data = load_task_data(ds, task)
    full = load_task_data(ds, TaskSpec.parse(f"{spec.stored}->{target}"))
    assert data.indices == full.indices and len(data.indices) > 0
    stored_grid = PATTERNS[spec.stored].grid()
    window = (stored_grid >= spec.grid()[0] - 1e-9) & (stored_grid <= spec.grid()[-1] + 1e-9)
    assert window.sum() == spec.n_points
    for row in range(len(data.indices)):
        raw = full.raw_pattern(spec.stored, row)[window]
        np.testing.assert_allclose(data.raw_pattern(view, row), raw, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(data.patterns[view][row].numpy(), minmax(raw), atol=1e-5)
    assert not np.allclose(data.patterns[view][0].numpy(),
                           full.patterns[spec.stored][0].numpy()[window])  # renormalised


def test_smoothing_gives_the_requested_width_and_keeps_the_area():
    """A sharp Gaussian peak (FWHM 0.004) on a non-uniform grid smoothed to 0.11: the result is
    a Gaussian of FWHM sqrt(0.11^2 + 0.004^2), the same area, the same centre."""
    x = np.sort(np.random.default_rng(0).uniform(1.0, 5.0, 20000))
    width, fwhm = 0.004, 0.11
    y = np.exp(-4 * np.log(2) * (x - 3.0) ** 2 / width ** 2)
    grid, out = smoothed(x, y, fwhm)
    assert np.allclose(np.diff(grid), np.diff(grid)[0]) and np.diff(grid)[0] <= fwhm / 10
    centre = np.sum(grid * out) / np.sum(out)
    sigma = np.sqrt(np.sum((grid - centre) ** 2 * out) / np.sum(out))
    assert 2 * np.sqrt(2 * np.log(2)) * sigma == pytest.approx(np.hypot(fwhm, width), rel=0.02)
    assert centre == pytest.approx(3.0, abs=1e-3)
    area = np.sqrt(np.pi / (4 * np.log(2))) * width
    assert np.trapezoid(out, grid) == pytest.approx(area, rel=0.03)
    with pytest.raises(InvdesignError, match="smoothing width"):
        smoothed(x, y, 0.0)
