"""Per-atom descriptors of a particle's local environments for the particle excess-energy model
(`excess.py`): element descriptors, a sparse neighbour list (scipy's k-d tree, all pairs within a
cutoff; no dense n x n matrix), Gaussian neighbour counts in distance and in reduced distance,
first-shell bond-orientational orders q2/q4/q6, and an optional particle-relative block. Cost is
linear in atoms.
"""

from __future__ import annotations

import math
import warnings
from functools import cache

import numpy as np
from scipy.sparse import csr_matrix
from scipy.spatial import cKDTree

from invdesign.core import elements
from invdesign.core.structure import Structure

MAX_Z = 103  # the largest atomic number with a descriptor row


@cache
def element_descriptors() -> np.ndarray:
    """[MAX_Z + 1, 8] float32 per atomic number (row 0 unused), scaled to O(1): Pauling
    electronegativity / 4, row / 7, group / 18, metallic-else-atomic radius (Å), atomic radius (Å),
    electron affinity / 4 (eV), metal flag, MP elemental reference energy mu / 10 (eV/atom; a
    cohesive-energy scale, which carries the bond strength to materials not trained on). NaN where
    pymatgen/mendeleev/the MP table lack a value."""
    from pymatgen.core import Element  # noqa: PLC0415 - lazy: only the descriptor table needs it

    from invdesign.evaluators.property.reference import elemental_references  # noqa: PLC0415

    mu = elemental_references()
    table = elements._table()  # noqa: SLF001 - the project's element table
    out = np.full((MAX_Z + 1, 8), np.nan, dtype=np.float32)
    for z in range(1, MAX_Z + 1):
        el = Element.from_Z(z)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pymatgen warns for noble gases without an X
            x = float(el.X)
        group = float(el.group) if el.group else np.nan
        out[z] = [
            x / 4.0,
            el.row / 7.0,
            group / 18.0,
            float(elements.metallic_radius(z)) if np.isfinite(elements.metallic_radius(z))
            else np.nan,
            table["atomic_radius"][z - 1] / 100.0,
            table["electron_affinity"][z - 1] / 4.0,
            float(elements.is_metal(z)),
            mu.get(elements.symbol(z), np.nan) / 10.0,
        ]
    return out


def pair_radius(z: np.ndarray) -> np.ndarray:
    """[n] radius per atom (Å) for reduced distances: metallic, else Slater atomic radius."""
    return np.asarray(elements.metallic_radius(np.asarray(z, dtype=int)), dtype=np.float64)


def neighbour_pairs(positions: np.ndarray, cutoff: float) -> tuple[np.ndarray, np.ndarray,
                                                                    np.ndarray]:
    """Directed pairs (i, j, distance Å) with 0 < |r_i - r_j| <= cutoff, both directions, from a
    k-d tree (cost ~ n x neighbours). Sorted by i, then j."""
    positions = np.asarray(positions, dtype=np.float64)
    tree = cKDTree(positions)
    pairs = tree.query_pairs(cutoff, output_type="ndarray")
    if pairs.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    i = np.concatenate([pairs[:, 0], pairs[:, 1]]).astype(np.int64)
    j = np.concatenate([pairs[:, 1], pairs[:, 0]]).astype(np.int64)
    order = np.lexsort((j, i))
    i, j = i[order], j[order]
    d = np.linalg.norm(positions[i] - positions[j], axis=1)
    return i, j, d


# Radial channels: Gaussians of the reduced distance s = d / (r_i + r_j) (shell structure of any
# material on one scale) and of the distance itself (Å), smoothly cut off at `cutoff`.
REDUCED_CENTRES = np.linspace(0.6, 2.0, 15)
REDUCED_WIDTH = 0.1
DISTANCE_CENTRES = np.linspace(1.0, 5.5, 10)
DISTANCE_WIDTH = 0.35
FIRST_SHELL = 1.3  # s below which a neighbour counts as first shell (smooth step, width 0.05)


def _gaussians(x: np.ndarray, centres: np.ndarray, width: float) -> np.ndarray:
    return np.exp(-(((x[:, None] - centres[None, :]) / width) ** 2))


def _sum_by_atom(i: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """[n, k] sums of per-edge `values` [e, k] over each atom's edges (a sparse [n, e] incidence
    matrix times `values`: linear in edges)."""
    incidence = csr_matrix((np.ones(i.size), (i, np.arange(i.size))), shape=(n, i.size))
    return np.asarray(incidence @ values)


def n_features(relative: bool = False) -> int:
    """Width of `atom_features` (with or without the particle-relative block)."""
    own = REDUCED_CENTRES.size + 2 + len(STEINHARDT)
    base = 2 * own + REDUCED_CENTRES.size + DISTANCE_CENTRES.size + element_descriptors().shape[1]
    return base + (N_RELATIVE if relative else 0)


# Particle-relative block: each atom's reduced counts (15) and first-shell coordination (1) minus
# the INTERIOR_QUANTILE of the same column over the particle's atoms of its element (the atom's
# deficit against the particle's own most-coordinated, bulk-like atoms of that element; computable
# from the particle alone); the broken-bond fraction b = 1 - sqrt(CN / CN_interior) (the
# second-moment bond-cutting estimate of a surface atom's energy share) and b x mu / 10 (that share
# on the element's cohesive scale, for materials not trained on); and two particle-level terms:
# n^(-1/3) (a surface-fraction scale, 0 for the bulk) and the particle's mean first-shell deficit.
INTERIOR_QUANTILE = 90.0
N_RELATIVE = REDUCED_CENTRES.size + 1 + 2 + 2


STEINHARDT = (2, 4, 6)  # bond-orientational orders q_l of the first shell


# Legendre polynomials P_l(x) as coefficients of x^0, x^2, x^4, x^6 (even l only)
_LEGENDRE = {2: (-0.5, 1.5, 0.0, 0.0), 4: (3 / 8, -30 / 8, 35 / 8, 0.0),
             6: (-5 / 16, 105 / 16, -315 / 16, 231 / 16)}


@cache
def _monomials(power: int) -> tuple[np.ndarray, np.ndarray]:
    """Exponents [k, 3] (a + b + c = power) and multinomial weights [k] with
    (u . v)^power = sum_k weight_k (u_x v_x)^a (u_y v_y)^b (u_z v_z)^c."""
    exps = np.array([(a, b, power - a - b) for a in range(power + 1)
                     for b in range(power + 1 - a)])
    weights = np.array([math.factorial(power) / math.prod(math.factorial(int(e)) for e in row)
                        for row in exps])
    return exps, weights


def _steinhardt(i: np.ndarray, unit: np.ndarray, w: np.ndarray, n: int) -> np.ndarray:
    """[n, len(STEINHARDT)] bond-orientational orders q_l of the `w`-weighted edges of each atom
    (unit vectors `unit` [e, 3]). By the addition theorem, q_l^2 = 4 pi / (2l + 1) sum_m
    |<Y_lm>|^2 = sum_jk w_j w_k P_l(u_j . u_k) / W^2, and sum_jk w_j w_k (u_j . u_k)^p is a
    weighted sum of squared per-atom monomial moments: linear in edges, no spherical harmonics."""
    keep = w > 1e-3
    i, unit, w = i[keep], unit[keep], w[keep]
    total = np.bincount(i, weights=w, minlength=n)
    # powers 0..6 of each component by repeated products ([e, 7] per axis): fast, exact
    pw = np.ones((3, unit.shape[0], 7))
    for p in range(1, 7):
        pw[:, :, p] = pw[:, :, p - 1] * unit.T
    sums = {0: total**2}
    for power in (2, 4, 6):
        exps, weights = _monomials(power)
        mono = pw[0][:, exps[:, 0]] * pw[1][:, exps[:, 1]] * pw[2][:, exps[:, 2]]
        sums[power] = (_sum_by_atom(i, mono * w[:, None], n) ** 2) @ weights
    out = np.zeros((n, len(STEINHARDT)))
    for k, order in enumerate(STEINHARDT):
        c = _LEGENDRE[order]
        value = c[0] * sums[0] + c[1] * sums[2] + c[2] * sums[4] + c[3] * sums[6]
        out[:, k] = np.sqrt(np.maximum(value, 0.0)) / np.maximum(total, 1e-6)
    return out


def _relative_block(z: np.ndarray, columns: np.ndarray, mu: np.ndarray, n_total: float
                    ) -> np.ndarray:
    """[n, N_RELATIVE]: deficits of `columns` [n, 16] (last: first-shell coordination) against the
    per-element INTERIOR_QUANTILE, the broken-bond fraction b and b x `mu` (eV/atom / 10),
    n_total^(-1/3) (0 for an infinite crystal) and the mean first-shell deficit."""
    ref = np.zeros_like(columns)
    for element in np.unique(z):
        mask = z == element
        ref[mask] = np.percentile(columns[mask], INTERIOR_QUANTILE, axis=0)
    deficit = columns - ref
    broken = 1.0 - np.sqrt(np.clip(columns[:, -1] / np.maximum(ref[:, -1], 1e-6), 0.0, 4.0))
    size = 0.0 if not np.isfinite(n_total) else float(n_total) ** (-1.0 / 3.0)
    glob = np.broadcast_to([size, float(deficit[:, -1].mean())], (len(z), 2))
    return np.concatenate([deficit, broken[:, None], (broken * mu)[:, None], glob], axis=1)


def atom_features(structure: Structure, cutoff: float = 5.5, relative: bool = False,
                  core: int | None = None) -> np.ndarray:
    """[n_atoms, n_features(relative)] float32 descriptors of each atom's local environment.

    Per atom i, over the neighbours j within `cutoff` Å (k-d tree pairs, cosine cutoff f(d)):
    Gaussian counts in the reduced distance s_ij (15), the same weighted by the electronegativity
    difference (X_j - X_i) / 4 (15; tells cation from anion shells), Gaussian counts in d_ij (10),
    the length of the mean unit vector to first-shell neighbours and to all neighbours (2; ~0 in
    the bulk, large at a surface), the first shell's bond-orientational orders q_2, q_4, q_6 (3),
    the first-shell mean of the neighbours' reduced counts, vector lengths and q_l (20; the next
    shell), and i's element descriptors (8). With `relative`, the particle-relative block (20, see
    N_RELATIVE). All invariant to rotation, translation and atom order.

    `core`: return only the first `core` atoms and treat them as an infinite crystal (the
    relative block's reference is taken over them and the size term is 0); `bulk_input` uses it.
    """
    z = structure.species
    n = structure.n_atoms
    pos = structure.positions
    desc = np.nan_to_num(element_descriptors()[z], nan=0.0)
    i, j, d = neighbour_pairs(pos, cutoff)
    r = pair_radius(z)
    s = d / (r[i] + r[j])
    fc = 0.5 * (np.cos(np.pi * d / cutoff) + 1.0)
    g = _gaussians(s, REDUCED_CENTRES, REDUCED_WIDTH) * fc[:, None]
    dx = (desc[j, 0] - desc[i, 0])[:, None]  # electronegativity difference / 4
    gd = _gaussians(d, DISTANCE_CENTRES, DISTANCE_WIDTH) * fc[:, None]
    counts = _sum_by_atom(i, g, n)
    first = 1.0 / (1.0 + np.exp((s - FIRST_SHELL) / 0.05)) * fc
    unit = (pos[j] - pos[i]) / np.maximum(d, 1e-9)[:, None]
    vec = np.zeros((n, 2))
    for k, w in enumerate((first, fc)):
        total = _sum_by_atom(i, unit * w[:, None], n)
        weight = np.bincount(i, weights=w, minlength=n)
        vec[:, k] = np.linalg.norm(total, axis=1) / np.maximum(weight, 1e-6)
    own = np.concatenate([counts, vec, _steinhardt(i, unit, first, n)], axis=1)
    first_weight = np.bincount(i, weights=first, minlength=n)
    second = _sum_by_atom(i, own[j] * first[:, None], n) / np.maximum(first_weight, 1e-6)[:, None]
    feats = np.concatenate([own, _sum_by_atom(i, g * dx, n), _sum_by_atom(i, gd, n), second,
                            desc], axis=1)
    keep = n if core is None else int(core)
    feats = feats[:keep]
    if relative:
        columns = np.concatenate([counts[:keep], first_weight[:keep, None]], axis=1)
        feats = np.concatenate(
            [feats, _relative_block(z[:keep], columns, desc[:keep, 7],
                                    math.inf if core is not None else n)],
            axis=1)
    return feats.astype(np.float32)


# Neighbour-species shells (`species_shells`): Gaussian counts in the reduced distance, one set per
# neighbour element. The network contracts them with a learned element embedding (a one-layer
# SchNet-like interaction; exact, since the contraction is linear in the counts).
SHELL_CENTRES = np.linspace(0.7, 1.9, 8)
SHELL_WIDTH = 0.15
SHELL_SCALE = 0.25  # counts reach ~12 in a close-packed first shell


def species_shells(structure: Structure, cutoff: float = 5.5, core: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(shells [n, len(SHELL_CENTRES), k] float32, elements [k] int64): for each atom i and each
    of the structure's k elements e (sorted), the cosine-cut-off Gaussian counts in the reduced
    distance s_ij over the neighbours j of element e, times SHELL_SCALE. k-d tree pairs within
    `cutoff` Å; cost linear in atoms. `core`: only the first `core` atoms (as `atom_features`)."""
    z = structure.species
    n = structure.n_atoms
    present = np.unique(z).astype(np.int64)
    i, j, d = neighbour_pairs(structure.positions, cutoff)
    r = pair_radius(z)
    s = d / (r[i] + r[j])
    fc = 0.5 * (np.cos(np.pi * d / cutoff) + 1.0)
    g = _gaussians(s, SHELL_CENTRES, SHELL_WIDTH) * (SHELL_SCALE * fc)[:, None]
    column = np.searchsorted(present, z[j])
    out = np.zeros((n, SHELL_CENTRES.size, present.size))
    for k in range(present.size):
        mask = column == k
        out[:, :, k] = _sum_by_atom(i[mask], g[mask], n)
    keep = n if core is None else int(core)
    return out[:keep].astype(np.float32), present
