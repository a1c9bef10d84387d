"""Producing candidate structures: from the generator, or by cutting particles for large ones.

Three routes, chosen by `plan_route` from the model's task and the size read off the data:
- 'generator': the particle model samples the particle directly (it fits the atom limit);
- 'packings': a metal too large for the model: known metallic packings and cluster shapes at the
  data's nearest-neighbour distance, cut at diameters around the estimated size;
- 'unit_cell': a compound too large for the model: the unit-cell model samples cells, each cut to
  a particle of the estimated diameter with DebyeCalculator's cutter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from invdesign.core import elements
from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.core.tasks import Condition, TaskSpec
from invdesign.crystals.packings import packing_candidates
from invdesign.pipeline.sizing import SizeEstimate

#: Default diameter (Å) for cutting cells when no PDF says how large the particle is.
DEFAULT_DIAMETER = 30.0
#: Largest particle (atoms) a bulk sample is modelled with, to bound the simulation time.
BULK_ATOM_BUDGET = 4000


@dataclass(frozen=True)
class Route:
    """How candidates are made.

    Attributes:
        name: 'generator', 'packings' or 'unit_cell'.
        reason: one sentence for the report.
        diameter: Å, the particle diameter cut to (packings / unit_cell), else None.
        with_packings: generator route for a metal: half of the candidates come from metallic
            packings of the estimated size (a safety net for a weak model).
    """

    name: str
    reason: str
    diameter: float | None = None
    with_packings: bool = False


def is_metallic(composition: dict[int, float] | None) -> bool:
    return bool(composition) and all(elements.is_metal(z) for z in composition)


def plan_route(task: TaskSpec, size: SizeEstimate | None,
               composition: dict[int, float] | None) -> Route:
    """Pick the route for a model `task`, the data's size estimate and the composition."""
    metallic = is_metallic(composition)
    if size is None:
        if task.kind == "particle":
            return Route("generator", "no PDF to size the particle: the particle model decides")
        return Route("unit_cell", "no PDF to size the particle: cells cut to "
                     f"{DEFAULT_DIAMETER:g} Å", DEFAULT_DIAMETER)
    diameter = size.diameter
    n_est = size.n_atoms(metallic)
    if size.bulk:
        rho = size.n_atoms(metallic) / (np.pi / 6 * size.diameter**3)
        diameter = min(diameter, float((6 * BULK_ATOM_BUDGET / (np.pi * rho)) ** (1 / 3)))
        n_est = int(round(np.pi / 6 * diameter**3 * rho))
        what = ("G(r) does not die out within the data (bulk-like): modelled as a "
                f"{diameter:.0f} Å sphere (~{n_est} atoms)")
    else:
        what = f"G(r) dies out near {diameter:.0f} Å (~{n_est} atoms)"
    if task.kind == "particle" and not size.bulk and n_est <= task.max_atoms:
        if metallic:
            return Route("generator", f"{what}, within the model's limit of {task.max_atoms} "
                         "atoms; half of the candidates from metallic packings of that size",
                         diameter, with_packings=True)
        return Route("generator", f"{what}, within the model's limit of {task.max_atoms} atoms")
    limit = (f"beyond the particle model's limit of {task.max_atoms} atoms"
             if task.kind == "particle" else "the model makes unit cells")
    if metallic:
        return Route("packings", f"{what}, {limit}: metallic packings and cluster shapes cut at "
                     f"diameters around {diameter:.0f} Å", diameter)
    return Route("unit_cell", f"{what}, {limit}: unit cells from the unit-cell model cut to "
                 f"{diameter:.0f} Å spheres", diameter)


def from_generator(generator, condition: Condition, n: int, seed: int,
                   sampling: dict[str, Any] | None = None) -> list[Structure]:
    """`n` structures sampled from `generator` for a one-item `condition`, reproducible by seed.
    `sampling`: options of the generator's `sample` (its `sampling_options`: the diffusion model's
    'sampler' and 'steps'); None values are left out."""
    options = {k: v for k, v in (sampling or {}).items() if v is not None}
    unknown = [k for k in options if k not in generator.sampling_options]
    if unknown:
        given = ", ".join(f"--{k}" for k in unknown)
        raise InvdesignError(f"{given}: only diffusion models take sampler options; this run "
                             f"samples the {generator.name} model {generator.task.name}")
    rng = torch.Generator(device="cpu").manual_seed(int(seed))
    structures = generator.sample(condition, n, generator=rng, **options)[0]
    for s in structures:
        s.info.setdefault("source", "generator")
    return structures


def from_packings(composition: dict[int, float], size: SizeEstimate, diameter: float, n: int,
                  seed: int) -> list[Structure]:
    """`n` metal particles from known packings (see `invdesign.crystals.packings`)."""
    return packing_candidates(composition, size.nn_distance, diameter, n,
                              bulk_sample=size.bulk, seed=seed)
