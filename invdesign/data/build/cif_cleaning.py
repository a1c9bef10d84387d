"""CHILI-100K's CIF cleaning rules (Appendix A.2): read a CIF or say why it is rejected.

Rejected: files ASE cannot read (or that hold no atoms), unit cells of more than `max_atoms` atoms,
partial occupancies below 0.9, atoms closer than 1.2 Å (minimum image), elements outside
CHILI-100K's 68 metals + 11 non-metals, and files without any metal (e.g. 'CU' read as carbon).

Reading follows ASE's CIF reader (`ase.io.read(path, format='cif')`: the last block with atoms,
sites expanded by the block's symmetry operations, a site equivalent to an earlier site's orbit
dropped, the dominant species kept on mixed sites) with the duplicate searches done by k-d trees
(`scipy.spatial.cKDTree`, periodic in fractional coordinates) instead of ASE's all-pairs loops,
and the close-contact check is a neighbour list with the 1.2 Å cut-off itself: both scale with the
number of atoms, not its square.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from invdesign.core.structure import Structure
from invdesign.crystals.crystal_types import CHILI100K_METALS, CHILI100K_NON_METALS

MIN_OCCUPANCY = 0.9
MIN_DISTANCE = 1.2  # Å
#: unit cells with more atoms are refused (`clean_cif(max_atoms=...)` raises the limit)
MAX_ATOMS = 5000
#: ASE's tolerance for coinciding sites, in fractional coordinates (per axis)
SYMPREC = 1e-3
ALLOWED_ELEMENTS: frozenset[str] = frozenset(CHILI100K_METALS) | frozenset(CHILI100K_NON_METALS)


@dataclass(frozen=True)
class CleanResult:
    """The cleaned unit cell, or None and the reason it was rejected."""

    structure: Structure | None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.structure is not None


class TooManyAtoms(Exception):
    """The cell holds more atoms than the limit (raised before the expensive steps)."""


def _occupancies(blocks) -> list[float]:
    """Every `_atom_site_occupancy` value of the file's blocks (uncertainties '(3)' stripped)."""
    values: list[float] = []
    for block in blocks:
        for value in block.get("_atom_site_occupancy") or []:
            text = str(value).split("(")[0].strip()
            if text not in ("", ".", "?"):
                values.append(float(text))
    return values


def _wrap(frac: np.ndarray) -> np.ndarray:
    """Fractional coordinates into [0, 1) (`x % 1` can round to exactly 1.0)."""
    frac = np.mod(frac, 1.0)
    return np.where(frac >= 1.0, 0.0, frac)


def _close_in(tree: cKDTree, points: np.ndarray) -> list[list[int]]:
    """For each point, the tree's points closer than SYMPREC on every axis (periodic, strict as
    ASE's `abs(diff) < symprec`)."""
    return tree.query_ball_point(points, np.nextafter(SYMPREC, 0.0), p=np.inf)


def _orbit(candidates: np.ndarray) -> np.ndarray:
    """ASE's `find_orbit`: the images [n_ops, 3] of one site, each kept unless it coincides with
    an image kept before it."""
    if len(candidates) == 1:
        return candidates
    diff = candidates[:, None, :] - candidates[None, :, :]
    close = np.all(np.abs(diff - np.rint(diff)) < SYMPREC, axis=-1)  # [n_ops, n_ops]
    kept: list[int] = []
    for j in range(len(candidates)):
        if not close[j, kept].any():
            kept.append(j)
    return candidates[kept]


def _expand(basis: np.ndarray, symops: list, max_atoms: int) -> tuple[np.ndarray, list[int]]:
    """ASE's `Spacegroup.equivalent_sites` (onduplicates 'keep'/'warn': the first site wins):
    scaled positions [n, 3] of every atom and the basis site each comes from."""
    rotations = np.array([r for r, _ in symops], dtype=float)  # [n_ops, 3, 3]
    translations = np.array([t for _, t in symops], dtype=float) % 1.0  # [n_ops, 3]
    images = _wrap(np.einsum("oij,nj->noi", rotations, basis) + translations)  # [n, n_ops, 3]
    orbits = [_orbit(c) for c in images]
    owner = np.repeat(np.arange(len(orbits)), [len(o) for o in orbits])
    points = np.concatenate(orbits, axis=0)
    if len(points) > 2 * max_atoms:  # far above the limit even if every site were a duplicate
        raise TooManyAtoms(len(points))
    near = _close_in(cKDTree(points, boxsize=1.0), _wrap(basis))
    kept = np.zeros(len(basis), dtype=bool)
    for k, hits in enumerate(near):
        kept[k] = not any(owner[i] < k and kept[owner[i]] for i in hits)
    kinds = [k for k in np.flatnonzero(kept) for _ in range(len(orbits[k]))]
    return np.concatenate([orbits[k] for k in np.flatnonzero(kept)], axis=0), kinds


def _dominant_symbols(basis: np.ndarray, symbols: list[str], occupancies) -> list[str]:
    """ASE's `crystal`: on sites sharing a position (Euclidean, fractional, < SYMPREC) the
    species of the largest occupancy (the later one on ties, as ASE's stable sort gives)."""
    if occupancies is None:
        return list(symbols)
    near = cKDTree(basis).query_ball_point(basis, np.nextafter(SYMPREC, 0.0))
    out = []
    for index, hits in enumerate(near):
        occ = {symbols[index]: occupancies[index]}
        for j in sorted(hits):
            if j != index:
                occ[symbols[j]] = occupancies[j]
        out.append(sorted(occ.items(), key=lambda x: x[1])[-1][0])
    return out


def _block_atoms(block, max_atoms: int):
    """`CIFBlock.get_atoms()` with the defaults `ase.io.read` uses, duplicates found by trees."""
    from ase import Atoms  # noqa: PLC0415 - lazy: heavy library

    unsym = block.get_unsymmetrized_structure()
    if len(unsym) > max_atoms:
        raise TooManyAtoms(len(unsym))
    cell = block.get_cell()
    if cell.rank != 3:
        return unsym
    occupancies = block._get_fractional_occupancies()  # noqa: SLF001 - what get_atoms reads
    basis = unsym.get_scaled_positions()
    symbols = _dominant_symbols(basis, unsym.get_chemical_symbols(), occupancies)
    sites, kinds = _expand(basis, block.get_spacegroup(True).get_symop(), max_atoms)
    return Atoms([symbols[k] for k in kinds], scaled_positions=sites, cell=cell, pbc=True)


def read_cif_atoms(path: Path, max_atoms: int = MAX_ATOMS):
    """The atoms `ase.io.read(path, format='cif')` gives, in time linear in the atom count, and
    every occupancy value of the file.

    Raises:
        TooManyAtoms: a block lists, or expands to, more than `max_atoms` atoms.
        Exception: whatever ASE's parser raises on a broken file.
    """
    from ase.io.cif import parse_cif  # noqa: PLC0415 - lazy: heavy library

    blocks, images = [], []
    for block in parse_cif(str(path)):  # block by block, so errors come in ASE's order
        blocks.append(block)
        if block.has_structure():
            images.append(_block_atoms(block, max_atoms))
    if not images:
        raise StopIteration  # what `ase.io.read` raises on a file without atoms
    return images[-1], _occupancies(blocks)


def min_distance(structure: Structure) -> float:
    """The smallest interatomic distance (Å, minimum image) if it is below MIN_DISTANCE, else inf:
    a neighbour list with the MIN_DISTANCE cut-off, linear in the atom count."""
    from ase.neighborlist import neighbor_list  # noqa: PLC0415 - lazy: heavy library

    d = neighbor_list("d", structure.to_ase(), cutoff=MIN_DISTANCE)
    return float(d.min()) if d.size else float("inf")


def clean_cif(path: str | os.PathLike, max_atoms: int = MAX_ATOMS) -> CleanResult:
    """Apply the cleaning rules to one CIF file.

    Args:
        max_atoms: refuse unit cells of more atoms (a reason naming the limit, not an error).
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            atoms, occupancies = read_cif_atoms(path, max_atoms)
    except TooManyAtoms as exc:
        return CleanResult(None, _too_many(exc.args[0], max_atoms))
    except Exception as exc:  # noqa: BLE001 - any parser failure means "unreadable"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return CleanResult(None, f"unreadable CIF ({first})")
    if len(atoms) == 0:
        return CleanResult(None, "unreadable CIF (no atoms)")
    if len(atoms) > max_atoms:
        return CleanResult(None, _too_many(len(atoms), max_atoms))
    if not atoms.pbc.all() or atoms.cell.volume < 1e-6:
        return CleanResult(None, "unreadable CIF (no 3-D unit cell)")
    if occupancies and min(occupancies) < MIN_OCCUPANCY:
        return CleanResult(None, f"partial occupancy {min(occupancies):g} < {MIN_OCCUPANCY}")
    symbols = sorted(set(atoms.get_chemical_symbols()))
    outside = [s for s in symbols if s not in ALLOWED_ELEMENTS]
    if outside:
        return CleanResult(None, f"element(s) outside the allowed set: {' '.join(outside)}")
    if not set(symbols) & set(CHILI100K_METALS):
        return CleanResult(None, f"no metal (elements {' '.join(symbols)})")
    structure = Structure.from_ase(atoms, kind="unit_cell")
    d_min = min_distance(structure)
    if d_min < MIN_DISTANCE:
        return CleanResult(
            None, f"atoms closer than {MIN_DISTANCE} Å (minimum distance {d_min:.3f} Å)"
        )
    return CleanResult(
        Structure(
            structure.species,
            structure.positions,
            structure.cell,
            "unit_cell",
            {"name": path.stem, "source": str(path)},
        )
    )


def _too_many(n: int, max_atoms: int) -> str:
    over = f"{n} atoms" if n > max_atoms else f"more than {max_atoms} atoms"
    return (
        f"unit cell of {over}, above the limit of {max_atoms} "
        "(clean_cif(max_atoms=...) raises it)"
    )
