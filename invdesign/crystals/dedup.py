"""Duplicate candidates: the same structure given twice, in another frame, is screened once.

Unit cells are compared with pymatgen's `StructureMatcher`: it reduces both cells to their
primitive Niggli cells, so one structure at another origin, in another setting (conventional vs
primitive, a and b swapped) or as a supercell matches itself. Its tolerances are set here
(`CELL_LTOL`, `CELL_STOL`, `CELL_ANGLE_TOL`) with `scale=False`, so lattices that differ by a few
percent are different candidates (pymatgen's defaults rescale volumes and accept 20 % in length).

Particles are compared by a fingerprint invariant under rotation, translation and atom
permutation: per element pair, the pair distances up to `FP_RMAX` binned on a fixed grid and
smeared with a Gaussian of width `FP_SIGMA`, per atom. Particles with other atom or species
counts are never the same; otherwise the L1 distance of the fingerprints (pairs per atom) must be
below `FP_TOL`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import cache
from math import gcd
from typing import TYPE_CHECKING

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.spatial import cKDTree

from invdesign.core.structure import Structure

if TYPE_CHECKING:  # heavy import only for type checkers
    from pymatgen.analysis.structure_matcher import StructureMatcher

#: StructureMatcher: lattice lengths within 2 %, angles within 2 deg (pymatgen: 20 %, 5 deg).
CELL_LTOL = 0.02
#: StructureMatcher site tolerance, in units of (volume / atom)^(1/3) (pymatgen's default).
CELL_STOL = 0.3
CELL_ANGLE_TOL = 2.0

#: Particle fingerprint grid: pair distances 0..FP_RMAX Å in bins of FP_DR Å, smeared by FP_SIGMA Å.
FP_RMAX = 12.0
FP_DR = 0.01
FP_SIGMA = 0.05
#: Two particles are the same below this L1 fingerprint distance (pairs per atom). Measured on
#: 13- to 147-atom Pt clusters and a 72-atom ZnO cut: a rotated, translated, permuted copy gives
#: ~1e-13, Gaussian noise of 1e-3 Å per coordinate up to 0.16, one atom moved by 0.5 Å 0.75-1.6.
#: One moved atom changes only its neighbours' pairs, so in particles of thousands of atoms it falls
#: below the tolerance (a practically identical candidate).
FP_TOL = 0.25
_CHUNK = 4096  # atoms per k-d tree query, so large particles stay within memory


@cache
def _matcher() -> StructureMatcher:
    # lazy: pymatgen's analysis package is heavy, loaded only when cells are compared
    from pymatgen.analysis.structure_matcher import StructureMatcher  # noqa: PLC0415

    return StructureMatcher(ltol=CELL_LTOL, stol=CELL_STOL, angle_tol=CELL_ANGLE_TOL,
                            primitive_cell=True, scale=False, attempt_supercell=False)


def _species_counts(s: Structure) -> tuple[tuple[int, int], ...]:
    """((Z, count), ...) sorted by Z."""
    return tuple(sorted(Counter(s.species.tolist()).items()))


def _reduced_counts(s: Structure) -> tuple[tuple[int, int], ...]:
    """Species counts divided by their greatest common divisor: the reduced composition."""
    counts = _species_counts(s)
    g = 0
    for _, c in counts:
        g = gcd(g, c)
    return tuple((z, c // max(g, 1)) for z, c in counts)


def _pair_distances(pos: np.ndarray, rmax: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs i < j closer than `rmax` Å of positions [n, 3]: (i [m], j [m], d [m] Å)."""
    tree = cKDTree(pos)
    out_i, out_j, out_d = [], [], []
    for start in range(0, len(pos), _CHUNK):
        sub = cKDTree(pos[start:start + _CHUNK])
        m = sub.sparse_distance_matrix(tree, rmax, output_type="ndarray")
        i = m["i"].astype(np.int64) + start
        keep = i < m["j"]
        out_i.append(i[keep])
        out_j.append(m["j"][keep].astype(np.int64))
        out_d.append(m["v"][keep])
    return np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d)


def fingerprint(s: Structure) -> np.ndarray:
    """Rotation-, translation- and permutation-invariant fingerprint of a particle.

    Layout (float [1 + 2m + p * nbins]): m, the m atomic numbers (ascending), their counts, then for
    each of the p = m(m+1)/2 element pairs (Z1 <= Z2, in order) the pair-distance histogram on the
    grid 0..FP_RMAX Å (nbins = FP_RMAX / FP_DR bins), Gaussian-smeared (FP_SIGMA Å) and divided by
    the atom count and FP_DR: a pair density per atom in 1/Å, whose L1 integral is pairs per atom.
    A unit cell is fingerprinted as the particle of its atoms (no periodic images).
    """
    counts = _species_counts(s)
    zs = [z for z, _ in counts]
    m = len(zs)
    nbins = round(FP_RMAX / FP_DR)
    n_types = m * (m + 1) // 2
    hist = np.zeros(n_types * nbins)
    if s.n_atoms > 1:
        i, j, d = _pair_distances(s.positions, FP_RMAX)
        rank = np.searchsorted(zs, s.species)  # [n] element index 0..m-1
        a, b = np.minimum(rank[i], rank[j]), np.maximum(rank[i], rank[j])
        ptype = a * m - a * (a - 1) // 2 + (b - a)  # index of the pair (a <= b) in row order
        # linear (cloud-in-cell) binning: the histogram moves continuously with the distances,
        # so a distance on a bin edge does not jump bins under rounding noise
        x = np.minimum(d / FP_DR, nbins - 1.0)
        lo = np.minimum(x.astype(np.int64), nbins - 2)
        w = x - lo
        base = ptype * nbins + lo
        size = n_types * nbins
        hist = (np.bincount(base, 1.0 - w, minlength=size)
                + np.bincount(base + 1, w, minlength=size))
        hist = gaussian_filter1d(hist.reshape(n_types, nbins), FP_SIGMA / FP_DR, axis=1,
                                 mode="constant").ravel()
        hist /= s.n_atoms * FP_DR
    header = [float(m), *map(float, zs), *(float(c) for _, c in counts)]
    return np.concatenate([np.asarray(header), hist])


def fingerprint_distance(fa: np.ndarray, fb: np.ndarray) -> float:
    """L1 distance (pairs per atom) of two particle fingerprints; inf when their species differ."""
    if fa.shape != fb.shape:
        return float("inf")
    m = int(fa[0])
    head = 1 + 2 * m
    if not np.array_equal(fa[:head], fb[:head]):
        return float("inf")
    return float(np.abs(fa[head:] - fb[head:]).sum() * FP_DR)


def same_structure(a: Structure, b: Structure) -> bool:
    """True if `a` and `b` are one structure: cells by `StructureMatcher` (other origin, setting or
    supercell), particles by fingerprint (same atom and species counts, distance < FP_TOL). A
    cell and a particle are never the same."""
    if a.kind != b.kind:
        return False
    if a.is_periodic:
        if _reduced_counts(a) != _reduced_counts(b):
            return False
        return bool(_matcher().fit(a.to_pymatgen(), b.to_pymatgen()))
    if _species_counts(a) != _species_counts(b):
        return False
    return fingerprint_distance(fingerprint(a), fingerprint(b)) < FP_TOL


def deduplicate(items: Sequence[Structure]) -> tuple[list[int], list[int]]:
    """Collapse duplicates; the first occurrence of a structure is kept.

    Returns:
        kept: indices of the kept items, ascending.
        merged_into: [len(items)], for each item the kept index it merged into (itself if kept).
    Cells are compared only within one reduced composition (`StructureMatcher.group_structures`
    per composition), particles only within one set of species counts.
    """
    merged_into = list(range(len(items)))
    groups: dict[tuple, list[int]] = {}
    for k, s in enumerate(items):
        key = (s.kind, _reduced_counts(s) if s.is_periodic else _species_counts(s))
        groups.setdefault(key, []).append(k)
    for (kind, _), idx in groups.items():
        if len(idx) < 2:
            continue
        if kind == "unit_cell":
            _group_cells(items, idx, merged_into)
        else:
            _group_particles(items, idx, merged_into)
    kept = [k for k, m in enumerate(merged_into) if m == k]
    return kept, merged_into


def _group_cells(items: Sequence[Structure], idx: list[int], merged_into: list[int]) -> None:
    """Cells `idx` (one reduced composition): each group merges into its lowest index."""
    pmg = [items[k].to_pymatgen() for k in idx]
    where = {id(p): k for p, k in zip(pmg, idx, strict=True)}
    for group in _matcher().group_structures(pmg):
        members = sorted(where[id(p)] for p in group)
        for k in members:
            merged_into[k] = members[0]


def _group_particles(items: Sequence[Structure], idx: list[int], merged_into: list[int]) -> None:
    """Particles `idx` (one set of species counts): greedy, each against the kept ones in order."""
    kept: list[tuple[int, np.ndarray]] = []
    for k in idx:
        fp = fingerprint(items[k])
        match = next((r for r, f in kept if fingerprint_distance(f, fp) < FP_TOL), None)
        if match is None:
            kept.append((k, fp))
        else:
            merged_into[k] = match
