"""Watershed splitting on an asymmetric pair of overlapping spheres: the cut must lie on the
plane of the spheres' intersection circle (where the distance map has its saddle), which a
symmetric pair cannot tell from other cuts."""

from __future__ import annotations

import numpy as np

from invdesign.generators.vae.segmentation import _watershed_split, split_region

R1, R2, D = 6.0, 4.0, 8.0  # voxels: sphere radii and centre distance
C1 = np.array([12.0, 15.0, 15.0])
C2 = C1 + [D, 0.0, 0.0]
#: x of the intersection plane, from sphere 1's centre: (d^2 + r1^2 - r2^2) / 2d
PLANE = C1[0] + (D**2 + R1**2 - R2**2) / (2 * D)


def _two_spheres(c2: np.ndarray = C2) -> np.ndarray:
    idx = np.indices((34, 30, 30)).transpose(1, 2, 3, 0).astype(float)
    return (np.linalg.norm(idx - C1, axis=-1) <= R1) | (np.linalg.norm(idx - c2, axis=-1) <= R2)


def _markers(region: np.ndarray) -> np.ndarray:
    idx = np.indices(region.shape).transpose(1, 2, 3, 0).astype(float)
    markers = np.zeros(region.shape, dtype=np.int32)
    markers[np.linalg.norm(idx - C1, axis=-1) <= 1.5] = 1
    markers[np.linalg.norm(idx - C2, axis=-1) <= 1.5] = 2
    return markers


def test_watershed_cuts_an_unequal_pair_on_the_intersection_plane():
    region = _two_spheres()
    big, small = _watershed_split(region, _markers(region))
    assert (big | small).sum() == region.sum() and not (big & small).any()
    x_big = np.argwhere(big)[:, 0]
    x_small = np.argwhere(small)[:, 0]
    # every voxel more than one voxel from the plane is on its own sphere's side
    assert x_big.max() <= PLANE + 1 and x_small.min() >= PLANE - 1
    # the big sphere keeps its cap-less volume: voxels with x < PLANE (counted exactly)
    expected_big = int((np.argwhere(region)[:, 0] < PLANE).sum())
    assert abs(int(big.sum()) - expected_big) <= 0.02 * expected_big


def test_algorithm_s1_finds_two_atoms_at_the_sphere_centres():
    # 9.5 voxels apart the pair's convexity (0.78) is below the one-atom threshold (0.8); at
    # 8 voxels it is above and Algorithm S1 rightly keeps one region
    far = C1 + [9.5, 0.0, 0.0]
    atoms = split_region(np.pad(_two_spheres(far), 1))
    centres = sorted(tuple(a.mean(axis=0) - 1) for a in atoms)
    assert len(atoms) == 2
    # centroids measured 0.05 and 0.13 voxel from the sphere centres (the cut leaves each piece
    # the other's cap); 0.25 voxel allows for that and no more
    np.testing.assert_allclose(centres[0], C1, atol=0.25)
    np.testing.assert_allclose(centres[1], far, atol=0.25)
