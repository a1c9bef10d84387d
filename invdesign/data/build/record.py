"""Assemble one CHILI record: unit cell + particles + patterns -> `ChiliRecord` (one HDF5 file)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import spglib
from ase.spacegroup import Spacegroup

from invdesign.core.patterns import PATTERNS
from invdesign.core.structure import Structure
from invdesign.data.build.graphs import graph_arrays
from invdesign.data.layout import ChiliRecord, ParticleEntry, crystal_system_from_number, size_key
from invdesign.physics.calculator import simulate_all

SYMPREC = 1e-3


def space_group(unit_cell: Structure, symprec: float = SYMPREC) -> tuple[int, str]:
    """International number and ASE-style Hermann-Mauguin symbol ('F m -3 m') of a unit cell, via
    spglib.

    CHILI labels with `ase.spacegroup.get_spacegroup(symprec=1e-3)`, which is spglib underneath;
    ASE's symbol spelling is kept so labels match the official files.
    """

    dataset = spglib.get_symmetry_dataset(
        (unit_cell.cell, unit_cell.frac_positions, unit_cell.species), symprec=symprec
    )
    number = 1 if dataset is None else int(dataset.number)
    return number, Spacegroup(number).symbol


def make_record(
    name: str,
    unit_cell: Structure,
    particles: Sequence[Structure],
    crystal_type: str,
    simulate: bool = True,
    device: str = "cpu",
) -> ChiliRecord:
    """Build the record of one source.

    Args:
        name: source id (file stem).
        unit_cell: the parent cell, positions [n, 3] Å.
        particles: particles cut from it (info `np_size` in Å, else 2 max |r|), central atom at the
        origin.
        crystal_type: CHILI crystal type or 'Unknown'.
        simulate: compute the six Table-6 patterns per particle (False leaves `patterns` empty).
        device: torch device of the scattering simulation.

    Particles whose size key ('%.2fÅ') repeats an earlier one are dropped (the layout keys them by
    size).
    """
    number, symbol = space_group(unit_cell)
    entries: list[ParticleEntry] = []
    seen: set[str] = set()
    for particle in sorted(particles, key=_size):
        size = _size(particle)
        if size_key(size) in seen:
            continue
        seen.add(size_key(size))
        patterns = _patterns(particle, device) if simulate else {}
        entries.append(ParticleEntry(size, graph_arrays(particle, unit_cell.cell), patterns))
    return ChiliRecord(
        name=name,
        cell_params=unit_cell.cell_parameters(),
        crystal_type=crystal_type,
        space_group_symbol=symbol,
        space_group_number=number,
        crystal_system=crystal_system_from_number(number),
        elements_present=np.unique(unit_cell.species),
        unit_cell=graph_arrays(unit_cell),
        particles=entries,
    )


def _size(particle: Structure) -> float:
    if "np_size" in particle.info:
        return float(particle.info["np_size"])
    return float(2.0 * np.linalg.norm(particle.positions, axis=1).max())


def _patterns(particle: Structure, device: str) -> dict[str, np.ndarray]:

    return {
        name: values.astype(np.float32)
        for name, values in simulate_all(particle, tuple(PATTERNS), device=device).items()
    }
