"""Energy screening of `sample`'s candidates: two numbers for every valid candidate.

- `formation_energy_per_atom` (eV/atom): the shipped property model (`defaults.PROPERTY_MODEL`)
  on the candidate's material: a crystal candidate's (refined) unit cell, the source cell of a
  particle cut from a crystal, the bulk lattice of a metallic packing's element(s) (fcc for the
  cluster shapes), else an estimate from the particle itself (its prediction minus its excess
  energy); `formation_energy_basis` says which
  (`invdesign.evaluators.property.materials`). Each distinct cell is predicted once.
- `particle_excess_energy_per_atom` (eV/atom): the particle-excess model
  (`defaults.EXCESS_MODEL`) on every discrete particle (as refined) of up to 20,000 atoms.

A missing checkpoint never stops a run: the column stays empty and one progress line (and the
report's 'how') says why. Invalid candidates (overlapping atoms, wrong composition) are not
predicted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from invdesign.core.errors import InvdesignError
from invdesign.evaluators.property.materials import (
    MaterialEnergies,
    cell_key,
    load_excess,
    material_cell,
)
from invdesign.pipeline import defaults
from invdesign.pipeline.result import Candidate


def add_energies(candidates: Sequence[Candidate], device: str,
                 say: Callable[[str], None]) -> str:
    """Sets `candidate.energies` of every valid candidate (the columns of `ENERGY_COLUMNS` in
    `invdesign.pipeline.result`); returns the sentence of the report's 'how'."""
    start = time.perf_counter()
    root = defaults.checkpoint_root()
    prop = root / defaults.PROPERTY_MODEL
    if not (prop / "model.safetensors").is_file():
        why = f"no property checkpoint {prop.name} in {root}"
        say(f"energies: not predicted ({why})")
        return f"Formation energies not predicted: {why}."
    excess_path = root / defaults.EXCESS_MODEL
    if excess_path.is_dir():
        excess, reason = load_excess(excess_path, device)
    else:
        excess, reason = None, f"no particle-excess checkpoint {excess_path.name} in {root}"
    try:
        # lazy: heavy libraries load only when a checkpoint is used
        from invdesign.evaluators.property.evaluator import (  # noqa: PLC0415
            FormationEnergyEvaluator,
        )

        energies = MaterialEnergies(FormationEnergyEvaluator(prop, device=device), excess, reason)
    except InvdesignError as exc:
        say(f"energies: not predicted ({exc})")
        return f"Formation energies not predicted: {exc}."
    chosen = [c for c in candidates if c.valid]
    # a crystal's material is its (refined) cell; a particle's provenance is on it as produced
    found = [material_cell(c.final if c.is_crystal else c.structure) for c in chosen]
    try:
        records = energies.evaluate([c.final for c in chosen], [f[0] for f in found],
                                    [f[1] for f in found])
    except InvdesignError as exc:  # a model refusing its inputs must not lose the run
        say(f"energies: not predicted ({exc})")
        return f"Formation energies not predicted: {exc}."
    for cand, rec in zip(chosen, records, strict=True):
        cand.energies = rec
    particles = [c for c in chosen if not c.is_crystal]
    with_excess = sum(math.isfinite(c.energies["particle_excess_energy_per_atom"])
                      for c in particles)
    cells = len({cell_key(cell) for cell, _ in found if cell is not None})
    say(f"energies: formation energy of {len(chosen)} valid candidate(s) with {prop.name}"
        f" ({cells} material cell(s)); particle excess energy of {with_excess} of "
        f"{len(particles)} particle(s)" + (f" ({reason})" if excess is None and particles
                                           else "") + f"; {time.perf_counter() - start:.1f} s")
    text = (f"Formation energy (eV/atom, {prop.name}) of every valid candidate's material: a "
            "crystal's cell, a cut particle's source cell, a packing's bulk lattice (fcc for "
            "cluster shapes), else the particle's own prediction minus its excess energy "
            "(column formation_energy_basis).")
    if excess is None:
        return text + f" Particle excess energy not predicted: {reason}."
    return text + (f" Particle excess energy (eV/atom above the bulk, {defaults.EXCESS_MODEL}) "
                   f"of {with_excess} of {len(particles)} particle(s).")
