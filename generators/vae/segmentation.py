"""Atoms from a voxel species matrix: the morphological segmentation of Court et al. (SI, Alg. S1).

1. Label the connected components of the species matrix (SI Figure S1(b): regions of one atomic
   number; `components='binary'` labels the binary mask instead, as the pseudo-code writes it).
2. Per region R: convexity = nonzero(R) / nonzero(convex_hull_image(R)). Above `min_convexity`
   (0.8) R is one atom.
3. Otherwise erode R once (certain foreground) and dilate it once (certain background); the
   foreground components are the watershed markers, the outside of the dilation the background
   marker. The watershed floods the negative distance transform of R (the SI does not name the
   flooded image; this is the usual choice for touching objects) and is cut back to R.
4. Recurse on the sub-regions, at most `max_iters` (5) levels. When one erosion leaves a single
   foreground component, that foreground is segmented at the next level and its parts become the
   markers, so a region is eroded once more per level ("iteratively eroded", SI Figure S1);
   recursion stops when the foreground falls under `min_size` (8) voxels.
5. Atom position = region centroid; species = majority vote of the species matrix over the region.

Two details the SI leaves open, chosen here: foreground fragments under `min_size` voxels (debris
of an erosion at a narrow neck) are no markers; and a region longer than one cell period along an
axis (an atom joined to its own periodic image, or a chain of atoms through the cell) is never
accepted as one atom by its convexity.

Periodicity: the grid is padded by wrapping (np.pad mode='wrap') with a margin wider than the
largest atom, the padded image is segmented as a plain image, and each atom is kept from the image
whose centroid falls in the home cell. Regions that cross cell faces are thereby whole, and
centroids are periodic-aware.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage
from skimage.measure import label
from skimage.morphology import ball, convex_hull_image, dilation, erosion
from skimage.segmentation import watershed

from invdesign.core.errors import InvdesignError

MIN_CONVEXITY = 0.8
MAX_ITERS = 5
MIN_SIZE = 8
MIN_COMPONENT = 4  # components of <= 3 voxels are noise (icsg3d drops them too)
_FOOTPRINT = ball(1)


@dataclass(frozen=True)
class Segmentation:
    """Atoms found in a voxel grid.

    Attributes:
        positions: [n, 3] float, centroids in voxel index units, wrapped into [0, N) per axis.
        species: [n] int, majority atomic number of each region.
        regions: n arrays of flat voxel indices (home grid, C order) that form each atom's region.
        shape: the grid shape (N0, N1, N2).
    """

    positions: np.ndarray
    species: np.ndarray
    regions: list[np.ndarray]
    shape: tuple[int, int, int]

    @property
    def n_atoms(self) -> int:
        return int(self.species.shape[0])

    @property
    def frac_positions(self) -> np.ndarray:
        """[n, 3] fractional coordinates in [0, 1)."""
        return self.positions / np.asarray(self.shape, dtype=float)


def convexity(region: np.ndarray) -> float:
    """nonzero(R) / nonzero(convex hull of R) of a boolean image (SI eq. 1)."""
    n = int(np.count_nonzero(region))
    extent = np.ptp(np.argwhere(region), axis=0) if n else np.zeros(region.ndim)
    if n == 0 or np.any(extent == 0):
        return 1.0  # empty or flat (one voxel thick along an axis): no 3-D hull, nothing to split
    hull = convex_hull_image(region)
    return n / max(int(np.count_nonzero(hull)), n)


def _crop(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bounding box of `mask` with one empty voxel around it, and the box's origin in `mask`."""
    idx = np.argwhere(mask)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    box = mask[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    return np.pad(box, 1), lo - 1


def _watershed_split(region: np.ndarray, markers: np.ndarray) -> list[np.ndarray]:
    """Split boolean `region` by watershed from labelled `markers` (1..k) into k boolean masks."""
    background = ~dilation(region, _FOOTPRINT)  # certain background
    k = int(markers.max())
    seeds = markers.copy()
    seeds[background] = k + 1
    elevation = -ndimage.distance_transform_edt(region)
    flooded = watershed(elevation, seeds)
    return [region & (flooded == i) for i in range(1, k + 1)]


def _markers(foreground: np.ndarray, min_size: int) -> np.ndarray:
    """Connected components of the certain foreground, 1..k; fragments under `min_size` voxels
    (erosion debris at narrow necks) are no markers."""
    markers = label(foreground, connectivity=1)
    sizes = np.bincount(markers.ravel())
    keep = np.flatnonzero(sizes >= min_size)
    keep = keep[keep > 0]
    relabel = np.zeros(sizes.size, dtype=np.int32)
    relabel[keep] = np.arange(1, keep.size + 1)
    return relabel[markers]


def split_region(region: np.ndarray, it: int = 1, min_convexity: float = MIN_CONVEXITY,
                 max_iters: int = MAX_ITERS, min_size: int = MIN_SIZE,
                 period: np.ndarray | None = None) -> list[np.ndarray]:
    """Algorithm S1 on one connected boolean region R (a crop with an empty border voxel).

    Args:
        period: [3] grid period (periodic images); a region longer than one period along an axis
            joins an atom to its own images or to others and is never taken as one atom.

    Returns:
        one [m_k, 3] int array of voxel indices (into `region`) per atom found.
    """
    whole = [np.argwhere(region)]
    if it > max_iters or len(whole[0]) < min_size:
        return whole
    too_long = period is not None and bool(np.any(np.ptp(whole[0], axis=0) >= period))
    if not too_long and convexity(region) > min_convexity:
        return whole
    foreground = erosion(region, _FOOTPRINT)  # certain foreground
    if np.count_nonzero(foreground) < min_size:
        return whole
    markers = _markers(foreground, min_size)
    if markers.max() == 0:
        return whole
    if markers.max() == 1:  # one erosion did not split R: erode further at the next level
        parts = split_region(foreground, it + 1, min_convexity, max_iters, min_size, period)
        if len(parts) == 1:
            return whole
        markers = np.zeros(region.shape, dtype=np.int32)
        for i, part in enumerate(parts, start=1):
            markers[tuple(part.T)] = i
    out: list[np.ndarray] = []
    for sub in _watershed_split(region, markers):
        if np.count_nonzero(sub):
            crop, origin = _crop(sub)
            out.extend(p + origin for p in split_region(crop, it + 1, min_convexity, max_iters,
                                                        min_size, period))
    return out


def _margin(shape: tuple[int, ...], radius_vox: np.ndarray | None) -> tuple[int, int, int]:
    if radius_vox is None:
        return tuple(n // 2 for n in shape)  # type: ignore[return-value]
    return tuple(int(min(n, np.ceil(2 * r) + 2)) for n, r in zip(shape, radius_vox, strict=True))


def segment(
    species: np.ndarray,
    binary: np.ndarray | None = None,
    *,
    periodic: bool = True,
    radius_vox: np.ndarray | None = None,
    components: Literal["species", "binary"] = "species",
    min_convexity: float = MIN_CONVEXITY,
    max_iters: int = MAX_ITERS,
    min_size: int = MIN_SIZE,
    max_atoms: int | None = None,
) -> Segmentation:
    """Segment a species matrix into atoms (Algorithm S1, periodic-aware).

    Args:
        species: [N0, N1, N2] int, atomic number per voxel, 0 empty (S or the UNet's S').
        binary: [N0, N1, N2] bool mask (S_B); default species > 0. Voxels outside are ignored.
        periodic: treat the grid as one unit cell repeated in all three directions.
        radius_vox: [3] largest atom radius in voxels per axis; sets the periodic margin
            (2 r + 2, at most N; default N/2). Too small a margin cuts atoms at the padded border.
        components: label connected regions of one atomic number ('species') or of the mask
            ('binary').
        min_convexity, max_iters, min_size: the SI's parameters (0.8, 5, 8 voxels).
        max_atoms: stop after this many atoms; components are visited largest first, so a noisy
            image (an untrained model) costs a bounded effort.

    Returns:
        the atoms as a `Segmentation` (positions in voxel units, species, regions).
    """
    species = np.asarray(species)
    if species.ndim != 3:
        raise InvdesignError(f"species matrix must be 3-D, got shape {species.shape}")
    mask = species > 0 if binary is None else np.asarray(binary, dtype=bool)
    if mask.shape != species.shape:
        raise InvdesignError(f"binary mask shape {mask.shape} differs from species {species.shape}")
    if components not in ("species", "binary"):
        raise InvdesignError(f"components must be 'species' or 'binary', not {components!r}")
    shape = species.shape
    if components == "species":
        labelled_input = np.where(mask, species, 0)
    else:
        labelled_input = mask.astype(np.int16)
    pad = _margin(shape, radius_vox) if periodic else (0, 0, 0)
    width = [(p, p) for p in pad]
    image = np.pad(labelled_input, width, mode="wrap") if periodic else labelled_input
    s_pad = np.pad(species, width, mode="wrap") if periodic else species
    comp = label(image, background=0, connectivity=1)
    sizes = np.bincount(comp.ravel())  # [n_labels + 1] voxels per component
    ids = np.flatnonzero(sizes >= MIN_COMPONENT)
    ids = ids[ids > 0]  # components of < MIN_COMPONENT voxels are noise
    if max_atoms is not None:  # largest first; 27 periodic images per region at most
        ids = ids[np.argsort(-sizes[ids], kind="stable")][: 27 * max_atoms]
    # bounding boxes of the kept components only (find_objects is slow with many labels)
    rank = np.zeros(sizes.size, dtype=np.int32)
    rank[ids] = np.arange(1, ids.size + 1)
    boxes = dict(zip(ids, ndimage.find_objects(rank[comp]), strict=True))
    positions, votes, regions = [], [], []
    done: dict[tuple, list[np.ndarray]] = {}
    offset = np.asarray(pad)
    for k in ids:
        if max_atoms is not None and len(positions) >= max_atoms:
            break
        box = boxes[k]
        lo = np.asarray([b.start for b in box])
        hi = np.asarray([b.stop for b in box])
        if periodic and np.any((hi <= offset) | (lo >= offset + shape)):
            continue  # wholly outside the home cell: only periodic images of atoms kept elsewhere
        # periodic images of one region are identical crops: split each distinct crop once
        # (split_region depends on the crop and the period only)
        region = comp[box] == k
        key = (region.shape, region.tobytes())
        if key not in done:
            crop = np.pad(region, 1)  # room for the dilation
            period = np.asarray(shape) if periodic else None
            done[key] = split_region(crop, 1, min_convexity, max_iters, min_size, period)
        for atom in done[key]:
            idx = atom - 1 + lo  # [m, 3] padded-grid voxel indices
            if len(idx) < MIN_COMPONENT:
                continue
            centre = idx.mean(axis=0) - offset
            if periodic and not np.all((centre >= -0.5) & (centre < np.asarray(shape) - 0.5)):
                continue  # a periodic image; the atom is kept from the home cell
            home = np.mod(idx - offset, shape) if periodic else idx
            values = s_pad[tuple(idx.T)]
            values = values[values > 0]
            if values.size == 0:
                continue
            positions.append(np.mod(centre, shape) if periodic else centre)
            votes.append(int(np.bincount(values).argmax()))
            regions.append(np.ravel_multi_index(tuple(home.T), shape))
    pos = np.asarray(positions, dtype=float).reshape(-1, 3)
    return Segmentation(pos, np.asarray(votes, dtype=np.int64), regions, tuple(shape))
