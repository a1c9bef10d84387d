"""One synthetic cell: pyxtal placement, radius-based volume, short CHGNet relaxation, checks.

`make_cell(plan)` places the planned composition in its space group with pyxtal (the task's own
seed) in a random lattice of a volume from the atoms' radii (`radius_volume`: Shannon crystal radii
of the ions, metallic radii for intermetallics, over a packing fraction) with no two atoms closer
than 0.8 (r_i + r_j) (pyxtal's tolerance matrix set from the same radii), relaxes positions and
cell with CHGNet for at most `steps` FIRE steps with the space group held fixed (ASE's
`FixSymmetry`), and refuses cells that fell apart. Every refusal raises `InvdesignError` with its
reason (the build report lists it):

- pyxtal could not place the atoms;
- atoms closer than `MIN_DISTANCE` Å (CHILI's cleaning rule, 1.2 Å) after relaxation;
- volume changed by more than a factor `MAX_VOLUME_RATIO` during relaxation (blow-up or collapse);
- disconnected: an atom or a finite fragment (a molecule) not bonded into a periodic network by
  CHILI's bond rule (d < 1.25 (r_i + r_j), Slater radii); chains and layers are allowed;
- energy still rising: the final energy lies more than `MAX_RISE` eV/atom above the lowest energy of
  the trajectory, or above the starting energy;
- a non-finite CHGNet energy.
"""

from __future__ import annotations

import warnings
from collections import deque
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from invdesign.core import elements
from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.crystals.crystal_types import radius_pm
from invdesign.data.build.graphs import BOND_SCALE

if TYPE_CHECKING:  # heavy imports only for type checkers
    from chgnet.model import StructOptimizer

    from invdesign.data.build.synthetic_plan import CellPlan

MIN_DISTANCE = 1.2  # Å, CHILI-100K's cleaning threshold
MAX_VOLUME_RATIO = 2.0
MAX_RISE = 0.02  # eV/atom
FIX_SYMPREC = 1e-3  # FixSymmetry tolerance, the labelling tolerance of `record.space_group`
IONIC_PACKING = 0.55  # sphere volume / cell volume with Shannon crystal radii
METAL_PACKING = 0.5  # with `radius_pm` metallic radii
MIN_CONTACT = 0.8  # closest approach pyxtal may place, in units of r_i + r_j
MAX_COORD_TRIALS = 100  # pyxtal coordinate trials per placement (all attempts)


@cache
def _optimizer() -> StructOptimizer:
    """One CHGNet optimizer per process (loading the model takes seconds)."""
    # lazy: chgnet (torch) is loaded only by the workers that relax
    from chgnet.model import CHGNet, StructOptimizer  # noqa: PLC0415

    return StructOptimizer(model=CHGNet.load(verbose=False), use_device="cpu")


def place(plan: CellPlan, attempts: int = 3, trials: int = MAX_COORD_TRIALS) -> Structure:
    """The planned composition placed in its space group by pyxtal (task seed) in a random lattice
    of the radius-based volume (`radius_volume`), no two atoms closer than `MIN_CONTACT` x (r_i +
    r_j) (`radius`); each failed attempt grows the volume by 20 %. InvdesignError when pyxtal finds
    no placement.

    One pyxtal crystal per attempt, and at most `trials` coordinate trials (pyxtal's
    `_set_coords`, one try at every species' Wyckoff positions) over all attempts: pyxtal retries
    up to 400 times per crystal for space groups with free parameters, and a hard case
    (Si3Cs6Te9 in P2: 848 trials, 270 s; PbO in Pm-3m ~1 min per crystal) stalled a worker for
    minutes. Counting trials instead of seconds keeps the outcome the same on any machine. With a
    150-trial cap, 76 of the first 80 planned cells (seed 0) were placed, 74 of them within 100
    trials (measured 2026-12-03)."""
    # lazy: pyxtal is only needed by the workers
    from pyxtal.lattice import Lattice  # noqa: PLC0415
    from pyxtal.symmetry import Group  # noqa: PLC0415
    from pyxtal.tolerance import Tol_matrix  # noqa: PLC0415

    radii = {s: radius(s, q) for s, q in zip(plan.species, plan.oxidation, strict=True)}
    tolerances = Tol_matrix(prototype="atomic")
    for a in plan.species:
        for b in plan.species:
            tolerances.set_tol(a, b, MIN_CONTACT * (radii[a] + radii[b]))
    rng = np.random.default_rng(plan.seed)
    volume = radius_volume(plan)
    ltype = Group(plan.spacegroup).lattice_type
    budget = _TrialBudget(trials)
    error = ""
    for _ in range(attempts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                lattice = Lattice(ltype, volume, random_state=rng)
                crystal = _bounded_crystal_class()(
                    budget, dim=3, group=plan.spacegroup, species=list(plan.species),
                    numIons=list(plan.counts), lattice=lattice, tm=tolerances, random_state=rng)
        except _OutOfTrials:
            raise InvdesignError(f"pyxtal could not place {plan.formula} in space group "
                                 f"{plan.spacegroup} within {trials} coordinate trials") from None
        except Exception as exc:  # noqa: BLE001 - pyxtal raises its own types and RuntimeError
            error = f" ({type(exc).__name__})"
            continue
        if crystal.valid:
            return _structure(crystal)
        volume *= 1.2
    raise InvdesignError(f"pyxtal could not place {plan.formula} in space group "
                         f"{plan.spacegroup}{error}")


class _OutOfTrials(Exception):
    """Raised inside pyxtal's retry loop when a placement used up its coordinate trials."""


class _TrialBudget:
    """Coordinate trials left to one placement (shared by its attempts)."""

    def __init__(self, trials: int) -> None:
        self.left = int(trials)

    def spend(self) -> None:
        if self.left <= 0:
            raise _OutOfTrials
        self.left -= 1


@cache
def _bounded_crystal_class() -> type:
    """pyxtal's `random_crystal` whose coordinate trials draw on a `_TrialBudget` (the class is
    built on first use so pyxtal loads only in the workers that place cells)."""
    from pyxtal.crystal import random_crystal  # noqa: PLC0415

    class BoundedCrystal(random_crystal):
        def __init__(self, budget: _TrialBudget, **kwargs) -> None:
            self.budget = budget  # before pyxtal's __init__, which runs the trials
            super().__init__(**kwargs)

        def _set_coords(self):  # noqa: ANN202 - pyxtal's signature
            self.budget.spend()
            return super()._set_coords()

    return BoundedCrystal


def _structure(crystal) -> Structure:  # noqa: ANN001 - a pyxtal random_crystal
    """The placed cell: every Wyckoff site's orbit (fractional) in the crystal's lattice."""
    species = [site.specie for site in crystal.atom_sites for _ in site.coords]
    frac = np.concatenate([np.asarray(site.coords, dtype=float) for site in crystal.atom_sites])
    numbers = np.array([elements.atomic_number(s) for s in species])
    return Structure.from_fractional(numbers, frac % 1.0, np.asarray(crystal.lattice.matrix))


def radius(symbol: str, oxidation: int) -> float:
    """Radius in Å of an atom in a planned cell: pymatgen's (Shannon crystal) ionic radius of the
    ion for ionic compounds (else the element's average cationic / anionic radius), the metallic
    radius (`crystal_types.radius_pm`, as CHILI's lattice estimate) for intermetallics."""
    from pymatgen.core import Element, Species  # noqa: PLC0415 - lazy: heavy import

    if oxidation:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                value = Species(symbol, oxidation).ionic_radius
            except (ValueError, KeyError):
                value = None
            if not value:
                element = Element(symbol)
                value = (element.average_cationic_radius if oxidation > 0
                         else element.average_anionic_radius)
        if value:
            return float(value)
    return radius_pm(symbol) / 100.0


def radius_volume(plan: CellPlan) -> float:
    """Target cell volume (Å^3): the atoms' sphere volumes (`radius`) over a packing fraction,
    `IONIC_PACKING` for ionic compounds and `METAL_PACKING` for intermetallics (fractions that give
    rock salt, rutile, fluorite, Cs2O and the alkali / alkaline-earth metals within ~10-20 %)."""
    packing = METAL_PACKING if plan.family == "intermetallic" else IONIC_PACKING
    spheres = sum(n * 4.0 / 3.0 * np.pi * radius(s, q) ** 3
                  for s, n, q in zip(plan.species, plan.counts, plan.oxidation, strict=True))
    return float(spheres / packing)


def fragments(cell: Structure) -> int:
    """Number of finite fragments (isolated atoms, molecules) of a periodic cell under CHILI's bond
    rule; 0 when every atom belongs to an infinite (chain, layer or 3D) network.

    A connected component is infinite when walking its bonds reaches some atom again in another
    periodic image (a cycle with a non-zero lattice translation).
    """
    from ase.neighborlist import neighbor_list  # noqa: PLC0415 - lazy: heavy library

    radii = elements.atomic_radius(cell.species)
    i, j, shifts = neighbor_list("ijS", cell.to_ase(), BOND_SCALE * radii, self_interaction=False)
    neighbours: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(cell.n_atoms)]
    for a, b, s in zip(i, j, shifts, strict=True):
        neighbours[a].append((int(b), s))
    image: dict[int, np.ndarray] = {}
    finite = 0
    for start in range(cell.n_atoms):
        if start in image:
            continue
        image[start] = np.zeros(3, dtype=int)
        queue, periodic = deque([start]), False
        while queue:
            a = queue.popleft()
            for b, s in neighbours[a]:
                reached = image[a] + s
                if b not in image:
                    image[b] = reached
                    queue.append(b)
                elif not np.array_equal(image[b], reached):
                    periodic = True
        finite += not periodic
    return finite


def relax(cell: Structure, steps: int, fmax: float = 0.1) -> tuple[Structure, np.ndarray]:
    """CHGNet relaxation (FIRE, positions and cell via FrechetCellFilter, space group fixed) for at
    most `steps` steps. Returns the relaxed cell (fractional coordinates wrapped into [0, 1)) and
    the energies [n_steps + 1] in eV/atom."""
    from ase.constraints import FixSymmetry  # noqa: PLC0415 - lazy: heavy library

    atoms = cell.to_ase()
    atoms.set_constraint(FixSymmetry(atoms, symprec=FIX_SYMPREC))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = _optimizer().relax(atoms, steps=int(steps), fmax=float(fmax), verbose=False,
                                    assign_magmoms=False)
    energies = np.asarray(result["trajectory"].energies, dtype=float) / cell.n_atoms
    final = result["final_structure"]
    # CHILI's cells hold fractional coordinates in [0, 1): relaxation moves atoms across faces
    frac = np.mod(np.round(final.frac_coords, 10), 1.0)
    return Structure.from_fractional(np.array(final.atomic_numbers), frac,
                                     final.lattice.matrix), energies


def check_relaxed(before: Structure, after: Structure, energies: np.ndarray) -> None:
    """Raise InvdesignError with the reason when a relaxed cell fell apart or kept rising in
    energy."""
    if energies.size == 0 or not np.all(np.isfinite(energies)):
        raise InvdesignError("CHGNet energy is not finite")
    d_min = after.min_distance()
    if d_min < MIN_DISTANCE:
        raise InvdesignError(f"atoms collapsed: minimum distance {d_min:.2f} Å < {MIN_DISTANCE} Å "
                             "after relaxation")
    ratio = abs(np.linalg.det(after.cell)) / abs(np.linalg.det(before.cell))
    if not 1.0 / MAX_VOLUME_RATIO <= ratio <= MAX_VOLUME_RATIO:
        raise InvdesignError(f"volume changed x{ratio:.2f} during relaxation (allowed "
                             f"x{1 / MAX_VOLUME_RATIO:.1f}..x{MAX_VOLUME_RATIO:.1f})")
    rise = energies[-1] - energies.min()
    if rise > MAX_RISE or energies[-1] > energies[0]:
        raise InvdesignError(f"energy rising: final {energies[-1]:.3f} eV/atom, "
                             f"{rise:.3f} above the lowest, start {energies[0]:.3f}")
    n_fragments = fragments(after)
    if n_fragments:
        raise InvdesignError(f"disconnected: {n_fragments} isolated atom(s) or molecule(s) under "
                             "CHILI's bond rule")


def make_cell(plan: CellPlan, steps: int, fmax: float = 0.1) -> Structure:
    """Place, scale, relax and check one planned cell; InvdesignError with the reason if refused."""
    cell = place(plan)
    if steps <= 0:
        return cell
    relaxed, energies = relax(cell, steps, fmax)
    check_relaxed(cell, relaxed, energies)
    return relaxed
