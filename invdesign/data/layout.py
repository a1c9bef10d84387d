"""In-memory form of one official CHILI HDF5 file (one source unit cell, all its particle sizes).

The official layout (CHILI.md):
    GlobalLabels/           CellParameters [6], CrystalType, SpaceGroupSymbol, SpaceGroupNumber,
                            CrystalSystem, ElementsPresent
    UnitCellGraph/          NodeFeatures [n,4], EdgeFeatures [m], EdgeDirections [2,m],
                            FractionalCoordinates [n,3], AbsoluteCoordinates [n,3]
    DiscreteParticleGraphs/<'%.2fÅ'>/  'NP size (Å)', NodeFeatures, EdgeFeatures, EdgeDirections,
                            FractionalCoordinates, AbsoluteCoordinates
    ScatteringData/<'%.2fÅ'>/  XRD, xPDF, ND, nPDF, SAXS, SANS, each [2, n]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from invdesign.core.structure import Structure

CRYSTAL_SYSTEMS: tuple[str, ...] = (
    "Triclinic",
    "Monoclinic",
    "Orthorhombic",
    "Tetragonal",
    "Trigonal",
    "Hexagonal",
    "Cubic",
)


def crystal_system_from_number(space_group_number: int) -> str:
    """Crystal system name of a space group number 1..230 (CHILI's rule)."""
    n = int(space_group_number)
    for upper, name in zip((2, 15, 74, 142, 167, 194, 230), CRYSTAL_SYSTEMS, strict=True):
        if n <= upper:
            return name
    raise ValueError(f"space group number out of range 1..230: {n}")


def crystal_system_number(name: str) -> int:
    """1 (Triclinic) .. 7 (Cubic); 0 for an unknown name."""
    return CRYSTAL_SYSTEMS.index(name) + 1 if name in CRYSTAL_SYSTEMS else 0


def size_key(size: float) -> str:
    """Group name of a particle size in the official files, e.g. 10.5 -> '10.50Å'."""
    return f"{size:.2f}Å"


@dataclass
class GraphArrays:
    """One graph in the CHILI layout.

    Attributes:
        node_features: [n, 4] float32 (atomic_number, atomic_radius pm, atomic_weight u,
            electron_affinity eV).
        edge_index: [2, m] int64, both directions.
        edge_attr: [m] float32, bond length in Å.
        pos_frac: [n, 3] fractional coordinates (with respect to the parent unit cell).
        pos_abs: [n, 3] absolute coordinates in Å (particles: centred on the central metal).
    """

    node_features: np.ndarray
    edge_index: np.ndarray
    edge_attr: np.ndarray
    pos_frac: np.ndarray
    pos_abs: np.ndarray

    @property
    def n_atoms(self) -> int:
        return int(self.node_features.shape[0])

    @property
    def n_edges(self) -> int:
        return int(self.edge_index.shape[1])

    @property
    def atomic_numbers(self) -> np.ndarray:
        return np.rint(self.node_features[:, 0]).astype(np.int64)


@dataclass
class ParticleEntry:
    """One nanoparticle size of a source: its graph and its six patterns.

    Attributes:
        size: particle diameter in Å (the official 'NP size (Å)').
        graph: the particle graph.
        patterns: CHILI pattern name ('saxs', 'xrd', 'xPDF', ...) -> [2, n] float array
            (grid row, value row).
    """

    size: float
    graph: GraphArrays
    patterns: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class ChiliRecord:
    """Everything one official CHILI HDF5 file holds.

    Attributes:
        name: the source id (file stem), e.g. 'RockSalt_Mg' or a COD id.
        cell_params: [6] a, b, c (Å), alpha, beta, gamma (deg).
        crystal_type: one of the 12 CHILI-3K types, or 'Unknown'.
        space_group_symbol, space_group_number, crystal_system: symmetry labels.
        elements_present: [k] unique atomic numbers.
        unit_cell: the unit-cell graph.
        particles: the nanoparticles, ascending in size.
    """

    name: str
    cell_params: np.ndarray
    crystal_type: str
    space_group_symbol: str
    space_group_number: int
    crystal_system: str
    elements_present: np.ndarray
    unit_cell: GraphArrays
    particles: list[ParticleEntry] = field(default_factory=list)

    def cell(self) -> Structure:
        """The unit cell as a `Structure` (species, fractional coordinates, cell parameters)."""
        graph = self.unit_cell
        return Structure.from_cell_parameters(graph.atomic_numbers, graph.pos_frac,
                                              self.cell_params)
