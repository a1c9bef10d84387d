"""The structure record every part of invdesign exchanges.

A `Structure` is a plain numpy record: atomic numbers, Cartesian positions in Å and, for periodic
unit cells, the cell as row vectors in Å. It converts to and from ASE `Atoms`, pymatgen
`Structure`/`Molecule` and a torch-geometric `Data`, so generators, evaluators and writers never
pass library objects to each other.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from invdesign.core import elements
from invdesign.core.errors import InvdesignError

if TYPE_CHECKING:  # heavy imports only for type checkers
    import ase
    import pymatgen.core
    from torch_geometric.data import Data

Kind = Literal["unit_cell", "particle"]


@dataclass(frozen=True)
class Structure:
    """Atoms with species and coordinates.

    Attributes:
        species: [n] int, atomic numbers.
        positions: [n, 3] float, Cartesian coordinates in Å. Particles are centred by the producer
            (CHILI centres on the most central metal; generators centre at the origin).
        cell: [3, 3] float, lattice vectors as rows in Å, for `kind == "unit_cell"`; None for
            particles.
        kind: "unit_cell" (periodic) or "particle" (finite).
        info: free-form metadata (source file, labels); not used for physics.
    """

    species: np.ndarray
    positions: np.ndarray
    cell: np.ndarray | None = None
    kind: Kind = "particle"
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        species = np.asarray(self.species, dtype=np.int64).reshape(-1)
        positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        if species.shape[0] != positions.shape[0]:
            raise InvdesignError(
                f"structure has {species.shape[0]} species but {positions.shape[0]} positions"
            )
        if not np.all(np.isfinite(positions)):
            raise InvdesignError("structure positions contain NaN or inf")
        if self.kind not in ("unit_cell", "particle"):
            raise InvdesignError(
                f"structure kind must be 'unit_cell' or 'particle', not {self.kind!r}"
            )
        cell = None
        if self.kind == "unit_cell":
            if self.cell is None:
                raise InvdesignError("a unit_cell structure needs a cell")
            cell = np.asarray(self.cell, dtype=np.float64).reshape(3, 3)
            if abs(np.linalg.det(cell)) < 1e-6:
                raise InvdesignError("structure cell is singular (zero volume)")
        object.__setattr__(self, "species", species)
        object.__setattr__(self, "positions", positions)
        object.__setattr__(self, "cell", cell)

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_fractional(
        cls, species: np.ndarray, frac: np.ndarray, cell: np.ndarray, **info: Any
    ) -> Structure:
        """Unit cell from fractional coordinates `frac` [n, 3] and `cell` [3, 3] (rows, Å)."""
        cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
        pos = np.asarray(frac, dtype=np.float64).reshape(-1, 3) @ cell
        return cls(species, pos, cell, "unit_cell", dict(info))

    @classmethod
    def from_cell_parameters(
        cls, species: np.ndarray, frac: np.ndarray, params: np.ndarray, **info: Any
    ) -> Structure:
        """Unit cell from fractional coordinates and `params` = (a, b, c in Å, alpha, beta, gamma
        in deg)."""
        from ase.geometry import cellpar_to_cell  # noqa: PLC0415 - lazy: heavy library

        cell = cellpar_to_cell(np.asarray(params, float))
        return cls.from_fractional(species, frac, cell, **info)

    @classmethod
    def from_ase(cls, atoms: ase.Atoms, kind: Kind | None = None) -> Structure:
        """From ASE `Atoms`; periodic atoms become unit cells unless `kind` says otherwise."""
        if kind is None:
            kind = "unit_cell" if atoms.pbc.any() else "particle"
        cell = np.array(atoms.cell[:]) if kind == "unit_cell" else None
        return cls(atoms.numbers.copy(), atoms.positions.copy(), cell, kind, dict(atoms.info))

    @classmethod
    def from_pymatgen(cls, obj: pymatgen.core.Structure | pymatgen.core.Molecule) -> Structure:
        """From a pymatgen `Structure` (unit cell) or `Molecule` (particle). Ordered sites only."""
        if not obj.is_ordered:
            raise InvdesignError("disordered (partially occupied) structures are not supported")
        species = np.array([site.specie.Z for site in obj])
        if hasattr(obj, "lattice"):
            return cls(species, obj.cart_coords, obj.lattice.matrix, "unit_cell")
        return cls(species, obj.cart_coords, None, "particle")

    # ----------------------------------------------------------------- views
    @property
    def n_atoms(self) -> int:
        return int(self.species.shape[0])

    @property
    def is_periodic(self) -> bool:
        return self.kind == "unit_cell"

    @property
    def frac_positions(self) -> np.ndarray:
        """[n, 3] fractional coordinates (unit cells only)."""
        if self.cell is None:
            raise InvdesignError("a particle has no fractional coordinates")
        return np.linalg.solve(self.cell.T, self.positions.T).T

    @property
    def symbols(self) -> list[str]:
        return elements.symbols(self.species)

    @property
    def formula(self) -> str:
        """Formula with explicit counts, elements in alphabetical order, e.g. 'O2Ti1'."""
        counts = Counter(self.symbols)
        return "".join(f"{s}{counts[s]}" for s in sorted(counts))

    def cell_parameters(self) -> np.ndarray:
        """[6] a, b, c (Å), alpha, beta, gamma (deg)."""
        from ase.geometry import cell_to_cellpar  # noqa: PLC0415 - lazy: heavy library

        if self.cell is None:
            raise InvdesignError("a particle has no cell parameters")
        return cell_to_cellpar(self.cell)

    def distance_matrix(self) -> np.ndarray:
        """[n, n] interatomic distances in Å (minimum image for unit cells)."""
        return self.to_ase().get_all_distances(mic=self.is_periodic)

    def min_distance(self) -> float:
        """Smallest interatomic distance in Å (inf for a single atom without periodic images)."""
        if self.n_atoms < 2 and not self.is_periodic:
            return float("inf")
        if self.is_periodic:
            from ase.neighborlist import neighbor_list  # noqa: PLC0415 - lazy: heavy library

            cutoff = max(6.0, float(self.cell_parameters()[:3].max()))
            d = neighbor_list("d", self.to_ase(), cutoff=cutoff)
            return float(d.min()) if d.size else float("inf")
        d = self.distance_matrix()
        return float(d[np.triu_indices(self.n_atoms, 1)].min())

    # ----------------------------------------------------------------- conversions
    def to_ase(self) -> ase.Atoms:
        from ase import Atoms  # noqa: PLC0415 - lazy: heavy library

        if self.is_periodic:
            return Atoms(numbers=self.species, positions=self.positions, cell=self.cell, pbc=True)
        return Atoms(numbers=self.species, positions=self.positions, pbc=False)

    def to_pymatgen(self) -> pymatgen.core.Structure | pymatgen.core.Molecule:
        from pymatgen.core import Lattice, Molecule  # noqa: PLC0415 - lazy: heavy library
        from pymatgen.core import Structure as PmgStructure  # noqa: PLC0415 - lazy: heavy library

        if self.is_periodic:
            return PmgStructure(Lattice(self.cell), self.species.tolist(), self.positions,
                                coords_are_cartesian=True)
        return Molecule(self.species.tolist(), self.positions)

    def to_pyg(self) -> Data:
        """torch-geometric `Data` with `z` [n], `x` [n, 4] CHILI node features, `pos` [n, 3] Å
        and, for unit cells, `cell` [1, 3, 3] Å and `pos_frac` [n, 3]. No edges: graph builders add
        them."""
        import torch  # noqa: PLC0415 - lazy: heavy library
        from torch_geometric.data import Data  # noqa: PLC0415 - lazy: heavy library

        data = Data(
            z=torch.as_tensor(self.species, dtype=torch.long),
            x=torch.as_tensor(elements.node_features(self.species)),
            pos=torch.as_tensor(self.positions, dtype=torch.float32),
        )
        if self.is_periodic:
            data.cell = torch.as_tensor(self.cell, dtype=torch.float32).unsqueeze(0)
            data.pos_frac = torch.as_tensor(self.frac_positions, dtype=torch.float32)
        return data

    def centred(self) -> Structure:
        """A particle moved so that its centroid is at the origin (unit cells returned as is)."""
        if self.is_periodic:
            return self
        positions = self.positions - self.positions.mean(0)
        return Structure(self.species, positions, None, "particle", self.info)
