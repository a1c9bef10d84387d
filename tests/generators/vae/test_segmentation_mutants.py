"""Exact values of the Algorithm S1 segmentation (issue 28, item 5: mutation score).

Each test pins what one step decides: the flat/empty convexity shortcut, the crop, marker
connectivity, the watershed label order, the recursion depth (`it`, `max_iters`), the too-long
rule (`period`), the periodic margin, component size limits, `max_atoms`, the home-cell rule and
the species vote. Small hand-made grids; the atom counts below were checked on the unmutated code.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage

from invdesign.core.errors import InvdesignError
from invdesign.generators.vae.segmentation import (
    _crop,
    _margin,
    _markers,
    _watershed_split,
    convexity,
    segment,
    split_region,
)


def _balls(centres: list, radii: list, shape: tuple[int, int, int], pad: int = 1,
           periodic: bool = False) -> np.ndarray:
    """Boolean union of balls (voxel units), padded with `pad` empty voxels (as a crop is);
    `periodic`: distances to the nearest image (no padding then)."""
    idx = np.indices(shape).transpose(1, 2, 3, 0).astype(float)
    out = np.zeros(shape, dtype=bool)
    for c, r in zip(centres, radii, strict=True):
        delta = idx - np.asarray(c, dtype=float)
        if periodic:
            delta -= np.round(delta / np.asarray(shape)) * np.asarray(shape)
        out |= np.linalg.norm(delta, axis=-1) <= r
    return out if periodic else np.pad(out, pad)


#: two r-5 balls 10 voxels apart (one shared voxel, which the watershed gives the right ball: its
#: centroid is 16.01): one erosion splits them; convexity 0.686; x extent 20 voxels
PAIR10 = _balls([(6, 7, 7), (16, 7, 7)], [5, 5], (24, 15, 15))
#: 8 apart: four levels of erosion split them; convexity 0.755; x extent 18
PAIR8 = _balls([(6, 7, 7), (14, 7, 7)], [5, 5], (22, 15, 15))
#: A, B 10 apart and C 8 beyond B: the first level splits A | BC, BC needs four more levels
CHAIN = _balls([(6, 7, 7), (16, 7, 7), (24, 7, 7)], [5, 5, 5], (40, 15, 15))


def _centres(atoms: list[np.ndarray]) -> list[tuple[float, ...]]:
    return sorted(tuple(np.round(a.mean(axis=0) - 1, 3)) for a in atoms)


# ---------------------------------------------------------------------------------- convexity
def test_convexity_of_empty_and_flat_regions_is_one_without_a_hull_warning():
    flat = np.zeros((6, 6, 6), dtype=bool)  # an L one voxel thick in y
    flat[1:5, 2, 1] = True
    flat[1, 2, 1:5] = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Qhull on a flat set warns and returns an empty hull
        assert convexity(flat) == 1.0
        assert convexity(np.zeros((4, 4, 4), dtype=bool)) == 1.0


# ----------------------------------------------------------------------- crop, markers, margin
def test_crop_is_the_bounding_box_with_one_empty_voxel():
    mask = np.zeros((10, 10, 10), dtype=bool)
    mask[2:5, 3, 4:9] = True
    box, origin = _crop(mask)
    assert box.shape == (5, 3, 7)
    assert origin.tolist() == [1, 2, 3]
    assert box.sum() == 15 and box[1:4, 1, 1:6].all()


def test_markers_join_faces_only_and_drop_small_fragments():
    fg = np.zeros((8, 8, 6), dtype=bool)
    fg[1:3, 1:3, 1:3] = True  # 8 voxels
    fg[3:5, 3:5, 1:3] = True  # 8 voxels sharing only an edge with the first
    fg[6, 6, 1:4] = True  # 3 voxels: debris
    markers = _markers(fg, min_size=8)
    assert markers.max() == 2
    assert (markers[1:3, 1:3, 1:3] == 1).all() and (markers[3:5, 3:5, 1:3] == 2).all()
    assert (markers[6, 6] == 0).all()


def test_margin_values():
    assert _margin((10, 11, 12), None) == (5, 5, 6)
    assert _margin((20, 20, 6), np.array([2.2, 1.0, 5.0])) == (7, 4, 6)


# ---------------------------------------------------------------------------------- watershed
def test_watershed_returns_masks_in_marker_label_order():
    region = PAIR10
    markers = np.zeros(region.shape, dtype=np.int32)
    markers[16:20, 7:10, 7:10] = 1  # label 1 on the right ball (x = 17 after the pad)
    markers[6:10, 7:10, 7:10] = 2  # label 2 on the left ball
    first, second = _watershed_split(region, markers)
    assert first.sum() + second.sum() == region.sum()
    assert first[17, 8, 8] and second[7, 8, 8]
    assert np.argwhere(first)[:, 0].min() >= 12 and np.argwhere(second)[:, 0].max() <= 12


# ------------------------------------------------------------------------------- split_region
def test_depth_limit_counts_levels_from_one():
    assert len(split_region(PAIR10, max_iters=1)) == 2  # one level (it = 1) splits it
    assert len(split_region(PAIR10, max_iters=0)) == 1  # no level allowed
    assert _centres(split_region(PAIR10, max_iters=1)) == [(6.0, 7.0, 7.0), (16.01, 7.0, 7.0)]


def test_one_marker_recursion_goes_one_level_deeper_each_time():
    period = np.array([10, 99, 99])  # shorter than the pair: convexity is not asked
    assert len(split_region(PAIR8, min_convexity=0.5, max_iters=3, period=period)) == 1
    assert len(split_region(PAIR8, min_convexity=0.5, max_iters=5, period=period)) == 2


def test_sub_regions_recurse_one_level_deeper_with_the_period():
    assert len(split_region(CHAIN, max_iters=4)) == 2
    assert len(split_region(CHAIN, max_iters=5)) == 3
    period = np.array([10, 99, 99])
    assert len(split_region(CHAIN, min_convexity=0.5, max_iters=5, period=period)) == 3


def test_too_long_is_an_extent_of_at_least_one_period_per_axis():
    assert len(split_region(PAIR10, min_convexity=0.5)) == 1  # convex enough: one atom
    assert len(split_region(PAIR10, min_convexity=0.5, period=np.array([20, 99, 99]))) == 2
    assert len(split_region(PAIR10, min_convexity=0.5, period=np.array([21, 99, 99]))) == 1
    # per axis, not over all coordinates: far from the origin in y, extents 20, 10, 10
    shifted = np.zeros((26, 60, 17), dtype=bool)
    shifted[:, 40:57, :] = PAIR10
    assert len(split_region(shifted, min_convexity=0.5, period=np.array([21, 21, 21]))) == 1


def test_convexity_equal_to_the_threshold_is_split():
    c = convexity(PAIR10)
    assert len(split_region(PAIR10, min_convexity=c)) == 2


# ------------------------------------------------------------------------------------ segment
def test_components_option_message():
    with pytest.raises(InvdesignError) as err:
        segment(np.zeros((4, 4, 4), dtype=int), components="mask")
    assert str(err.value) == "components must be 'species' or 'binary', not 'mask'"


def test_empty_grid_gives_typed_empty_arrays():
    seg = segment(np.zeros((6, 6, 6), dtype=np.int16))
    assert seg.positions.shape == (0, 3) and seg.positions.dtype == np.float64
    assert seg.species.shape == (0,) and seg.species.dtype == np.int64
    assert seg.regions == [] and seg.shape == (6, 6, 6)


def test_hydrogen_and_a_four_voxel_atom_are_atoms():
    species = np.zeros((8, 8, 8), dtype=np.int16)
    species[1:4, 1:4, 1:4] = 1  # H
    species[5:7, 5:7, 6] = 8  # 4 voxels, flat
    seg = segment(species, periodic=False)
    assert seg.species.tolist() == [1, 8]
    np.testing.assert_array_equal(seg.positions, [[2.0, 2.0, 2.0], [5.5, 5.5, 6.0]])


def test_atoms_touching_along_an_edge_are_two():
    species = np.zeros((8, 8, 6), dtype=np.int16)
    species[1:3, 1:3, 1:3] = 29
    species[3:5, 3:5, 1:3] = 29
    seg = segment(species, periodic=False)
    np.testing.assert_array_equal(seg.positions, [[1.5, 1.5, 1.5], [3.5, 3.5, 1.5]])


def test_binary_mask_of_several_values_is_one_mask():
    species = np.zeros((8, 8, 8), dtype=np.int16)
    species[2:5, 2:5, 2:5] = 47
    binary = np.zeros((8, 8, 8), dtype=np.int16)
    binary[2:5, 2:5, 2:4] = 1
    binary[2:5, 2:5, 4] = 2  # any nonzero value is "in the mask"
    seg = segment(species, binary, periodic=False, components="binary")
    assert seg.n_atoms == 1 and seg.species.tolist() == [47]
    np.testing.assert_array_equal(seg.positions, [[3.0, 3.0, 3.0]])


def test_species_outside_the_binary_mask_are_ignored():
    species = np.zeros((10, 10, 10), dtype=np.int16)
    species[1:4, 1:4, 1:4] = 29
    species[6:9, 6:9, 6:9] = 79
    binary = species == 79
    seg = segment(species, binary, periodic=False)
    assert seg.species.tolist() == [79]
    np.testing.assert_array_equal(seg.positions, [[7.0, 7.0, 7.0]])


def test_vote_counts_only_nonzero_species_and_skips_atoms_without_any():
    # binary components: two balls split at the first level; only the second has species voxels,
    # and only 3 of its voxels
    region = PAIR10[1:-1, 1:-1, 1:-1]
    species = np.zeros(region.shape, dtype=np.int16)
    species[16, 7, 6:9] = 26
    seg = segment(species, region, periodic=False, components="binary")
    assert seg.species.tolist() == [26]
    np.testing.assert_array_equal(np.round(seg.positions, 3), [[16.01, 7.0, 7.0]])


def test_max_atoms_keeps_the_largest_components_first():
    species = np.zeros((12, 12, 12), dtype=np.int16)
    species[1:3, 1:3, 1:3] = 29  # small, first in label order
    species[6:10, 6:10, 6:10] = 79  # large
    seg = segment(species, periodic=False, max_atoms=1)
    assert seg.species.tolist() == [79]
    assert segment(species, periodic=False, max_atoms=2).species.tolist() == [79, 29]


def test_max_iters_reaches_split_region_as_the_depth_from_level_one():
    species = PAIR10[1:-1, 1:-1, 1:-1].astype(np.int16) * 29
    seg = segment(species, periodic=False, max_iters=1)
    np.testing.assert_array_equal(np.round(seg.positions, 3), [[6.0, 7.0, 7.0], [16.01, 7.0, 7.0]])


def test_periodic_home_cell_edges_regions_and_vote():
    # N = 9 (odd): wrong offsets do not cancel; default margin 4
    species = np.zeros((9, 9, 9), dtype=np.int16)
    # A: 2x2x2 across the x face, centroid x = -0.5 -> kept once, at 8.5
    species[[8, 0], 2:4, 2:4] = 29
    # B: 3x3x3 centred on x = 8 (its image at -1 is dropped); mixed species, one binary region:
    # x = 7: 9 Ag; x = 8: 3 Ag, 6 Au; x = 0 (read through the wrap): 9 Au -> 15 Au to 12 Ag
    species[[7, 8, 0], 5:8, 2:5] = 47
    species[0, 5:8, 2:5] = 79
    species[8, 5:7, 2:5] = 79
    seg = segment(species, components="binary")
    order = np.argsort(seg.species)
    assert seg.species[order].tolist() == [29, 79]
    np.testing.assert_array_equal(seg.positions[order], [[8.5, 2.5, 2.5], [8.0, 6.0, 3.0]])
    a = np.sort(seg.regions[order[0]])
    expected = np.sort(np.ravel_multi_index(np.nonzero(species == 29), (9, 9, 9)))
    np.testing.assert_array_equal(a, expected)
    assert seg.regions[order[1]].size == 27


def test_a_convex_pair_longer_than_the_cell_is_split():
    # diagonal pair (centres 6 apart in x, 8 in y): x extent 16 = the period; no contact with
    # its own images (12.8 voxels apart); convexity 0.686 is above min_convexity 0.5
    shape = (16, 30, 14)
    image = _balls([(4, 8, 7), (10, 16, 7)], [5, 5], shape, periodic=True).astype(np.int16) * 28
    seg = segment(image, min_convexity=0.5)
    np.testing.assert_array_equal(np.round(seg.positions, 3),
                                  [[4.0, 8.0, 7.0], [10.006, 16.008, 7.0]])
    assert segment(image, min_convexity=0.5, periodic=False).n_atoms == 1


def test_max_atoms_keeps_label_order_among_equal_sizes():
    # 20 components in x order, 8 or 4 voxels: a stable sort takes the first four 8-voxel ones
    # (numpy's default sort orders these ties differently: components 0, 1, 2, 14)
    sizes = [8, 8, 8, 4, 4, 4, 4, 4, 4, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8]
    species = np.zeros((60, 4, 4), dtype=np.int16)
    for i, size in enumerate(sizes):
        species[3 * i:3 * i + 2, 1:3, 1:1 + size // 4] = 29
    seg = segment(species, periodic=False, max_atoms=4)
    assert seg.positions[:, 0].tolist() == [0.5, 3.5, 6.5, 27.5]


def test_pieces_under_four_voxels_are_dropped_and_the_rest_of_the_region_kept():
    # with min_size 1 the watershed leaves pieces of fewer than MIN_COMPONENT voxels; they are
    # skipped, and the atoms after them in the same region still count (smoothed noise, seed 5)
    rng = np.random.default_rng(5)
    species = (ndimage.gaussian_filter(rng.random((8, 8, 8)), 1.2) > 0.5).astype(np.int16) * 29
    assert int(species.sum()) == 204 * 29
    seg = segment(species, periodic=False, min_size=1)
    assert seg.n_atoms == 7
    assert min(r.size for r in seg.regions) >= 4
    np.testing.assert_allclose(seg.positions[:2], [[0.417, 0.583, 1.083], [2.784, 2.392, 1.294]],
                               atol=5e-4)
