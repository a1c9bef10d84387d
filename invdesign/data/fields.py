"""Read single fields of one graph straight from an open CHILI file (only the datasets asked for).

`ChiliDataset[i]` reads every Table-2 field (23 HDF5 datasets); training a small model needs two
or three (e.g. `xPDF` and `pos_abs`), so `task_arrays` reads through here. Values, dtypes and
shapes equal those of `ChiliDataset[i]` converted to numpy (tested); a pattern missing from the
file (absent from `ChiliDataset[i].y`) reads as an empty [2, 0] array.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from invdesign.core.errors import InvdesignError
from invdesign.core.patterns import PATTERNS
from invdesign.data.hdf5_io import NP_SIZE, decode_text, require
from invdesign.data.layout import crystal_system_number

# field -> (dataset name, dtype, shape) inside a graph group
_GRAPH = {
    "x": ("NodeFeatures", np.float32, (-1, 4)),
    "edge_index": ("EdgeDirections", np.int64, (2, -1)),
    "edge_attr": ("EdgeFeatures", np.float32, (-1, 1)),
    "pos_abs": ("AbsoluteCoordinates", np.float32, (-1, 3)),
    "pos_frac": ("FractionalCoordinates", np.float32, (-1, 3)),
}
_TEXT = {
    "crystal_type": "CrystalType",
    "space_group_symbol": "SpaceGroupSymbol",
    "crystal_system": "CrystalSystem",
}
FIELDS: tuple[str, ...] = (
    *_GRAPH, *(f"unit_cell_{k}" for k in _GRAPH), "unit_cell_n_atoms", "unit_cell_n_bonds",
    *_TEXT, "space_group_number", "crystal_system_number", "atomic_species", "n_atomic_species",
    "cell_params", "np_size", "n_atoms", "n_bonds", *PATTERNS,
)  # fmt: skip


def read_field(h5: h5py.File, size_key: str, name: str, path: Path) -> np.ndarray:
    """Field `name` of the particle `size_key` in the open file `h5` (numpy; 0-d for scalars)."""
    particle = require(require(h5, "DiscreteParticleGraphs", path), size_key, path)
    if name in _GRAPH:
        return _graph_array(particle, name, path)
    if name.startswith("unit_cell_") and name.removeprefix("unit_cell_") in _GRAPH:
        return _graph_array(
            require(h5, "UnitCellGraph", path), name.removeprefix("unit_cell_"), path
        )
    if name in PATTERNS:  # a pattern the file lacks (e.g. built without simulation): [2, 0]
        group = require(h5, "ScatteringData", path).get(size_key, {})
        dataset = group.get(PATTERNS[name].h5_name)
        values = np.zeros((2, 0)) if dataset is None else dataset[()]
        return np.asarray(values, dtype=np.float32)
    counts = {
        "n_atoms": (particle, "NodeFeatures", 0),
        "n_bonds": (particle, "EdgeDirections", 1),
        "unit_cell_n_atoms": ("UnitCellGraph", "NodeFeatures", 0),
        "unit_cell_n_bonds": ("UnitCellGraph", "EdgeDirections", 1),
    }
    if name in counts:
        group, key, axis = counts[name]
        group = require(h5, group, path) if isinstance(group, str) else group
        return np.asarray(require(group, key, path).shape[axis], dtype=np.int64)
    if name == "np_size":
        size = particle[NP_SIZE][()] if NP_SIZE in particle else size_key.rstrip("Å")
        return np.asarray(float(size))
    return _global(require(h5, "GlobalLabels", path), name, path)


def _graph_array(group: h5py.Group, name: str, path: Path) -> np.ndarray:
    key, dtype, shape = _GRAPH[name]
    return np.ascontiguousarray(
        np.asarray(require(group, key, path)[()], dtype=dtype).reshape(shape)
    )


def _global(g: h5py.Group, name: str, path: Path) -> np.ndarray:
    if name in _TEXT:
        return np.asarray(decode_text(require(g, _TEXT[name], path)[()]))
    if name == "crystal_system_number":
        return np.asarray(crystal_system_number(decode_text(require(g, "CrystalSystem", path)[()])))
    if name == "space_group_number":
        return np.asarray(int(require(g, "SpaceGroupNumber", path)[()]))
    if name in ("atomic_species", "n_atomic_species"):
        species = np.rint(np.asarray(require(g, "ElementsPresent", path)[()])).astype(np.int64)
        species = species.reshape(-1)
        return species if name == "atomic_species" else np.asarray(species.size)
    if name == "cell_params":
        return np.asarray(require(g, "CellParameters", path)[()], dtype=np.float32).reshape(6)
    raise InvdesignError(f"no field {name!r}; choose from {', '.join(FIELDS)}", path)
