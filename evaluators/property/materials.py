"""Two numbers per candidate: the formation energy of its material and, for a discrete particle,
its excess energy over that material.

- `formation_energy_per_atom` (eV/atom): the property model's prediction on the candidate's
  **material**, the unit cell it is made of (`material_cell`):
  - a unit cell (a crystal candidate, also when fitted as an attenuated crystal): itself;
  - a particle cut from a cell (`Structure.info[UNIT_CELL_KEY]`, set by the cutter): that cell;
  - a metallic packing or cluster shape (`info['source'] == 'packing'` with its `shape` and
    nearest-neighbour distance `nn`, also read back from the extended XYZ `sample` writes): the
    bulk lattice of its element(s) at that distance: fcc, hcp or bcc for lattice spheres, fcc for
    icosahedra, decahedra, octahedra and cuboctahedra (all cut from or built on fcc stacking); an
    alloy as a random alloy of the particle's composition on that lattice
    (`ALLOY_CELL_ATOMS` atoms or more);
  - any other particle (a generator's, a file without provenance): estimated as the property
    model's prediction on the particle minus the particle's predicted excess energy (both on
    its `ESTIMATE_MAX_ATOMS` atoms nearest its centroid when larger, because the property
    network's graph-wise transformer attends over all atom pairs); without an excess energy (no
    excess model, or none for this particle), the prediction on the particle alone.
    `formation_energy_basis` says which of these applies.
  Each distinct material cell is predicted once.
- `particle_excess_energy_per_atom` (eV/atom): E(particle)/N - E(bulk)/atom of the same
  material, from the particle-excess model (`invdesign.evaluators.property.excess`, per-atom
  contributions of local environments), for every discrete particle of at most
  `EXCESS_MAX_ATOMS` atoms; NaN for unit cells, larger particles, or when the excess model or
  its checkpoint is not installed (`excess_status` says why).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.crystals.cuts import UNIT_CELL_KEY
from invdesign.crystals.packings import CLUSTERS, LATTICES, assign_species, packing_cell

#: Largest discrete particle (atoms) given an excess energy.
EXCESS_MAX_ATOMS = 20_000
#: Atoms of a particle without a known cell on which its material is estimated (the nearest to
#: its centroid): the property network's attention costs memory quadratic in atoms (17,561
#: atoms: 46 s, 10 GB on one CPU thread), so larger particles are estimated from their core.
ESTIMATE_MAX_ATOMS = 2_000
#: Largest (graphs in a batch) x (atoms of its largest graph)^2 predicted in one batch.
ATTENTION_BUDGET = 4_000_000
#: Fewest atoms of the random-alloy cell of an alloy packing (a conventional cell repeated).
ALLOY_CELL_ATOMS = 32
#: Bases of `formation_energy_per_atom` (the column `formation_energy_basis`).
BASIS_CELL = "cell"
BASIS_SOURCE = "source cell"
BASIS_LATTICE = "bulk {} lattice"
BASIS_ESTIMATE = "particle minus excess"
BASIS_PARTICLE = "particle (no excess energy)"
#: `excess_status` of a unit cell (no excess energy: it is bulk).
NOT_A_PARTICLE = "not a discrete particle"
#: Status of the excess model when it is not installed.
NO_EXCESS_MODEL = ("the particle-excess model is not installed "
                   "(invdesign.evaluators.property.excess)")


def material_cell(structure: Structure) -> tuple[Structure | None, str]:
    """The unit cell of `structure`'s material and how it was found (`BASIS_*`); (None,
    BASIS_ESTIMATE) for a particle without a known cell."""
    if structure.is_periodic:
        return structure, BASIS_CELL
    cell = structure.info.get(UNIT_CELL_KEY)
    if isinstance(cell, Structure) and cell.is_periodic:
        return cell, BASIS_SOURCE
    lattice = packing_lattice(structure)
    if lattice is not None:
        return lattice
    return None, BASIS_ESTIMATE


def packing_lattice(structure: Structure) -> tuple[Structure, str] | None:
    """The bulk lattice of a metallic packing or cluster shape (its `info` shape and nn), None
    for anything else."""
    info = structure.info
    shape, nn = info.get("shape"), info.get("nn")
    if info.get("source") != "packing" or shape not in (*LATTICES, *CLUSTERS):
        return None
    try:
        nn = float(nn)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(nn) and nn > 0):
        return None
    lattice = shape if shape in LATTICES else "fcc"
    zs, counts = np.unique(structure.species, return_counts=True)
    host = int(zs[np.argmax(counts)])
    atoms = packing_cell(lattice, host, nn)
    if len(zs) > 1:  # a random alloy of the particle's composition, reproducible
        reps = int(np.ceil((ALLOY_CELL_ATOMS / len(atoms)) ** (1.0 / 3.0)))
        atoms = atoms.repeat(reps)
        composition = {int(z): float(c) for z, c in zip(zs, counts, strict=True)}
        atoms.numbers = assign_species(atoms, composition, np.random.default_rng(0))
    return Structure.from_ase(atoms, kind="unit_cell"), BASIS_LATTICE.format(lattice)


def particle_core(structure: Structure, max_atoms: int = ESTIMATE_MAX_ATOMS) -> Structure:
    """`structure` itself when it has at most `max_atoms` atoms, else its `max_atoms` atoms
    nearest its centroid (ties by index)."""
    if structure.n_atoms <= max_atoms:
        return structure
    pos = structure.positions
    keep = np.sort(np.argsort(np.linalg.norm(pos - pos.mean(0), axis=1), kind="stable")
                   [:max_atoms])
    return Structure(structure.species[keep], pos[keep], None, "particle")


def cell_key(cell: Structure) -> str:
    """A digest of a unit cell (species, lattice, wrapped fractional positions to 1e-4), equal
    for the same cell."""
    frac = np.round(np.mod(cell.frac_positions, 1.0), 4) % 1.0
    order = np.lexsort((frac[:, 2], frac[:, 1], frac[:, 0], cell.species))
    digest = hashlib.sha256()
    for part in (cell.species[order].astype(np.int64), np.round(cell.cell, 4), frac[order]):
        digest.update(np.ascontiguousarray(part).tobytes())
    return digest.hexdigest()


def load_excess(checkpoint: str | os.PathLike | None = None,
                device: str = "cpu") -> tuple[Any | None, str]:
    """(the particle-excess evaluator, '') or (None, why it is not available): the module is
    missing or its checkpoint is (never an error: the excess column is then empty)."""
    try:
        # lazy: the excess model is optional
        from invdesign.evaluators.property.excess import (  # noqa: PLC0415
            ParticleExcessEvaluator,
        )
    except ImportError:
        return None, NO_EXCESS_MODEL
    try:
        return ParticleExcessEvaluator(checkpoint, device=device), ""
    except InvdesignError as exc:
        where = f" ({exc.path})" if getattr(exc, "path", None) else ""
        return None, f"{exc.message}{where}"


@dataclass
class MaterialEnergies:
    """The formation-energy evaluator and the particle-excess evaluator (None: not installed,
    `excess_reason` says why) that give every candidate its two numbers (`evaluate`)."""

    formation: Any
    excess: Any | None = None
    excess_reason: str = ""

    @classmethod
    def load(cls, checkpoint: str | os.PathLike | None = None,
             excess_checkpoint: str | os.PathLike | None = None,
             device: str = "cpu") -> MaterialEnergies:
        """The shipped (or given) property checkpoint and, when installed, the excess model."""
        # lazy: heavy libraries load only when a checkpoint is used
        from invdesign.evaluators.property.evaluator import (  # noqa: PLC0415
            FormationEnergyEvaluator,
        )

        excess, reason = load_excess(excess_checkpoint, device)
        return cls(FormationEnergyEvaluator(checkpoint, device=device), excess, reason)

    def excess_energies(self, structures: Sequence[Structure]) -> list[tuple[float, str]]:
        """(particle_excess_energy_per_atom, status) per structure: NaN with the reason for unit
        cells, particles above `EXCESS_MAX_ATOMS` atoms, or without the excess model."""
        out: list[tuple[float, str]] = [(math.nan, NOT_A_PARTICLE)] * len(structures)
        todo = []
        for i, s in enumerate(structures):
            if s.is_periodic:
                continue
            if s.n_atoms > EXCESS_MAX_ATOMS:
                out[i] = (math.nan, f"no prediction: {s.n_atoms} atoms, above "
                          f"{EXCESS_MAX_ATOMS:,}")
            elif self.excess is None:
                out[i] = (math.nan, f"no prediction: {self.excess_reason}")
            else:
                todo.append(i)
        if todo:
            records = self.excess.evaluate([structures[i] for i in todo])
            for i, rec in zip(todo, records, strict=True):
                value = float(rec.get("particle_excess_energy_per_atom", math.nan))
                status = str(rec.get("status", "ok"))
                out[i] = (value, status if math.isfinite(value) else
                          status if status != "ok" else "no prediction")
        return out

    def evaluate(self, structures: Sequence[Structure],
                 cells: Sequence[Structure | None] | None = None,
                 bases: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Per structure: `formation_energy_per_atom` of its material (eV/atom),
        `formation_energy_basis`, `particle_excess_energy_per_atom` (eV/atom) and
        `excess_status`. `cells`/`bases`: the material cells when the caller knows them (None
        entries: estimated from the particle); default `material_cell` of each structure."""
        if cells is None:
            found = [material_cell(s) for s in structures]
            cells, bases = [c for c, _ in found], [b for _, b in found]
        assert bases is not None and len(cells) == len(bases) == len(structures)
        excess = self.excess_energies(structures)
        # the structures whose formation energy the network is asked for: each distinct cell
        # once, and the core of each particle without a cell
        asked: list[Structure] = []
        slot: dict[str, int] = {}
        where: list[int] = []
        cores: dict[int, Structure] = {}
        for i, cell in enumerate(cells):
            if cell is not None:
                key = cell_key(cell)
                if key not in slot:
                    slot[key] = len(asked)
                    asked.append(cell)
                where.append(slot[key])
            else:
                cores[i] = particle_core(structures[i])
                where.append(len(asked))
                asked.append(cores[i])
        predicted = self._formation(asked)
        core_excess = dict(zip(cores, self._core_excess(structures, cores, excess),
                               strict=True))
        out = []
        for i in range(len(structures)):
            energy, basis = float(predicted[where[i]]), bases[i]
            if cells[i] is None:
                correction = core_excess[i]
                if math.isfinite(correction):
                    energy, basis = energy - correction, BASIS_ESTIMATE
                else:
                    basis = BASIS_PARTICLE
            out.append({
                "formation_energy_per_atom": energy,
                "formation_energy_basis": basis,
                "particle_excess_energy_per_atom": excess[i][0],
                "excess_status": excess[i][1],
            })
        return out

    def _formation(self, structures: Sequence[Structure]) -> list[float]:
        """The network's prediction per structure, in batches of similar size: a batch is padded
        to its largest graph for the attention, so a large particle goes alone."""
        values = [math.nan] * len(structures)
        order = sorted(range(len(structures)), key=lambda i: structures[i].n_atoms)
        batch: list[int] = []
        for pos, i in enumerate(order):
            batch.append(i)
            last = pos == len(order) - 1
            nxt = structures[order[pos + 1]].n_atoms if not last else 0
            if last or (len(batch) + 1) * nxt**2 > ATTENTION_BUDGET:
                records = self.formation.evaluate([structures[j] for j in batch])
                for j, rec in zip(batch, records, strict=True):
                    values[j] = float(rec["formation_energy_per_atom"])
                batch = []
        return values

    def _core_excess(self, structures: Sequence[Structure], cores: dict[int, Structure],
                     excess: list[tuple[float, str]]) -> list[float]:
        """The excess energy of each core (the particle's own when the core is the particle)."""
        values = [math.nan] * len(cores)
        cut = [j for j, i in enumerate(cores) if cores[i] is not structures[i]]
        for j, i in enumerate(cores):
            if j not in cut:
                values[j] = excess[i][0]
        if cut and self.excess is not None:
            order = list(cores)
            for j, (value, _) in zip(cut, self.excess_energies([cores[order[j]] for j in cut]),
                                     strict=True):
                values[j] = value
        return values
