"""Algorithm S1 segmentation (generators/vae/segmentation.py) and the voxel round trip."""

from __future__ import annotations

import numpy as np
import pytest
from ase.spacegroup import crystal

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.generators.vae.roundtrip import match_periodic, roundtrip
from invdesign.generators.vae.segmentation import convexity, segment


def _spheres(shape: tuple[int, int, int], centres: list, radii: list, species: list,
             periodic: bool = False) -> np.ndarray:
    """Species image of balls (voxel units); overlaps go to the deepest ball (smallest d - r)."""
    idx = np.indices(shape).transpose(1, 2, 3, 0).astype(float)  # [N0, N1, N2, 3]
    out = np.zeros(shape, dtype=np.int16)
    best = np.full(shape, np.inf)
    for c, r, z in zip(centres, radii, species, strict=True):
        delta = idx - np.asarray(c, dtype=float)
        if periodic:
            delta -= np.round(delta / np.asarray(shape)) * np.asarray(shape)
        depth = np.linalg.norm(delta, axis=-1) - r
        take = (depth <= 0) & (depth < best)
        out[take], best[take] = z, depth[take]
    return out


def test_convexity_of_a_box_is_one_and_of_an_l_shape_low() -> None:
    box = np.zeros((8, 9, 10), dtype=bool)
    box[2:6, 2:7, 3:8] = True
    assert convexity(box) == pytest.approx(1.0)
    ell = np.zeros((14, 14, 4), dtype=bool)
    ell[1:13, 1:3, 1:3] = True
    ell[1:3, 1:13, 1:3] = True
    assert convexity(ell) < 0.8


def test_two_overlapping_spheres_of_two_species_give_two_atoms() -> None:
    # centres 7 voxels apart, radii 6 and 5: the balls overlap by 4 voxels along the axis
    centres = [(16.0, 16.0, 16.0), (23.0, 16.0, 16.0)]
    image = _spheres((32, 32, 32), centres, [6, 5], [8, 12])
    seg = segment(image, periodic=False)
    assert seg.n_atoms == 2
    order = np.argsort(seg.positions[:, 0])
    assert seg.species[order].tolist() == [8, 12]
    # each centroid moves away from the cut, but stays on its own side of it
    assert seg.positions[order[0], 0] < 16.0 + 1.0 and seg.positions[order[1], 0] > 23.0 - 1.0


def test_two_overlapping_spheres_of_one_species_give_two_atoms() -> None:
    # radius 5, centres 9 voxels apart (overlap 1 voxel): the union is not convex (< 0.8), so
    # erosion + watershed split it, with centroids within half a voxel of the centres
    centres = [(19.5, 24.3, 23.8), (28.5, 24.3, 23.8)]
    image = _spheres((48, 48, 40), centres, [5, 5], [8, 8])
    assert convexity(image > 0) < 0.8
    for components in ("species", "binary"):
        seg = segment(image, periodic=False, components=components)
        assert seg.n_atoms == 2
        got = seg.positions[np.argsort(seg.positions[:, 0])]
        np.testing.assert_allclose(got, centres, atol=0.5)
        assert seg.species.tolist() == [8, 8]


def test_strongly_overlapping_equal_spheres_stay_one_region_as_in_s1() -> None:
    # the SI's criterion: a region with convexity above 0.8 is one atom. Two equal balls 1.2 r
    # apart are 0.87 convex in the continuum (union / capsule), so Algorithm S1 keeps them whole.
    image = _spheres((48, 48, 48), [(20.0, 24.0, 24.0), (26.0, 24.0, 24.0)], [5, 5], [8, 8])
    assert convexity(image > 0) > 0.8
    assert segment(image, periodic=False).n_atoms == 1


def test_region_crossing_cell_faces_is_one_atom_at_the_corner() -> None:
    shape = (20, 20, 20)
    image = _spheres(shape, [(0.0, 0.0, 0.0)], [4], [8], periodic=True)
    seg = segment(image)
    assert seg.n_atoms == 1
    _, _, err = match_periodic(np.zeros((1, 3)), seg.frac_positions, shape)
    assert err[0] < 1e-6
    assert seg.regions[0].size == int((image > 0).sum())


def test_periodic_pair_across_a_face() -> None:
    shape = (24, 24, 24)
    centres = [(1.0, 12.0, 12.0), (19.0, 12.0, 12.0)]  # 6 voxels apart through the x face
    image = _spheres(shape, centres, [4, 4], [8, 30], periodic=True)
    seg = segment(image)
    assert sorted(seg.species.tolist()) == [8, 30]
    rows, cols, err = match_periodic(np.asarray(centres) / 24, seg.frac_positions, shape)
    assert np.all(err < 1.0)
    assert seg.species[cols].tolist() == [[8, 30][r] for r in rows]


def test_majority_vote_decides_the_species() -> None:
    image = _spheres((16, 16, 16), [(8.0, 8.0, 8.0)], [4], [8], periodic=False)
    image[8:10, 8:10, 8:10] = 22  # 8 voxels of another label inside the region
    seg = segment(image, image > 0, periodic=False, components="binary")
    assert seg.n_atoms == 1 and seg.species[0] == 8


def test_segment_rejects_bad_shapes() -> None:
    with pytest.raises(InvdesignError, match="3-D"):
        segment(np.zeros((4, 4)))
    with pytest.raises(InvdesignError, match="differs"):
        segment(np.zeros((4, 4, 4)), np.zeros((4, 4, 5), dtype=bool))


@pytest.mark.parametrize(
    ("name", "symbols", "basis", "spacegroup", "cellpar"),
    [
        ("rock salt MgO", ["Mg", "O"], [(0, 0, 0), (0.5, 0.5, 0.5)], 225, [4.213] * 3 + [90] * 3),
        ("rutile TiO2", ["Ti", "O"], [(0, 0, 0), (0.3, 0.3, 0)], 136,
         [4.594, 4.594, 2.958, 90, 90, 90]),
        ("perovskite SrTiO3", ["Sr", "Ti", "O"], [(0, 0, 0), (0.5, 0.5, 0.5), (0, 0.5, 0.5)], 221,
         [3.905] * 3 + [90] * 3),
        ("wurtzite ZnO", ["Zn", "O"], [(1 / 3, 2 / 3, 0), (1 / 3, 2 / 3, 0.375)], 186,
         [3.25, 3.25, 5.207, 90, 90, 120]),
    ],
)
def test_roundtrip_recovers_real_cells(name, symbols, basis, spacegroup, cellpar) -> None:
    cell = Structure.from_ase(crystal(symbols, basis, spacegroup=spacegroup, cellpar=cellpar))
    rt = roundtrip(cell, (24, 24, 24))
    assert rt.n_found == rt.n_true, name
    assert np.all(rt.errors_vox < 1.0), name
    assert np.all(rt.species_ok), name


def test_chain_through_the_cell_is_never_one_atom() -> None:
    # two equal balls (r 5) 8 voxels apart on z in a 16-voxel period: with their images they form an
    # endless bumpy rod. Its convexity is high, but a region longer than the period cannot be one
    # atom, so it is eroded and split: two atoms per cell, at the ball centres.
    shape = (20, 20, 16)
    centres = [(10.0, 10.0, 0.0), (10.0, 10.0, 8.0)]
    image = _spheres(shape, centres, [5, 5], [19, 19], periodic=True)
    seg = segment(image, radius_vox=np.array([5.0, 5.0, 5.0]))  # margin: whole balls at the ends
    assert seg.n_atoms == 2
    _, _, err = match_periodic(np.asarray(centres) / np.asarray(shape), seg.frac_positions, shape)
    assert np.all(err < 1.0)


@pytest.mark.parametrize(
    ("ctype", "metal"),
    [("CadmiumChloride", "Zn"), ("Perovskite", "Sr"), ("NickelArsenide", "Fe"),
     ("RheniumTrioxide", "W")],
)
def test_roundtrip_recovers_chili3k_cells_at_the_config_grid(ctype, metal) -> None:
    # the VAE configs' voxelisation: 12^3 grid, labelling radius 0.8 x the ionic radius
    from invdesign.crystals.crystal_types import unit_cell

    cell = unit_cell(ctype, metal)
    rt = roundtrip(cell, (12, 12, 12), label_frac=0.8)
    assert rt.n_found == rt.n_true
    assert np.all(rt.errors_vox < 1.0)
    assert np.all(rt.species_ok)
