"""Tiny CHILI records with random arrays of the right shapes, for tests of the data layer and users.

Not physics: coordinates and patterns are random; grids and shapes follow CHILI Table 2 / Table 6.
"""

from __future__ import annotations

import numpy as np

from invdesign.core.patterns import PATTERNS
from invdesign.data.layout import (
    ChiliRecord,
    GraphArrays,
    ParticleEntry,
    crystal_system_from_number,
)


def toy_graph(
    rng: np.random.Generator, n_atoms: int, species: tuple[int, ...] = (12, 8)
) -> GraphArrays:
    """A random graph: n_atoms nodes of the given species, a ring of bonds (both directions)."""
    z = np.array([species[i % len(species)] for i in range(n_atoms)], dtype=np.float32)
    features = np.stack(
        [z, rng.uniform(50, 200, n_atoms), 2 * z, rng.uniform(0, 3, n_atoms)], axis=1
    )
    src = np.arange(n_atoms)
    dst = (src + 1) % n_atoms
    edge_index = (
        np.concatenate([np.stack([src, dst]), np.stack([dst, src])], axis=1)
        if n_atoms > 1
        else np.zeros((2, 0), dtype=np.int64)
    )
    return GraphArrays(
        node_features=features.astype(np.float32),
        edge_index=edge_index.astype(np.int64),
        edge_attr=rng.uniform(1.5, 3.0, edge_index.shape[1]).astype(np.float32),
        pos_frac=rng.uniform(0, 1, (n_atoms, 3)).astype(np.float32),
        pos_abs=rng.normal(0, 3, (n_atoms, 3)).astype(np.float32),
    )


def toy_patterns(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """All six patterns as [2, L] float32 on their CHILI grids with random positive values."""
    return {
        name: np.stack([spec.grid(), rng.uniform(0, 1, spec.n_points)]).astype(np.float32)
        for name, spec in PATTERNS.items()
    }


def toy_record(
    name: str = "RockSalt_Mg",
    n_unit_cell: int = 8,
    particle_atoms: tuple[int, ...] = (7, 30),
    sizes: tuple[float, ...] | None = None,
    space_group_number: int = 225,
    crystal_type: str = "RockSalt",
    seed: int = 0,
) -> ChiliRecord:
    """A record: a unit cell of `n_unit_cell` atoms, one particle per entry of `particle_atoms`.

    Sizes default to 5, 10, 15, ... Å. Species Mg (12) and O (8).
    """
    rng = np.random.default_rng(seed)
    sizes = sizes or tuple(5.0 * (k + 1) for k in range(len(particle_atoms)))
    return ChiliRecord(
        name=name,
        cell_params=np.array([4.2, 4.2, 4.2, 90.0, 90.0, 90.0]),
        crystal_type=crystal_type,
        space_group_symbol="F m -3 m",
        space_group_number=space_group_number,
        crystal_system=crystal_system_from_number(space_group_number),
        elements_present=np.array([8, 12]),
        unit_cell=toy_graph(rng, n_unit_cell),
        particles=[
            ParticleEntry(float(s), toy_graph(rng, n), toy_patterns(rng))
            for s, n in zip(sizes, particle_atoms, strict=True)
        ],
    )
