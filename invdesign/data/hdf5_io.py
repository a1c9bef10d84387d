"""Read and write CHILI records in the official HDF5 layout (see `layout.py`).

Writes are atomic: the file is written under a temporary name in the same folder and renamed into
place, so an interrupted build never leaves a half-written `.h5`. Reads accept the official
downloads and our own files.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from invdesign.core.errors import DataFormatError, InvdesignError
from invdesign.core.patterns import PATTERNS
from invdesign.data.layout import ChiliRecord, GraphArrays, ParticleEntry, size_key

_GRAPH_FIELDS = {
    "node_features": "NodeFeatures",
    "edge_attr": "EdgeFeatures",
    "edge_index": "EdgeDirections",
    "pos_frac": "FractionalCoordinates",
    "pos_abs": "AbsoluteCoordinates",
}
_GLOBAL = "GlobalLabels"
_UNIT_CELL = "UnitCellGraph"
_PARTICLES = "DiscreteParticleGraphs"
_SCATTERING = "ScatteringData"
NP_SIZE = "NP size (Å)"


# -------------------------------------------------------------------------------------------- write
def write_chili_file(path: str | os.PathLike, record: ChiliRecord) -> Path:
    """Write `record` to `path` atomically (temporary file + rename). Returns the final path.

    HDF5 creates the temporary file itself (exclusively, under a random name), so the final file has
    the umask-derived mode of any new file (e.g. 0644), not the 0600 of `tempfile.mkstemp`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.part"
    try:
        with h5py.File(tmp, "x") as h5:
            _write_record(h5, record)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _write_record(h5: h5py.File, record: ChiliRecord) -> None:
    g = h5.create_group(_GLOBAL)
    g.create_dataset("CellParameters", data=np.asarray(record.cell_params, dtype=np.float64))
    g.create_dataset("CrystalType", data=record.crystal_type.encode())
    g.create_dataset("SpaceGroupSymbol", data=record.space_group_symbol.encode())
    g.create_dataset("SpaceGroupNumber", data=int(record.space_group_number))
    g.create_dataset("CrystalSystem", data=record.crystal_system.encode())
    g.create_dataset("ElementsPresent", data=np.asarray(record.elements_present, dtype=np.int64))
    _write_graph(h5.create_group(_UNIT_CELL), record.unit_cell)
    particles = h5.create_group(_PARTICLES)
    scattering = h5.create_group(_SCATTERING)
    for entry in record.particles:
        key = size_key(entry.size)
        pg = particles.create_group(key)
        pg.create_dataset(NP_SIZE, data=float(entry.size))
        _write_graph(pg, entry.graph)
        sg = scattering.create_group(key)
        for name, values in entry.patterns.items():
            sg.create_dataset(PATTERNS[name].h5_name, data=np.asarray(values, dtype=np.float32))


def _write_graph(group: h5py.Group, graph: GraphArrays) -> None:
    group.create_dataset("NodeFeatures", data=np.asarray(graph.node_features, dtype=np.float32))
    edge_attr = np.asarray(graph.edge_attr, dtype=np.float32).reshape(-1)
    group.create_dataset("EdgeFeatures", data=edge_attr)
    group.create_dataset("EdgeDirections", data=np.asarray(graph.edge_index, dtype=np.int64))
    group.create_dataset("FractionalCoordinates", data=np.asarray(graph.pos_frac, dtype=np.float32))
    group.create_dataset("AbsoluteCoordinates", data=np.asarray(graph.pos_abs, dtype=np.float32))


# --------------------------------------------------------------------------------------------- read
def _text(value: object) -> str:
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode()
    return str(value)


def _as_int_row(value: object) -> np.ndarray:
    """A flat int64 array from integers stored as int or float."""
    return np.rint(np.asarray(value)).astype(np.int64).reshape(-1)


def _require(h5: h5py.Group, key: str, path: Path) -> h5py.Group | h5py.Dataset:
    if key not in h5:
        where = h5.name.rstrip("/") + "/" + key
        raise DataFormatError(f"not a CHILI file: missing {where!r}", path)
    return h5[key]


def _read_graph(group: h5py.Group, path: Path) -> GraphArrays:
    arrays = {
        attr: np.asarray(_require(group, key, path)[()]) for attr, key in _GRAPH_FIELDS.items()
    }
    edge_index = arrays["edge_index"].astype(np.int64).reshape(2, -1)
    return GraphArrays(
        node_features=arrays["node_features"].astype(np.float32).reshape(-1, 4),
        edge_index=edge_index,
        edge_attr=arrays["edge_attr"].astype(np.float32).reshape(-1),
        pos_frac=arrays["pos_frac"].astype(np.float32).reshape(-1, 3),
        pos_abs=arrays["pos_abs"].astype(np.float32).reshape(-1, 3),
    )


def particle_sizes(path: str | os.PathLike) -> list[str]:
    """The size group names of a file, ascending numerically ('9.40Å' before '13.60Å')."""
    path = Path(path)
    with _open(path) as h5:
        return _sorted_sizes(h5, path)


def _sorted_sizes(h5: h5py.File, path: Path) -> list[str]:
    keys = list(_require(h5, _PARTICLES, path).keys())
    try:
        return sorted(keys, key=lambda k: float(k.rstrip("Å")))
    except ValueError as exc:
        raise DataFormatError(f"bad particle size group name in {_PARTICLES}: {exc}", path) from exc


@contextmanager
def _open(path: Path) -> Iterator[h5py.File]:
    """The file open for reading; any failure while reading it (h5py reports damaged metadata or
    chunks as RuntimeError, KeyError, OSError or ValueError) becomes a `DataFormatError` naming
    the file."""
    try:
        h5 = h5py.File(path, "r")
    except FileNotFoundError:
        raise DataFormatError("file does not exist", path) from None
    except OSError as exc:
        raise DataFormatError(f"not a readable HDF5 file ({exc})", path) from None
    try:
        with h5:
            yield h5
    except InvdesignError:
        raise
    except (RuntimeError, KeyError, OSError, ValueError) as exc:
        raise DataFormatError(f"damaged HDF5 file ({type(exc).__name__}: {exc})", path) from None


def read_chili_file(path: str | os.PathLike, sizes: list[str] | None = None) -> ChiliRecord:
    """Read a CHILI file. `sizes` limits which particle groups are loaded (default: all)."""
    path = Path(path)
    with _open(path) as h5:
        g = _require(h5, _GLOBAL, path)
        keys = (
            "CellParameters",
            "CrystalType",
            "SpaceGroupSymbol",
            "SpaceGroupNumber",
            "CrystalSystem",
            "ElementsPresent",
        )
        labels = {key: _require(g, key, path)[()] for key in keys}
        record = ChiliRecord(
            name=path.stem,
            cell_params=np.asarray(labels["CellParameters"], dtype=np.float64).reshape(6),
            crystal_type=_text(labels["CrystalType"]),
            space_group_symbol=_text(labels["SpaceGroupSymbol"]),
            space_group_number=int(labels["SpaceGroupNumber"]),
            crystal_system=_text(labels["CrystalSystem"]),
            elements_present=_as_int_row(labels["ElementsPresent"]),
            unit_cell=_read_graph(_require(h5, _UNIT_CELL, path), path),
        )
        scattering = _require(h5, _SCATTERING, path)
        for key in sizes if sizes is not None else _sorted_sizes(h5, path):
            record.particles.append(_read_particle(h5, scattering, key, path))
    return record


def _read_particle(h5: h5py.File, scattering: h5py.Group, key: str, path: Path) -> ParticleEntry:
    group = _require(_require(h5, _PARTICLES, path), key, path)
    size = float(group[NP_SIZE][()]) if NP_SIZE in group else float(key.rstrip("Å"))
    patterns: dict[str, np.ndarray] = {}
    if key in scattering:
        sgroup = scattering[key]
        for name, spec in PATTERNS.items():
            if spec.h5_name in sgroup:
                patterns[name] = np.asarray(sgroup[spec.h5_name][()], dtype=np.float32)
    return ParticleEntry(size=size, graph=_read_graph(group, path), patterns=patterns)


# Public names of the layout helpers for other readers of the same files (`invdesign.data.index`).
open_h5 = _open
require = _require
sorted_size_keys = _sorted_sizes
decode_text = _text
