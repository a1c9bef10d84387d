"""Mono-metallic particles in the CHILI layout: fcc/bcc/hcp/sc spheres and ase.cluster polyhedra.

Many measured nanoparticles are metallic, which CHILI-3K (oxides) does not cover. One file per
(shape, metal):
- spheres `fcc_Au`, `bcc_Fe`, `hcp_Co`, `sc_Cu`: cut from the bulk cell with
  `generate_nanoparticles` at the sphere radii (default 3..10 Å, i.e. up to ~200 atoms for the
  pos_abs task, plus 12.5, 15 (3 nm) and 20 Å);
- `Icosahedron_Au` (2..7 shells, 13..923 atoms), `Decahedron_Au` (Ino/Marks, p = q = 2..6, r = 0, 1;
  13..1103 atoms), `Octahedron_Au` (odd edge length 3..11, regular and truncated; 19..891 atoms) for
  the fcc metals. Lattice constants are ASE's reference states (`ase.data.reference_states`); simple
  cubic, which no metal here adopts, uses the nearest-neighbour distance of the metal's reference
  lattice. The unit-cell graph and the labels (space group, cell parameters, fractional coordinates)
  of a polyhedron file are those of its parent fcc cell. Polyhedra are centred on the atom nearest
  their centroid.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase.build import bulk
from ase.cluster import Decahedron, Icosahedron, Octahedron
from ase.data import reference_states

from invdesign.core import elements
from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.data.build.chili3k import check_radii
from invdesign.data.build.record import make_record
from invdesign.data.build.runner import BuildSummary, Outcome, output_path, run_tasks
from invdesign.data.hdf5_io import write_chili_file
from invdesign.physics.cutter import cut_particles

SPHERE_RADII: tuple[float, ...] = (3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 12.5, 15.0, 20.0)
LATTICES: dict[str, tuple[str, ...]] = {
    "fcc": ("Al", "Ni", "Cu", "Rh", "Pd", "Ag", "Ir", "Pt", "Au", "Pb"),
    "bcc": ("V", "Cr", "Fe", "Nb", "Mo", "Ta", "W"),
    "hcp": ("Mg", "Ti", "Co", "Zn", "Zr", "Ru"),
    "sc": ("Fe", "Cu", "Pt", "Au", "W"),
}
POLYHEDRA: tuple[str, ...] = ("Icosahedron", "Decahedron", "Octahedron")
CLUSTER_METALS: tuple[str, ...] = tuple(dict.fromkeys(m for ms in LATTICES.values() for m in ms))


@dataclass(frozen=True)
class ClusterSource:
    """One cluster file: `shape` ('fcc', 'bcc', 'hcp', 'sc' sphere or a polyhedron name) of
    `metal`."""

    shape: str
    metal: str
    radii: tuple[float, ...] = SPHERE_RADII
    simulate: bool = True
    device: str = "cpu"

    @property
    def name(self) -> str:
        return f"{self.shape}_{self.metal}"


def nearest_neighbour_distance(metal: str) -> float:
    """Nearest-neighbour distance (Å) of the metal's ASE reference crystal (fcc, bcc or hcp)."""

    ref = reference_states[elements.atomic_number(metal)]
    a = ref["a"]
    return {"fcc": a / math.sqrt(2), "bcc": a * math.sqrt(3) / 2, "hcp": a}[ref["symmetry"]]


def bulk_cell(lattice: str, metal: str) -> Structure:
    """Conventional cell (fcc/bcc/sc cubic, hcp hexagonal) with the reference lattice
    constant(s)."""

    ref = reference_states[elements.atomic_number(metal)]
    if lattice == "sc":
        atoms = bulk(metal, "sc", a=nearest_neighbour_distance(metal))
    elif lattice == "hcp":
        atoms = bulk(metal, "hcp", a=ref["a"], c=ref["a"] * ref["c/a"])
    else:
        if ref["symmetry"] != lattice:
            raise InvdesignError(
                f"{metal} is {ref['symmetry']} in ASE's reference states, not {lattice}"
            )
        atoms = bulk(metal, lattice, a=ref["a"], cubic=True)
    return Structure.from_ase(atoms, kind="unit_cell")


def polyhedra(shape: str, metal: str) -> list[Structure]:
    """The ase.cluster particles of one shape for an fcc metal, centred on the atom nearest the
    centroid."""

    a = bulk_cell("fcc", metal).cell[0, 0]
    if shape == "Icosahedron":
        made = [Icosahedron(metal, n, latticeconstant=a) for n in range(2, 8)]
    elif shape == "Decahedron":
        made = [Decahedron(metal, p, p, r, latticeconstant=a) for p in range(2, 7) for r in (0, 1)]
    elif shape == "Octahedron":
        # odd edge lengths only: they have a central atom (even ones would be shifted off-centre)
        made = [
            Octahedron(metal, n, c, latticeconstant=a)
            for n in range(3, 12, 2)
            for c in sorted({0, (n - 1) // 3})
        ]
    else:
        raise InvdesignError(f"unknown cluster shape {shape!r}; choose from {', '.join(POLYHEDRA)}")
    out = []
    for atoms in made:
        pos = atoms.positions - atoms.positions.mean(0)
        pos = pos - pos[np.argmin(np.linalg.norm(pos, axis=1))]
        out.append(Structure(atoms.numbers, pos, None, "particle"))
    return out


def build_cluster_source(source: ClusterSource, out_dir: Path) -> Outcome:
    """Build one cluster file `out_dir/<shape>_<metal>.h5` (atomic write). Pure function of
    `source`."""

    if source.shape in LATTICES:
        cell = bulk_cell(source.shape, source.metal)
        z = elements.atomic_number(source.metal)
        particles = cut_particles(cell, source.radii, metals=[z], ligands=[], device=source.device)
    else:
        cell = bulk_cell("fcc", source.metal)
        particles = polyhedra(source.shape, source.metal)
    record = make_record(
        source.name, cell, particles, source.shape, simulate=source.simulate, device=source.device
    )
    write_chili_file(output_path(out_dir, source.name), record)
    return Outcome(source.name, "written")


def cluster_sources(
    metals: Sequence[str] | None = None,
    radii: Sequence[float] | None = None,
    simulate: bool = True,
    device: str = "cpu",
) -> list[ClusterSource]:
    """Every (shape, metal) file of the selection: spheres for each lattice listing the metal,
    polyhedra for the fcc metals."""
    if metals is not None:
        unknown = [m for m in metals if m not in CLUSTER_METALS]
        if unknown:
            raise InvdesignError(
                f"unknown cluster metal {unknown[0]!r}; choose from {' '.join(CLUSTER_METALS)}"
            )
    chosen = set(CLUSTER_METALS if metals is None else metals)
    radii = SPHERE_RADII if radii is None else check_radii(radii)
    sources = [
        ClusterSource(lat, m, radii, simulate, device)
        for lat, ms in LATTICES.items()
        for m in ms
        if m in chosen
    ]
    sources += [
        ClusterSource(shape, m, radii, simulate, device)
        for shape in POLYHEDRA
        for m in LATTICES["fcc"]
        if m in chosen
    ]
    return sources


def build_clusters(
    out: str | os.PathLike,
    metals: Sequence[str] | None = None,
    radii: Sequence[float] | None = None,
    workers: int = 1,
    simulate: bool = True,
    device: str = "cpu",
    progress: bool = True,
    scheduler: str | None = None,
) -> BuildSummary:
    """Build the mono-metallic cluster set into `out`; resumes an earlier run."""
    sources = cluster_sources(metals, radii, simulate, device)
    return run_tasks(
        sources, build_cluster_source, out, workers=workers, desc="clusters", progress=progress,
        scheduler=scheduler,
    )
