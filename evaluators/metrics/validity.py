"""Validity of a candidate structure: atoms not overlapping, composition kept.

The distance rule is the project's (`invdesign.core.geometry`): no two atoms closer than
`MIN_DISTANCE_FRACTION` (0.7) x the sum of their atomic radii, the Slater radii of
`invdesign.core.elements.atomic_radius` (ASE's covalent radii for the few elements without one:
Kr, Xe, At, Rn, Fr, Cm-Lr). Examples: Na-Cl 1.96 Å, Zn-O 1.365 Å, Cd-Se 1.89 Å, Pt-Pt 1.89 Å.
Unit cells are checked with periodic images (an ASE neighbour list, so an atom too close to its
own image counts), particles with a scipy k-d tree; both are linear in the atom count.

The composition rule: every element of the composition is present, and the largest absolute
difference of atomic fractions (over the elements of either) is at most `tol`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from ase.data import covalent_radii
from ase.neighborlist import neighbor_list
from scipy.spatial import cKDTree

from invdesign.core import elements
from invdesign.core.geometry import MIN_DISTANCE_FRACTION
from invdesign.core.structure import Structure

#: Cut-off (Å) of the neighbour search for the minimum distance of a unit cell; when no pair is
#: closer, `Structure.min_distance` searches the whole cell.
_NEAR = 4.0


@dataclass(frozen=True)
class Validity:
    """Validity of one structure.

    Attributes:
        valid: no missing element, stoichiometry_error <= tol and the distance rule holds.
        min_distance: smallest interatomic distance in Å (periodic images for unit cells; inf for
            a single atom without images).
        stoichiometry_error: max over elements of |atomic fraction in s - in composition| (0 when
            no composition is given).
        missing: symbols of the composition's elements absent from the structure, in Z order.
        reason: one short line saying why it is invalid (every failed rule, '; '-separated);
            '' when valid.
    """

    valid: bool
    min_distance: float
    stoichiometry_error: float
    missing: tuple[str, ...]
    reason: str


def radii(species: np.ndarray) -> np.ndarray:
    """[n] radii (Å) of the distance rule for atomic numbers `species` [n]."""
    z = np.asarray(species, dtype=int)
    r = np.asarray(elements.atomic_radius(z), dtype=float)
    return np.where(np.isnan(r), covalent_radii[z], r)


def _contacts(s: Structure, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs closer than `cutoff` Å: (i [m], j [m], d [m] Å); periodic images for unit cells."""
    if s.is_periodic:
        i, j, d = neighbor_list("ijd", s.to_ase(), cutoff=cutoff)
        return i, j, d
    pairs = cKDTree(s.positions).query_pairs(cutoff, output_type="ndarray")  # [m, 2]
    i, j = pairs[:, 0], pairs[:, 1]
    return i, j, np.linalg.norm(s.positions[i] - s.positions[j], axis=1)


def min_distance(s: Structure) -> float:
    """Smallest interatomic distance in Å (periodic images for unit cells), linear in atoms."""
    if s.is_periodic:
        d = _contacts(s, _NEAR)[2]
        return float(d.min()) if d.size else s.min_distance()
    if s.n_atoms < 2:
        return float("inf")
    return float(cKDTree(s.positions).query(s.positions, k=2)[0][:, 1].min())


def _worst_contact(s: Structure) -> tuple[float, str]:
    """(smallest d / (r_i + r_j), 'Zn-O 1.14 Å') over all pairs; (inf, '') when none is close."""
    r = radii(s.species)
    if s.n_atoms == 0:
        return float("inf"), ""
    i, j, d = _contacts(s, MIN_DISTANCE_FRACTION * 2.0 * float(r.max()))
    if d.size == 0:
        return float("inf"), ""
    ratio = d / (r[i] + r[j])
    k = int(np.argmin(ratio))
    a, b = sorted((int(s.species[i[k]]), int(s.species[j[k]])))
    limit = MIN_DISTANCE_FRACTION * (r[i[k]] + r[j[k]])
    return float(ratio[k]), (f"{elements.symbol(a)}-{elements.symbol(b)} {d[k]:.2f} Å < "
                             f"{limit:.2f} Å")


def stoichiometry(s: Structure, composition: dict[int, float]) -> tuple[float, tuple[str, ...]]:
    """(max |atomic fraction difference|, missing symbols) of `s` against `composition`
    (atomic number -> amount; any normalisation)."""
    total = float(sum(composition.values()))
    want = {int(z): float(a) / total for z, a in composition.items()}
    counts = Counter(s.species.tolist())
    have = {int(z): c / max(s.n_atoms, 1) for z, c in counts.items()}
    error = max(abs(have.get(z, 0.0) - want.get(z, 0.0)) for z in set(want) | set(have))
    missing = tuple(elements.symbol(z) for z in sorted(want) if want[z] > 0 and z not in counts)
    return float(error), missing


def check_validity(s: Structure, composition: dict[int, float] | None, *,
                   tol: float = 0.1) -> Validity:
    """Check the distance rule and, when `composition` (atomic number -> amount) is given, that
    every element is present and the atomic fractions agree within `tol`."""
    d_min = min_distance(s)
    ratio, contact = _worst_contact(s)
    error, missing = stoichiometry(s, composition) if composition else (0.0, ())
    problems = []
    if missing:
        problems.append(f"missing element{'s' if len(missing) > 1 else ''} {' '.join(missing)}")
    if error > tol:
        problems.append(f"stoichiometry off by {error:.3f} in atomic fraction (tolerance {tol:g})")
    if ratio < MIN_DISTANCE_FRACTION:
        problems.append(f"atoms too close: {contact} ({MIN_DISTANCE_FRACTION:g} x sum of radii)")
    reason = "; ".join(problems)
    return Validity(valid=not reason, min_distance=d_min, stoichiometry_error=error,
                    missing=missing, reason=reason)
