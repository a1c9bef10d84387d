"""Crystal prototypes of the training cells, and fitting one to a pattern by forward simulation.

A prototype is a unit cell up to its lattice scale and its elements: the fractional sites, which
of them hold cations (`elements.cation_species`: the metals, else all but the most
electronegative element), the cell angles and the cell-length ratios. CHILI-3K builds every cell
from one of 12 structure types and every metal (CHILI.md), so its grouped split (no cell shared
between train and test) still shares the types: a test cell is a training prototype with another
metal and another lattice constant. CHILI-100K's COD cells are mostly one of a kind, where a
prototype prior has little to offer.

- `Prototype`, `prototype_library`: the distinct prototypes of a set of cells (`signature`: the
  cell's sites wrapped and rounded to 0.01, cation flags, angles rounded to 1 deg), each with the
  median and range of its cells' lengths; serialisable (`to_dict` / `from_dict`) so a checkpoint
  carries its library.
- `prototype_labels`: which prototype each cell of a batch is (-1: none), the classifier's labels.
- `build_crystal`: a prototype with given cation and anion elements at a lattice scale.
- `misfit`: how far a simulated pattern is from a model-ready one (min-max normalised, so the two
  are compared after the best affine map): the relative residual, 0 = identical shape.
- `fit_lattice`: the lattice scale whose particle's simulated pattern fits a pattern best (a
  coarse then a fine scan of one factor on all lengths; the particles are sphere cuts of the
  prototype at `FIT_RADII`, scaled with the lattice).
- `best_cut`: the sphere cut from a crystal whose simulated pattern fits a pattern best (the
  particle size, when no atom count is given).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from invdesign.core import elements
from invdesign.core.patterns import PatternSpec
from invdesign.core.structure import Structure
from invdesign.crystals.cuts import nearest_atoms, sphere_cuts
from invdesign.physics.calculator import simulate

#: Decimals of the fractional coordinates, and of the angles (deg), in a prototype's signature.
SITE_DECIMALS = 2
ANGLE_DECIMALS = 0
#: Metal-sphere radii (Å, at the prototype's median lattice) of the particles `fit_lattice` scans.
FIT_RADII = (6.0,)
#: Coarse scan: this many factors spanning the prototype's length range (widened by
#: `RANGE_MARGIN`); fine scan: `FINE_POINTS` factors within +- `FINE_SPAN` of the best.
COARSE_POINTS = 24
RANGE_MARGIN = 0.1
FINE_POINTS = 13
FINE_SPAN = 0.03
#: `best_cut`: lattice factors tried on the best cut before cutting again (0.1 % steps).
SIZE_SCALE_POINTS = 21
SIZE_SCALE_SPAN = 0.01


@dataclass(frozen=True)
class Prototype:
    """A unit cell up to scale and elements.

    Attributes:
        frac: [n, 3] fractional sites in [0, 1), sorted (cations first, then by coordinates).
        cation: [n] bool, the sites holding cations.
        angles: [3] deg.
        lengths: [3] Å, the median cell lengths of its cells; `lo`, `hi`: the smallest and largest
            a (first length) among them.
        n_cells: how many distinct cells it was read from.
    """

    frac: np.ndarray
    cation: np.ndarray
    angles: np.ndarray
    lengths: np.ndarray
    lo: float
    hi: float
    n_cells: int

    @property
    def n_atoms(self) -> int:
        return len(self.frac)

    def to_dict(self) -> dict[str, Any]:
        return {"frac": self.frac.round(6).tolist(), "cation": self.cation.tolist(),
                "angles": self.angles.tolist(), "lengths": self.lengths.tolist(),
                "lo": self.lo, "hi": self.hi, "n_cells": self.n_cells}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Prototype:
        return cls(np.asarray(d["frac"], dtype=np.float64).reshape(-1, 3),
                   np.asarray(d["cation"], dtype=bool), np.asarray(d["angles"], dtype=np.float64),
                   np.asarray(d["lengths"], dtype=np.float64), float(d["lo"]), float(d["hi"]),
                   int(d["n_cells"]))


def _canonical(frac: np.ndarray, cation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sites wrapped to [0, 1) at the signature's precision, sorted cations first then by x, y,
    z."""
    f = np.round(np.mod(np.round(frac, SITE_DECIMALS), 1.0), SITE_DECIMALS) % 1.0
    order = np.lexsort((f[:, 2], f[:, 1], f[:, 0], ~cation))
    return f[order], cation[order]


def cation_flags(species: np.ndarray) -> np.ndarray:
    """[n] bool: which atoms of a compound are cations (`elements.cation_species`)."""
    cations = elements.cation_species(species)
    return np.isin(np.asarray(species, dtype=np.int64), cations)


def signature(frac: np.ndarray, cation: np.ndarray, angles: np.ndarray) -> tuple:
    """A hashable key equal for two cells of the same prototype: sites (to 0.01) with their cation
    flags [n] (`cation_flags`), angles (to 1 deg)."""
    f, m = _canonical(np.asarray(frac, dtype=np.float64), np.asarray(cation, dtype=bool))
    sites = tuple((bool(a), *np.round(b, SITE_DECIMALS).tolist())
                  for a, b in zip(m, f, strict=True))
    return len(f), tuple(np.round(angles, ANGLE_DECIMALS).tolist()), sites


def _cells(data: Any) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(frac [n, 3], species [n], cell parameters [6]) of each row of unit-cell task data or a
    batch of it."""
    mask, target = data.mask.cpu(), data.target.detach().cpu().double()
    species, params = data.species.cpu(), data.cell_params.detach().cpu().double()
    return [(target[i][m].numpy(), species[i][m].numpy(), params[i].numpy())
            for i, m in enumerate(mask)]


def _distinct_cells(data: Any) -> list[tuple[tuple, np.ndarray, np.ndarray, np.ndarray]]:
    """(prototype `signature`, frac, species, cell parameters) of each distinct cell of unit-cell
    task data: rows of one cell (same prototype, species and lengths) count once."""
    out, seen = [], set()
    for frac, species, params in _cells(data):
        key = signature(frac, cation_flags(species), params[3:])
        cell_key = (key, tuple(sorted(species.tolist())), tuple(np.round(params[:3], 4).tolist()))
        if cell_key not in seen:
            seen.add(cell_key)
            out.append((key, frac, species, params))
    return out


def prototype_library(data: Any) -> list[Prototype]:
    """The distinct prototypes of the cells in unit-cell task data (rows of one cell count once),
    most common first."""
    groups: dict[tuple, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for key, frac, species, params in _distinct_cells(data):
        groups.setdefault(key, []).append((frac, species, params))
    out = []
    for cells in groups.values():
        frac, species, params = cells[0]
        f, m = _canonical(frac, cation_flags(species))
        lengths = np.stack([c[2][:3] for c in cells])
        out.append(Prototype(f, m, np.round(params[3:], ANGLE_DECIMALS).astype(np.float64),
                             np.median(lengths, axis=0), float(lengths[:, 0].min()),
                             float(lengths[:, 0].max()), len(cells)))
    return sorted(out, key=lambda p: -p.n_cells)


def common_anion(data: Any) -> int | None:
    """The species that is an anion (not a `cation_flags` species) in the most distinct cells of
    unit-cell task data (ties: the lower atomic number); None if no cell has one (metals)."""
    counts: dict[int, int] = {}
    for _, _, species, _ in _distinct_cells(data):
        for z in set(species[~cation_flags(species)].tolist()):
            counts[int(z)] = counts.get(int(z), 0) + 1
    return min(counts, key=lambda z: (-counts[z], z)) if counts else None


def prototype_labels(data: Any, library: Sequence[Prototype]) -> np.ndarray:
    """[N] index in `library` of each cell of unit-cell task data or batch (-1: no prototype)."""
    index: dict[tuple, int] = {}
    for k, p in enumerate(library):
        index.setdefault(signature(p.frac, p.cation, p.angles), k)
    return np.array([index.get(signature(f, cation_flags(z), c[3:]), -1)
                     for f, z, c in _cells(data)], dtype=np.int64)


def build_crystal(proto: Prototype, cation_z: int, anion_z: int, scale: float = 1.0) -> Structure:
    """The prototype's unit cell with `cation_z` on its cation sites and `anion_z` on the others,
    its median lengths times `scale`."""
    species = np.where(proto.cation, int(cation_z), int(anion_z))
    params = np.concatenate([proto.lengths * scale, proto.angles])
    return Structure.from_cell_parameters(species, proto.frac, params)


def misfit(target: np.ndarray, calc: np.ndarray) -> float:
    """Relative residual of the best affine map a * calc + b onto `target` (both [L]):
    |target - a calc - b| / |target - mean(target)|; 1 for a constant or unrelated `calc`."""
    t = np.asarray(target, dtype=np.float64)
    design = np.stack([np.asarray(calc, dtype=np.float64), np.ones_like(t)], axis=1)
    coef, *_ = np.linalg.lstsq(design, t, rcond=None)
    spread = float(np.linalg.norm(t - t.mean()))
    if spread == 0.0:
        return 1.0
    return min(float(np.linalg.norm(t - design @ coef)) / spread, 1.0)


def scaled_misfit(particle: Structure, scale: float, target: np.ndarray, spec: PatternSpec,
                  device: str = "cpu") -> float:
    """`misfit` of the simulated `spec` pattern of `particle` with its coordinates times `scale`."""
    scaled = Structure(particle.species, particle.positions * scale, None, "particle")
    return misfit(target, simulate(scaled, spec, device)[1])


def fit_lattice(
    proto: Prototype,
    cation_z: int,
    anion_z: int,
    target: np.ndarray,
    spec: PatternSpec,
    device: str = "cpu",
) -> tuple[float, float]:
    """(scale, misfit): the factor on the prototype's median lengths whose particles' simulated
    `spec` pattern best fits `target` (the model-ready pattern, [L] on `spec`'s grid), and that fit.

    Particles are cut by DebyeCalculator's cutter from the median cell at `FIT_RADII` and scaled
    with the lattice (a cut of the scaled cell, but for which ligands the cutter keeps); the scale
    is scanned over the prototype's length range, then finely about the best."""
    crystal = build_crystal(proto, cation_z, anion_z)
    cuts = ([c for c in sphere_cuts(crystal, np.asarray(FIT_RADII)) if c.n_atoms >= 2]
            or [nearest_atoms(crystal, 64)])
    a0 = float(proto.lengths[0])
    lo = proto.lo / a0 * (1 - RANGE_MARGIN)
    hi = proto.hi / a0 * (1 + RANGE_MARGIN)

    coarse = np.geomspace(lo, hi, COARSE_POINTS)
    _, s0, k0 = min((scaled_misfit(c, s, target, spec, device), s, k)
                    for k, c in enumerate(cuts) for s in coarse)
    fine = s0 * np.exp(np.linspace(-FINE_SPAN, FINE_SPAN, FINE_POINTS))
    value, scale = min((scaled_misfit(cuts[k0], s, target, spec, device), s) for s in fine)
    return float(scale), float(value)


def best_cut(
    crystal: Structure,
    target: np.ndarray,
    spec: PatternSpec,
    radii: np.ndarray,
    max_atoms: int,
    device: str = "cpu",
) -> Structure | None:
    """The sphere DebyeCalculator's cutter cuts from `crystal` at one of `radii` (at most
    `max_atoms` atoms) whose simulated `spec` pattern fits `target` best (`misfit`); None when
    no cut qualifies.

    Which size fits is only clear on a lattice right to ~0.1 %, finer than `fit_lattice`'s scan
    (at 0.2 % off, the peaks far out misalign more than a wrong size costs), so the best cut's
    lattice factor is refined (`SIZE_SCALE_POINTS` factors within +- `SIZE_SCALE_SPAN`) and the
    crystal cut again at that lattice."""

    def best(cell: Structure) -> Structure | None:
        cuts = [c for c in sphere_cuts(cell, radii) if 2 <= c.n_atoms <= max_atoms]
        if not cuts:
            return None
        return min(cuts, key=lambda c: misfit(target, simulate(c, spec, device)[1]))

    first = best(crystal)
    if first is None:
        return None
    factors = np.exp(np.linspace(-SIZE_SCALE_SPAN, SIZE_SCALE_SPAN, SIZE_SCALE_POINTS))
    _, factor = min((scaled_misfit(first, f, target, spec, device), f) for f in factors)
    if factor == 1.0:
        return first
    params = crystal.cell_parameters()
    params[:3] *= factor
    rescaled = Structure.from_cell_parameters(crystal.species, crystal.frac_positions, params)
    return best(rescaled) or first
