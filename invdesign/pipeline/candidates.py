"""The route: how `sample` makes its candidates, chosen from the model's task and the data's size.

Three routes (`RouteKind`), chosen by `plan_route`:
- GENERATOR: the particle model samples the particle directly (it fits the atom limit);
- PACKINGS: a metal too large for the model: known metallic packings and cluster shapes at the
  data's nearest-neighbour distance, cut at diameters around the estimated size;
- UNIT_CELL: a compound too large for the model: the unit-cell model samples cells, each cut to
  a particle of the estimated diameter with DebyeCalculator's cutter.
The candidate sources (`invdesign.pipeline.sources`) say for which routes they run.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from invdesign.core import elements
from invdesign.core.tasks import TaskSpec
from invdesign.pipeline.sizing import SizeEstimate

#: Default diameter (Å) for cutting cells when no PDF says how large the particle is.
DEFAULT_DIAMETER = 30.0
#: Largest particle (atoms) a bulk sample is modelled with, to bound the simulation time.
BULK_ATOM_BUDGET = 4000


class RouteKind(StrEnum):
    """The routes; values are the names the report prints (a member equals its value)."""

    GENERATOR = "generator"
    PACKINGS = "packings"
    UNIT_CELL = "unit_cell"


@dataclass(frozen=True)
class Route:
    """How candidates are made.

    Attributes:
        name: the route.
        reason: one sentence for the report.
        diameter: Å, the particle diameter cut to (packings / unit_cell), else None.
        with_packings: generator route for a metal: half of the candidates come from metallic
            packings of the estimated size (a safety net for a weak model).
    """

    name: RouteKind
    reason: str
    diameter: float | None = None
    with_packings: bool = False


def is_metallic(composition: dict[int, float] | None) -> bool:
    """True for a known composition of metals only."""
    return bool(composition) and all(elements.is_metal(z) for z in composition)


def plan_route(task: TaskSpec, size: SizeEstimate | None,
               composition: dict[int, float] | None) -> Route:
    """Pick the route for a model `task`, the data's size estimate and the composition."""
    metallic = is_metallic(composition)
    if size is None:
        if task.kind == "particle":
            return Route(RouteKind.GENERATOR,
                         "no PDF to size the particle: the particle model decides")
        return Route(RouteKind.UNIT_CELL, "no PDF to size the particle: cells cut to "
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
            return Route(RouteKind.GENERATOR, f"{what}, within the model's limit of "
                         f"{task.max_atoms} atoms; half of the candidates from metallic packings "
                         "of that size", diameter, with_packings=True)
        return Route(RouteKind.GENERATOR,
                     f"{what}, within the model's limit of {task.max_atoms} atoms")
    limit = (f"beyond the particle model's limit of {task.max_atoms} atoms"
             if task.kind == "particle" else "the model makes unit cells")
    if metallic:
        return Route(RouteKind.PACKINGS, f"{what}, {limit}: metallic packings and cluster "
                     f"shapes cut at diameters around {diameter:.0f} Å", diameter)
    return Route(RouteKind.UNIT_CELL, f"{what}, {limit}: unit cells from the unit-cell model "
                 f"cut to {diameter:.0f} Å spheres", diameter)
