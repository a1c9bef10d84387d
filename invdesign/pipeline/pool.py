"""The candidate pool of `sample` between production and ranking: crystals cut where they must be,
duplicates collapsed, validity checked, small particles' discrete cuts, refinement, ranking.

- `cut_crystal`: a unit cell as a discrete particle of a given diameter, never above
  `PARTICLE_ATOM_LIMIT` atoms (for runs without a PDF, and the discrete cuts of small particles);
- `collapse`: duplicates merged (`invdesign.crystals.dedup.deduplicate`);
- `check`: composition and distances (`invdesign.evaluators.metrics.validity.check_validity`);
- `cut_candidates`: for a particle under `SMALL_DIAMETER`, the best `CUT_TOP` crystal types by
  screen Rw cut to discrete particles (scored by the Debye sum beside the attenuated crystals);
- `refine_best`: the best `refine_top` (valid first, then screened Rw; the best crystal and the
  best particle among them) refined fully;
- `rank`: valid first, then refined or screened Rw.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from invdesign.core.structure import Structure
from invdesign.crystals.cuts import UNIT_CELL_KEY, cut_cells
from invdesign.crystals.dedup import deduplicate
from invdesign.evaluators.metrics.validity import check_validity
from invdesign.pipeline.forward import ForwardAdapter
from invdesign.pipeline.result import Candidate
from invdesign.pipeline.sources import PARTICLE_ATOM_LIMIT

#: Å: particles whose estimated diameter is below this also get discrete cuts of crystal types.
SMALL_DIAMETER = 30.0
#: How many crystal candidates (best by screen Rw) are cut for a small particle.
CUT_TOP = 3
#: Å: the diameter crystals are cut to when no PDF sizes the particle.
DEFAULT_DIAMETER = 30.0
#: Stoichiometry tolerance (atomic fraction) of discrete cuts: the cutter keeps every anion
#: bonded to a kept cation, so a small cut of an ionic crystal is anion-rich by construction.
CUT_STOICHIOMETRY_TOL = 0.2


def cut_atoms(cell: Structure, diameter: float) -> float:
    """Atoms expected in a sphere of `diameter` Å of `cell`'s crystal (its density)."""
    volume = abs(float(np.linalg.det(cell.cell)))
    return cell.n_atoms / max(volume, 1e-9) * np.pi / 6.0 * diameter**3


def cut_crystal(cell: Structure, diameter: float, device: str = "cpu") -> Structure | None:
    """`cell` cut to a particle of `diameter` Å (DebyeCalculator's cutter), keeping its source and
    structure type; None when it would exceed `PARTICLE_ATOM_LIMIT` atoms or the cutter yields
    nothing (a collapsed cell)."""
    if cut_atoms(cell, diameter) > PARTICLE_ATOM_LIMIT:
        return None
    for particle in cut_cells([cell], diameter, device):
        if particle.n_atoms > PARTICLE_ATOM_LIMIT:
            return None
        for key in ("source", "structure_type"):
            if key in cell.info:
                particle.info[key] = cell.info[key]
        particle.info["cut"] = True
        return particle
    return None


def collapse(structures: Sequence[Structure]) -> tuple[list[Structure], int]:
    """The structures without duplicates (the first of each group kept, in order) and how many
    collapsed."""
    kept, _ = deduplicate(list(structures))
    return [structures[i] for i in kept], len(structures) - len(kept)


def check(cand: Candidate, composition: dict[int, float] | None) -> None:
    """Sets `cand.validity` from its final structure (`CUT_STOICHIOMETRY_TOL` for cuts)."""
    cut = bool(cand.structure.info.get("cut"))
    cand.validity = check_validity(cand.final, composition,
                                   tol=CUT_STOICHIOMETRY_TOL if cut else 0.1)


def cut_candidates(cands: Sequence[Candidate], diameter: float, device: str
                   ) -> list[Structure]:
    """Discrete cuts of the best `CUT_TOP` crystal candidates (valid first, then screen Rw; each
    cell with its screened lattice, at its screened diameter when under `SMALL_DIAMETER`, else at
    `diameter` Å; a cut too small to hold every element of the cell is left out), except the
    metallic packings (their spheres are in the pool already)."""
    crystals = sorted((c for c in cands if c.is_crystal and c.source != "packing"),
                      key=Candidate.rank_key)
    out = []
    for cand in crystals[:CUT_TOP]:
        cell = cand.crystal.cell if cand.crystal is not None else cand.structure  # screened
        cell.info.update({k: cand.structure.info[k] for k in ("source", "structure_type")
                          if k in cand.structure.info})
        fitted = cand.params.get("spdiameter", 0.0)  # the screen's diameter (0: bulk)
        particle = cut_crystal(cell, fitted if 0.0 < fitted < SMALL_DIAMETER else diameter, device)
        if particle is not None and set(particle.species.tolist()) == set(cell.species.tolist()):
            particle.info["cut_from"] = cand.index
            out.append(particle)
    return out


def refine_best(cands: Sequence[Candidate], forward: ForwardAdapter, k: int,
                composition: dict[int, float] | None) -> tuple[list[Candidate], Candidate | None]:
    """Refine the best `k` (valid first, then screened Rw), among them (for k >= 2) the best
    crystal and the best particle: their screens fit different things (a crystal's lattice and
    size, a particle's biso and qdamp), so neither kind crowds the other out. Re-checks their
    validity. Returns the refined candidates and the particle that got gradient steps (None if
    none)."""
    ranked = sorted(cands, key=Candidate.rank_key)
    chosen = ranked[:k]
    if k >= 2:
        for crystal in (True, False):
            if not any(c.is_crystal is crystal for c in chosen):
                best = next((c for c in ranked if c.is_crystal is crystal and c.valid), None)
                if best is not None:
                    chosen[-1] = best
    stepped = forward.refine_many(chosen)
    for cand in chosen:
        check(cand, composition)
    return chosen, stepped


def rank(cands: list[Candidate]) -> None:
    """Sort in place (valid first, then refined or screened Rw) and number the ranks."""
    cands.sort(key=Candidate.rank_key)
    for i, cand in enumerate(cands, start=1):
        cand.rank = i


def describe(cand: Candidate) -> str:
    """A few words on a candidate for the progress lines."""
    what = "crystal" if cand.is_crystal else f"{cand.structure.n_atoms} atoms"
    cut = " cut" if isinstance(cand.structure.info.get(UNIT_CELL_KEY), Structure) else ""
    return f"{cand.source}/{cand.structure_type}{cut} ({what})"

