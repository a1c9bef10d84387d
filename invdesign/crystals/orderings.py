"""Ordered variants of a structure type whose site is shared by two elements.

Many real compounds are a simple type with one site shared by two elements in an ordered way:
NaLaTiO4 is K2NiF4 with Na and La layered on the A site, Sr2YbNbO6 and cryolite Na2LiAlF6 are the
orthorhombic perovskite with the B site ordered like rock salt (P2_1/n). `split_placements` finds
the ways a composition with one element more than a type has roles fits it with one role split
between two elements; `orderings` enumerates the distinct arrangements of the two elements over
that role's sites of the conventional cell, one cell each, most symmetric first. Two arrangements
are the same when a symmetry operation of the parent cell (spglib) maps one on the other.

No supercells: a split whose counts do not fit the conventional cell's sites is not offered.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import spglib

from invdesign.core.structure import Structure
from invdesign.crystals.symmetry import site_operations

#: Arrangements tried per split (more sites than this many combinations are not enumerated).
MAX_COMBINATIONS = 5000
#: Distinct arrangements kept per split, most symmetric first.
MAX_ORDERINGS = 4
#: Arrangements with fewer than this fraction of the most symmetric one's operations are dropped
#: (an R3c perovskite's B sites ordered in R3 are kept, the P3 orderings that lose the centring are
#: not): ordered compounds mostly keep a maximal symmetry of the parent.
MIN_SYMMETRY = 0.5
SYMPREC = 1e-3


@dataclass(frozen=True)
class Split:
    """One role shared by two elements: `assignment` gives every role an element (`first` on the
    split role); `n_first` of the role's `n_sites` conventional-cell sites take `first`, the rest
    `second`."""

    assignment: dict[str, int]
    role: str
    first: int
    second: int
    n_first: int
    n_sites: int


def split_placements(roles: Mapping[str, float], sites: Mapping[str, int],
                     allowed: Sequence[Mapping[str, Sequence[int]]],
                     target: Mapping[int, float], tol: float) -> list[Split]:
    """Every way to place the composition `target` (atomic number -> atomic fraction) on a type
    whose roles (role -> atoms per formula unit; `sites`: role -> sites in the conventional cell)
    number one fewer than the elements, with one role split between two elements.

    `allowed` lists, per anion choice, the elements each role may take (`library._candidates`);
    the two elements of the split role take no other role. The split counts are the nearest
    integers to the composition's ratio and every atomic fraction must match within `tol`.
    """
    present = sorted(target)
    names = list(roles)
    if len(present) != len(names) + 1:
        return []
    total = float(sum(roles.values()))
    found: list[Split] = []
    for choice in allowed:
        for role in names:
            others = [r for r in names if r != role]
            for pair in itertools.combinations(choice[role], 2):
                rest = [z for z in present if z not in pair]
                for combo in itertools.product(*(choice[r] for r in others)):
                    if sorted(combo) != rest:
                        continue
                    split = _split(roles, sites, target, total, role, pair,
                                   dict(zip(others, combo, strict=True)), tol)
                    if split is not None and split not in found:
                        found.append(split)
    return found


def _split(roles: Mapping[str, float], sites: Mapping[str, int], target: Mapping[int, float],
           total: float, role: str, pair: tuple[int, int], fixed: dict[str, int],
           tol: float) -> Split | None:
    a, b = pair
    n = int(sites[role])
    k = int(round(n * target[a] / (target[a] + target[b])))
    if not 0 < k < n:
        return None
    got = dict.fromkeys(target, 0.0)
    for r, z in fixed.items():
        got[z] += roles[r] / total
    got[a] += roles[role] / total * k / n
    got[b] += roles[role] / total * (n - k) / n
    if max(abs(got[z] - target[z]) for z in target) > tol + 1e-12:
        return None
    return Split({**fixed, role: int(a)}, role, int(a), int(b), k, n)


def orderings(cell: Structure, split: Split, max_orderings: int = MAX_ORDERINGS,
              min_symmetry: float = MIN_SYMMETRY, symprec: float = SYMPREC) -> list[Structure]:
    """The distinct arrangements of `split.first` / `split.second` over the sites of `cell` whose
    info `roles` is `split.role` (cell from `StructureType.cell(split.assignment)`), at most
    `max_orderings`, most symmetric first (then by enumeration order), none with fewer than
    `min_symmetry` times the most symmetric one's symmetry operations. Each cell's info gains
    `ordering` (its space-group symbol) and `split` (role, elements, counts)."""
    roles = np.asarray(cell.info["roles"])
    idx = np.flatnonzero(roles == split.role)
    if idx.size != split.n_sites or math.comb(idx.size, split.n_first) > MAX_COMBINATIONS:
        return []
    perms = _site_permutations(cell, idx, symprec)
    seen: set[tuple[int, ...]] = set()
    variants: list[tuple[int, int, Structure]] = []
    for order, combo in enumerate(itertools.combinations(range(idx.size), split.n_first)):
        if combo in seen:
            continue
        seen.update(tuple(sorted(p[list(combo)])) for p in perms)
        species = cell.species.copy()
        species[idx] = split.second
        species[idx[list(combo)]] = split.first
        out = Structure(species, cell.positions.copy(), cell.cell.copy(), "unit_cell",
                        dict(cell.info))
        n_ops, symbol = _symmetry(out, symprec)
        out.info.update(ordering=symbol, split={"role": split.role, "first": split.first,
                                                "second": split.second,
                                                "n_first": split.n_first,
                                                "n_sites": split.n_sites})
        variants.append((-n_ops, order, out))
    variants.sort(key=lambda v: (v[0], v[1]))
    kept = [v for v in variants if -v[0] >= min_symmetry * -variants[0][0]] if variants else []
    return [v[2] for v in kept[:max_orderings]]


def _spglib_cell(cell: Structure) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return cell.cell, cell.frac_positions % 1.0, cell.species


def _site_permutations(cell: Structure, idx: np.ndarray, symprec: float) -> list[np.ndarray]:
    """Each symmetry operation of `cell` (the split role's sites all one element) as a permutation
    of those sites (positions in `idx`)."""
    where = {int(atom): k for k, atom in enumerate(idx)}
    return [np.array([where[int(op.image[atom])] for atom in idx])
            for op in site_operations(*_spglib_cell(cell), symprec)]


def _symmetry(cell: Structure, symprec: float) -> tuple[int, str]:
    """Number of symmetry operations and the space-group symbol of `cell` (spglib)."""
    data = spglib.get_symmetry_dataset(_spglib_cell(cell), symprec=symprec)
    if data is None:
        return 1, "P1"
    return len(data.rotations), str(data.international)
