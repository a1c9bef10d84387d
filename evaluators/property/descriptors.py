"""Human structure descriptors for hybridisation (seeds/002), computed with pymatgen.

`structure_descriptors(structure) -> [N_DESCRIPTORS]` float64, in the order of `DESCRIPTOR_NAMES`:
Niggli-reduced lattice lengths (Å, sorted) and angles (deg); volume per atom (Å^3); packing fraction
(Slater atomic radii); bond-length statistics over Voronoi neighbours with face-area weight > 0.5
(Å); neighbour distance statistics over the 12 nearest neighbours (Å); Voronoi (face-area weighted)
coordination mean/std; structural complexity (Shannon information of the Wyckoff orbits, bits per
atom and per cell); crystal system one-hot; a periodicity flag. Finite particles have no lattice:
the lattice, symmetry and volume entries are 0, and coordination/bonds use neighbours closer than
1.2 x the atom's nearest distance instead of Voronoi faces.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
from scipy.spatial import Voronoi

from invdesign.core import elements
from invdesign.core.structure import Structure
from invdesign.data.layout import CRYSTAL_SYSTEMS, crystal_system_from_number
from invdesign.evaluators.property.graphs import edge_vectors, graph_data

DESCRIPTOR_NAMES: tuple[str, ...] = (
    "niggli_a",
    "niggli_b",
    "niggli_c",
    "niggli_alpha",
    "niggli_beta",
    "niggli_gamma",
    "volume_per_atom",
    "packing_fraction",
    "bond_mean",
    "bond_std",
    "bond_min",
    "bond_max",
    "nn1_mean",
    "nn12_mean",
    "nn12_std",
    "voronoi_cn_mean",
    "voronoi_cn_std",
    "complexity_bits_per_atom",
    "complexity_bits_per_cell",
    *(f"system_{name}" for name in CRYSTAL_SYSTEMS),
    "periodic",
)
N_DESCRIPTORS = len(DESCRIPTOR_NAMES)


def _stats(values: np.ndarray) -> list[float]:
    if values.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(values.mean()), float(values.std()), float(values.min()), float(values.max())]


def _lattice_block(pmg) -> list[float]:
    reduced = pmg.get_reduced_structure("niggli")
    return sorted(reduced.lattice.abc) + list(reduced.lattice.angles)


def _neighbour_vectors(pmg, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """centre index [m] and bond vectors [m, 3] Å to every periodic neighbour within `radius`."""
    centre, other, images, _ = pmg.get_neighbor_list(radius)
    frac = pmg.frac_coords[other] + images - pmg.frac_coords[centre]
    return centre, frac @ pmg.lattice.matrix


def voronoi_faces(structure: Structure, cutoff: float = 6.0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Voronoi faces of every atom of a unit cell: (neighbour distances [m] Å, face areas [m] Å^2).

    Same faces as pymatgen's `VoronoiNN(weight="area")`, computed with one scipy (qhull) call per
    atom on its periodic neighbourhood; VoronoiNN's per-face Python loops are too slow for the CPU
    budget of the perov5 benchmark (`benchmarks/results/property_perov5_NOTES.md`).
    """

    pmg = structure.to_pymatgen()
    faces = []
    radius = cutoff
    centre, vectors = _neighbour_vectors(pmg, radius)
    for atom in range(structure.n_atoms):
        while True:
            points = np.vstack([np.zeros(3), vectors[centre == atom]])
            vor = Voronoi(points)
            own = [(r, q) for r, (p, q) in enumerate(vor.ridge_points) if p == 0] + [
                (r, p) for r, (p, q) in enumerate(vor.ridge_points) if q == 0
            ]
            if own and all(-1 not in vor.ridge_vertices[r] for r, _ in own):
                break
            radius *= 1.5  # open cell: look further
            centre, vectors = _neighbour_vectors(pmg, radius)
        dist, area = [], []
        for r, other in own:
            verts = vor.vertices[vor.ridge_vertices[r]]  # [v, 3] coplanar polygon
            normal = points[other] / np.linalg.norm(points[other])
            centred = verts - verts.mean(0)
            u = centred[0] / max(np.linalg.norm(centred[0]), 1e-12)
            w = np.cross(normal, u)
            order = np.argsort(np.arctan2(centred @ w, centred @ u))
            ring = centred[order]
            area.append(0.5 * np.linalg.norm(np.cross(ring, np.roll(ring, -1, 0)).sum(0)))
            dist.append(np.linalg.norm(points[other]))
        faces.append((np.array(dist), np.array(area)))
    return faces


def _voronoi_block(structure: Structure) -> tuple[list[float], list[float]]:
    """Bond stats [4] (faces with area weight > 0.5) and area-weighted coordination mean/std [2]."""
    bonds, cns = [], []
    for dist, area in voronoi_faces(structure):
        weight = area / area.max()
        cns.append(weight.sum())
        bonds.append(dist[weight > 0.5])
    return _stats(np.concatenate(bonds)), [float(np.mean(cns)), float(np.std(cns))]


def _cutoff_block(structure: Structure) -> tuple[list[float], list[float]]:
    """Particles: bonds = pairs closer than 1.2 x each atom's nearest distance."""
    dist = structure.distance_matrix()
    np.fill_diagonal(dist, np.inf)
    if structure.n_atoms < 2:
        return [0.0] * 4, [0.0, 0.0]
    bonded = dist < 1.2 * dist.min(1, keepdims=True)
    return _stats(dist[bonded]), [float(bonded.sum(1).mean()), float(bonded.sum(1).std())]


def _symmetry_block(pmg) -> list[float]:
    """Structural complexity (bits per atom, bits per cell) and crystal-system one-hot [7]."""

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # spglib's deprecation notice on its error handling
            dataset = SpacegroupAnalyzer(pmg, symprec=0.1).get_symmetry_dataset()
        orbits = np.unique(dataset.equivalent_atoms, return_counts=True)[1].astype(float)
        system = crystal_system_from_number(int(dataset.number))
    except Exception:  # spglib gives up on badly distorted cells: triclinic, all sites distinct
        orbits, system = np.ones(len(pmg)), "Triclinic"
    p = orbits / orbits.sum()
    bits = float(-(p * np.log2(p)).sum())
    onehot = [float(system.lower() == name.lower()) for name in CRYSTAL_SYSTEMS]
    return [bits, bits * len(pmg), *onehot]


def _knn_block(structure: Structure) -> list[float]:

    graph = graph_data(structure)
    if graph.edge_index.shape[1] == 0:
        return [0.0, 0.0, 0.0]
    d = edge_vectors(graph.pos, graph.edge_index, graph.edge_shift).norm(dim=-1).numpy()
    per_atom = d.reshape(structure.n_atoms, -1)
    return [float(per_atom[:, 0].mean()), float(d.mean()), float(d.std())]


def structure_descriptors(structure: Structure) -> np.ndarray:
    """[N_DESCRIPTORS] descriptors of one structure (see the module docstring for the order)."""
    radii = np.array([elements.atomic_radius(int(z)) for z in structure.species])
    atom_volume = float((4.0 / 3.0 * np.pi * radii**3).sum())
    if structure.is_periodic:
        pmg = structure.to_pymatgen()
        volume = abs(float(np.linalg.det(structure.cell)))
        lattice = _lattice_block(pmg)
        bonds, cn = _voronoi_block(structure)
        symmetry = _symmetry_block(pmg)
        volume_block = [volume / structure.n_atoms, atom_volume / volume]
    else:
        lattice, volume_block = [0.0] * 6, [0.0, 0.0]
        bonds, cn = _cutoff_block(structure)
        symmetry = [0.0, 0.0] + [0.0] * len(CRYSTAL_SYSTEMS)
    row = [
        *lattice,
        *volume_block,
        *bonds,
        *_knn_block(structure),
        *cn,
        *symmetry,
        float(structure.is_periodic),
    ]
    return np.asarray(row, dtype=np.float64)


def descriptor_matrix(structures, workers: int = 1) -> np.ndarray:
    """[n_structures, N_DESCRIPTORS]; `workers` > 1 uses a process pool."""
    if workers > 1:

        with ProcessPoolExecutor(workers) as pool:
            rows = list(pool.map(structure_descriptors, structures, chunksize=16))
    else:
        rows = [structure_descriptors(s) for s in structures]
    return np.stack(rows) if rows else np.zeros((0, N_DESCRIPTORS))
