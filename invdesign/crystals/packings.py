"""Candidate particles of a metal from known packings (beyond a generator's atom limit).

Spheres cut from fcc, hcp and bcc lattices (ase.build) and the cluster shapes of ase.cluster
(truncated octahedron, cuboctahedron, icosahedron, Marks decahedron), all scaled so that their
nearest-neighbour distance is the one read off the data, at diameters around the size estimated
from the data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.cluster import Decahedron, Icosahedron, Octahedron
from ase.data import reference_states

from invdesign.core import elements
from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure

LATTICES = ("fcc", "hcp", "bcc")
CLUSTERS = ("octahedron", "cuboctahedron", "icosahedron", "decahedron")
#: Diameter multipliers tried around the estimate, most likely first.
SIZE_STEPS = (1.0, 0.85, 1.15, 0.7, 1.3)
#: Lattice-constant multipliers tried for bulk samples (the size is then a modelling choice).
SCALE_STEPS = (1.0, 0.99, 1.01)


def reference_packing(z: int) -> str:
    """The element's ground-state packing if fcc, hcp or bcc (ase reference states), else fcc."""
    state = reference_states[z] or {}
    return state.get("symmetry") if state.get("symmetry") in LATTICES else "fcc"


def packing_cell(packing: str, z: int, nn: float, orthorhombic: bool = False) -> Atoms:
    """The conventional cell of an fcc/bcc/hcp lattice of element `z` with nearest-neighbour
    distance `nn` Å (ideal c/a for hcp; `orthorhombic`: hcp's orthorhombic cell)."""
    symbol = elements.symbol(z)
    if packing == "fcc":
        return bulk(symbol, "fcc", a=nn * np.sqrt(2.0), cubic=True)
    if packing == "bcc":
        return bulk(symbol, "bcc", a=2.0 * nn / np.sqrt(3.0), cubic=True)
    if packing == "hcp":
        return bulk(symbol, "hcp", a=nn, c=nn * np.sqrt(8.0 / 3.0), orthorhombic=orthorhombic)
    raise ValueError(f"unknown packing {packing!r}")


def lattice_sphere(packing: str, z: int, nn: float, diameter: float) -> Atoms:
    """Atoms of `packing` lattice with nearest-neighbour distance `nn` Å within a sphere of
    `diameter` Å centred on the atom closest to the block's centre."""
    cell = packing_cell(packing, z, nn, orthorhombic=True)
    reps = [int(np.ceil(diameter / length)) + 2 for length in cell.cell.lengths()]
    block = cell.repeat(reps)
    pos = block.positions
    centre = pos[np.argmin(np.linalg.norm(pos - pos.mean(0), axis=1))]
    pos = pos - centre
    keep = np.linalg.norm(pos, axis=1) <= diameter / 2.0 + 1e-6
    return Atoms(numbers=block.numbers[keep], positions=pos[keep])


def _cluster_family(shape: str, symbol: str, a: float) -> Callable[[int], Atoms]:
    """Shape -> function of a size index k >= 1 giving ever larger clusters."""
    if shape == "icosahedron":
        return lambda k: Icosahedron(symbol, noshells=k + 1, latticeconstant=a)
    if shape == "decahedron":  # Marks decahedron: re-entrant corners (r = 1) when large enough
        return lambda k: Decahedron(symbol, p=k + 1, q=k + 1, r=1 if k > 1 else 0,
                                    latticeconstant=a)
    if shape == "octahedron":  # truncated octahedron, corners cut by a third of the edge
        return lambda k: Octahedron(symbol, length=k + 2, cutoff=(k + 2) // 3, latticeconstant=a)
    if shape == "cuboctahedron":
        return lambda k: Octahedron(symbol, length=2 * k + 1, cutoff=k, latticeconstant=a)
    raise ValueError(f"unknown cluster shape {shape!r}")


def equivalent_diameter(positions: np.ndarray) -> float:
    """Diameter (Å) of the uniform sphere with the same radius of gyration as `positions` [n, 3]."""
    centred = positions - positions.mean(0)
    rg = np.sqrt((centred**2).sum(1).mean())
    return float(2.0 * np.sqrt(5.0 / 3.0) * rg)


def cluster(shape: str, z: int, nn: float, diameter: float) -> Atoms:
    """The ase.cluster `shape` (fcc-based, lattice constant sqrt(2) nn) whose equivalent-sphere
    diameter is closest to `diameter` Å."""
    build = _cluster_family(shape, elements.symbol(z), nn * np.sqrt(2.0))
    best, best_err = None, np.inf
    for k in range(1, 60):
        atoms = build(k)
        err = abs(equivalent_diameter(atoms.positions) - diameter)
        if err > best_err:
            break
        best, best_err = atoms, err
    assert best is not None
    best.positions -= best.positions.mean(0)
    return best


def assign_species(atoms: Atoms, composition: dict[int, float], rng: np.random.Generator
                   ) -> np.ndarray:
    """[n] atomic numbers: the composition's fractions rounded to n atoms (every element at least
    once when n allows), placed at random."""
    n = len(atoms)
    zs = sorted(composition)
    frac = np.array([composition[z] for z in zs], dtype=np.float64)
    if frac.size == 0 or not (np.isfinite(frac).all() and (frac > 0).all()):
        raise InvdesignError(f"composition fractions must be finite and positive, got "
                             f"{dict(zip(zs, frac.tolist(), strict=True))}")
    counts = np.floor(frac / frac.sum() * n).astype(int)
    counts[np.argsort(-(frac / frac.sum() * n - counts))[: n - counts.sum()]] += 1
    if n >= len(zs):  # no element dropped: a missing one takes an atom of the most abundant
        for i in np.flatnonzero(counts == 0):
            counts[np.argmax(counts)] -= 1
            counts[i] += 1
    species = np.repeat(zs, counts)
    return rng.permutation(species)


def packing_plan(z: int, bulk_sample: bool) -> Iterator[tuple[str, float, float]]:
    """(shape, diameter multiplier, lattice multiplier) in order of plausibility: the element's
    own packing and the four cluster shapes at every step, the other two lattices at the first."""
    ref = reference_packing(z)
    main = [ref, *CLUSTERS]
    others = [p for p in LATTICES if p != ref]
    steps = [(1.0, s) for s in SCALE_STEPS] if bulk_sample else [(d, 1.0) for d in SIZE_STEPS]
    for i, (size, scale) in enumerate(steps):
        for shape in main + (others if i == 0 else []):
            yield shape, size, scale


def packing_candidates(composition: dict[int, float], nn: float, diameter: float, n: int,
                       bulk_sample: bool = False, seed: int = 0) -> list[Structure]:
    """`n` candidate particles of a metal (or alloy) composition.

    Args:
        composition: atomic number -> fraction (metals only).
        nn: Å, nearest-neighbour distance (the first G(r) peak).
        diameter: Å, the estimated particle diameter.
        n: number of candidates; the plan is cycled when it is shorter.
        bulk_sample: vary the lattice constant (+-1 %) instead of the size.
        seed: placement of the species of an alloy.
    Returns:
        particles centred at the origin; `info` holds shape, diameter (Å) and nn (Å).
    Raises:
        InvdesignError: fractions, `nn` or `diameter` not finite and positive.
    """
    for name, value in (("nearest-neighbour distance", nn), ("diameter", diameter)):
        if not (np.isfinite(value) and value > 0):
            raise InvdesignError(f"packings need a finite, positive {name} (Å), got {value}")
    rng = np.random.default_rng(seed)
    host = max(composition, key=composition.get)
    plan: Sequence[tuple[str, float, float]] = list(packing_plan(host, bulk_sample))
    out: list[Structure] = []
    seen: set[tuple[str, int, float]] = set()
    for shape, size, scale in (plan[i % len(plan)] for i in range(4 * len(plan))):
        if len(out) == n:
            break
        d, a = diameter * size, nn * scale
        make = lattice_sphere if shape in LATTICES else cluster
        atoms = make(shape, host, a, d)
        key = (shape, len(atoms), round(a, 4))
        if key in seen and len(seen) < len(plan):  # the same cluster again: try the next item
            continue
        seen.add(key)
        species = assign_species(atoms, composition, rng)
        info = {"source": "packing", "shape": shape, "diameter": round(d, 2), "nn": round(a, 4)}
        out.append(Structure(species, atoms.positions - atoms.positions.mean(0), None, "particle",
                             info))
    return out
