"""Particles cut from a crystal the way CHILI's were: DebyeCalculator's cutter at growing radii.

- `sphere_cuts`: the distinct particles the cutter cuts from a cell at a list of radii;
- `nearest_atoms`: the stand-in for a cell the cutter cannot cut (the atoms nearest one atom);
- `cut_to_count`: the cut whose atom count is nearest a given one;
- `likely_cut`: the cut a count distribution (the count head) finds most likely, or one drawn.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.physics.cutter import cut_particles, cut_sphere, default_metals

#: Metal-sphere radii (Å) tried when cutting a particle from the prior's cell: 1.5 Å upwards in
#: steps of `CUT_STEP` to `max_radius` (or `CUT_LARGEST`).
CUT_STEP = 0.25
CUT_LARGEST = 15.0
#: Cells whose cutting supercell (DebyeCalculator's: the largest diameter + 5 Å per axis) would
#: hold more atoms than this (e.g. a collapsed cell from an untrained prior) are not handed to it.
MAX_CUT_ATOMS = 50_000
#: `Structure.info` key of the unit cell (a periodic `Structure`) a particle was cut from.
UNIT_CELL_KEY = "unit_cell"


def sphere_cuts(cell: Structure, radii: np.ndarray) -> list[Structure]:
    """The particles DebyeCalculator's cutter (`invdesign.physics.cutter.cut_particles`, with
    `default_metals` as the metals) cuts from `cell` at `radii`, one per
    distinct atom count, ascending; central metal at the origin. Empty for a cell it cannot cut or
    one whose cutting supercell would exceed `MAX_CUT_ATOMS` atoms."""

    span = 2.0 * float(np.max(radii)) + 5.0
    if cell.n_atoms * np.prod(np.ceil(span / cell.cell_parameters()[:3])) > MAX_CUT_ATOMS:
        return []
    try:
        cuts = cut_particles(cell, [float(r) for r in radii], default_metals(cell))
    except (InvdesignError, RuntimeError, ValueError):
        return []
    distinct: dict[int, Structure] = {}
    for cut in cuts:  # ascending radius: the smallest sphere of each count
        distinct.setdefault(cut.n_atoms, cut)
    return [distinct[n] for n in sorted(distinct)]


def nearest_atoms(cell: Structure, n_atoms: int) -> Structure:
    """The `n_atoms` atoms of a 5 x 5 x 5 supercell of `cell` nearest its first atom, that atom at
    the origin: the stand-in particle of a cell the cutter cannot cut."""
    shifts = np.stack(np.meshgrid(*[np.arange(-2, 3)] * 3, indexing="ij"), -1).reshape(-1, 3)
    frac = (cell.frac_positions[None, :, :] + shifts[:, None, :]).reshape(-1, 3)
    xyz = frac @ cell.cell - cell.positions[0]
    keep = np.argsort(np.linalg.norm(xyz, axis=1), kind="stable")[:n_atoms]
    species = np.tile(cell.species, len(shifts))[keep]
    return Structure(species, xyz[keep], None, "particle")


def cut_to_count(cell: Structure, n_atoms: int, radii: np.ndarray) -> Structure:
    """The sphere cut from `cell` (`sphere_cuts`) whose atom count is nearest `n_atoms` (ties: the
    smaller sphere); `nearest_atoms` where the cutter yields nothing."""
    cuts = sphere_cuts(cell, radii)
    if not cuts:
        return nearest_atoms(cell, n_atoms)
    return min(cuts, key=lambda p: abs(p.n_atoms - n_atoms))


def likely_cut(
    cell: Structure,
    log_p: np.ndarray,
    radii: np.ndarray,
    draw: bool,
    generator: torch.Generator | None = None,
) -> Structure:
    """The sphere cut from `cell` that a count distribution `log_p` [max_atoms] (class k = k + 1
    atoms) finds most likely, or (`draw`) one drawn in proportion to it, among the cuts of at most
    max_atoms atoms; `nearest_atoms` at the distribution's mode where there is none."""
    cuts = [c for c in sphere_cuts(cell, radii) if c.n_atoms <= len(log_p)]
    if not cuts:
        return nearest_atoms(cell, int(np.argmax(log_p)) + 1)
    scores = torch.as_tensor([float(log_p[c.n_atoms - 1]) for c in cuts], dtype=torch.float64)
    if not draw:
        return cuts[int(scores.argmax())]
    return cuts[int(torch.multinomial(scores.softmax(0), 1, generator=generator))]


#: Sampled cells denser than this (Å^3 per atom) or with atoms closer than `MIN_CELL_DISTANCE` Å
#: are collapsed: cutting them would give huge, meaningless particles, so they are skipped.
MIN_VOLUME_PER_ATOM = 5.0
MIN_CELL_DISTANCE = 0.7


def sane_cell(cell: Structure) -> bool:
    """A sampled unit cell worth cutting (not collapsed)."""
    volume = abs(float(np.linalg.det(cell.cell)))
    return volume / max(cell.n_atoms, 1) >= MIN_VOLUME_PER_ATOM and \
        cell.min_distance() >= MIN_CELL_DISTANCE


def cut_cells(cells: list[Structure], diameter: float, device: str = "cpu") -> Iterator[Structure]:
    """Each sane cell cut to a sphere of `diameter` Å (metals = the cell's metal species);
    collapsed cells (see `sane_cell`) are skipped."""
    for cell in cells:
        if not sane_cell(cell):
            continue
        p = cut_sphere(cell, diameter / 2.0, device)
        if p is not None:
            p.info.update({"source": "unit_cell", "cell": " ".join(
                f"{v:.3f}" for v in cell.cell_parameters()), "diameter": round(diameter, 2),
                UNIT_CELL_KEY: cell})
            yield p
