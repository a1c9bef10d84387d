"""Label sets made with the CHGNet reference: structures of the families our generators produce.

Inputs are raw (unrelaxed) CHILI-3K unit cells (crystal type x metal, from
`invdesign.crystals.crystal_types`) and small mono-metallic particles (ase.cluster
icosahedra/octahedra at the metal's nearest-neighbour distance), plus Gaussian-perturbed copies;
every copy is labelled with the formation energy of the RELAXED structure (CHGNet recipe, FIRE), so
a GNN trained on them predicts the relaxed formation energy of a raw generated structure in one
shot. Each source (crystal
type x metal, or particle) keeps one `group` so splits can hold whole sources out.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from ase.cluster import Icosahedron, Octahedron

from invdesign.core import elements
from invdesign.core.structure import Structure
from invdesign.crystals.crystal_types import unit_cell
from invdesign.data.build.clusters import nearest_neighbour_distance
from invdesign.evaluators.property.reference import ChgnetReference


@dataclass
class Source:
    """One labelled family member: an id, its group (for grouped splits) and the raw structure."""

    id: str
    group: str
    structure: Structure


def unit_cell_sources(crystal_types: Sequence[str], metals: Sequence[str]) -> list[Source]:

    return [Source(f"{t}_{m}", f"{t}_{m}", unit_cell(t, m)) for t in crystal_types for m in metals]


def particle_sources(
    metals: Sequence[str],
    shapes: Sequence[str] = ("ico13", "octa38", "ico55"),
) -> list[Source]:
    """Per metal: 13-/55-atom icosahedra and a 38-atom truncated octahedron (fcc spacing)."""


    out = []
    for metal in metals:
        try:
            d = nearest_neighbour_distance(metal)
        except (KeyError, ValueError):  # reference state not fcc/bcc/hcp (e.g. Sn): metallic radius
            d = 2.0 * elements.metallic_radius(elements.atomic_number(metal))
        a = d * math.sqrt(2.0)
        built = {
            "ico13": Icosahedron(metal, 2, latticeconstant=a),
            "octa38": Octahedron(metal, 4, cutoff=1, latticeconstant=a),
            "ico55": Icosahedron(metal, 3, latticeconstant=a),
        }
        for name, atoms in built.items():
            if name not in shapes:
                continue
            particle = Structure.from_ase(atoms, kind="particle").centred()
            out.append(Source(f"{name}_{metal}", f"{name}_{metal}", particle))
    return out


def perturbed_copy(
    structure: Structure, sigma: float, strain: float, rng: np.random.Generator
) -> Structure:
    """Positions + N(0, sigma^2) Å; cells also get a random symmetric strain (scale `strain`)."""
    pos = structure.positions + rng.normal(0.0, sigma, structure.positions.shape)
    if not structure.is_periodic:
        return Structure(structure.species, pos, None, "particle")
    eps = rng.normal(0.0, strain, (3, 3))
    deform = np.eye(3) + 0.5 * (eps + eps.T)
    return Structure(structure.species, pos @ deform, structure.cell @ deform, "unit_cell")


def label_sources(
    sources: Sequence[Source],
    copies: int = 1,
    sigma: float = 0.1,
    strain: float = 0.03,
    seed: int = 0,
    steps: int = 150,
    fmax: float = 0.1,
    log: Callable[[str], None] | None = None,
) -> list[dict]:
    """Relax each source with CHGNet; label it and `copies` perturbed copies with the relaxed E_f.

    Returns rows {id, group, copy, structure, formation_energy_per_atom,
    raw_formation_energy_per_atom,
    relax_steps, status}; sources CHGNet skips (guards) are kept with NaN labels and their reason.
    """

    rng = np.random.default_rng(seed)
    relaxed = ChgnetReference(relax=True, steps=steps, fmax=fmax)
    raw = ChgnetReference(relax=False)
    rows = []
    start = time.time()
    for n, source in enumerate(sources):
        done = relaxed.evaluate([source.structure])[0]
        raw_ef = raw.evaluate([source.structure])[0]["formation_energy_per_atom"]
        variants = [source.structure] + [
            perturbed_copy(source.structure, sigma, strain, rng) for _ in range(copies)
        ]
        for c, structure in enumerate(variants):
            rows.append(
                {
                    "id": f"{source.id}_{c}",
                    "group": source.group,
                    "copy": c,
                    "structure": structure,
                    "formation_energy_per_atom": done["formation_energy_per_atom"],
                    "raw_formation_energy_per_atom": raw_ef,
                    "relax_steps": done["relax_steps"],
                    "status": done["status"],
                }
            )
        if log:
            log(
                f"[{n + 1}/{len(sources)}] {source.id}: E_f relaxed "
                f"{done['formation_energy_per_atom']:.3f} raw {raw_ef:.3f} eV/atom, "
                f"{done['relax_steps']} steps, {done['status']} ({time.time() - start:.0f} s)"
            )
    return rows


def label_sources_unrelaxed(
    sources: Sequence[Source],
    copies: int = 1,
    sigma: float = 0.1,
    strain: float = 0.03,
    seed: int = 0,
) -> list[dict]:
    """Cheap variant: every structure (raw and perturbed copies) labelled with its OWN unrelaxed
    CHGNet formation energy, evaluated in batches (no forces).
    Same row layout as `label_sources`."""

    rng = np.random.default_rng(seed)
    rows = []
    for source in sources:
        variants = [source.structure] + [
            perturbed_copy(source.structure, sigma, strain, rng) for _ in range(copies)
        ]
        for c, structure in enumerate(variants):
            rows.append({"id": f"{source.id}_{c}", "group": source.group, "copy": c,
                         "structure": structure, "relax_steps": 0})  # fmt: skip
    records = ChgnetReference(relax=False, batch_size=32).evaluate([r["structure"] for r in rows])
    for row, rec in zip(rows, records, strict=True):
        row["formation_energy_per_atom"] = rec["formation_energy_per_atom"]
        row["raw_formation_energy_per_atom"] = rec["formation_energy_per_atom"]
        row["status"] = rec["status"]
    return rows
