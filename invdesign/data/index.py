"""The on-disk index of a folder of CHILI HDF5 files: one light row per graph (file x size).

Indexing opens each file once and reads only labels and dataset *shapes* (never the node or edge
arrays), so it scales to CHILI-100K (20,882 files, 104,408 graphs, 183M nodes). The result is cached
as JSON: in the data folder (`.invdesign-index.json`) or, when that folder is read-only, in the
per-user cache (`$XDG_CACHE_HOME/invdesign/index/<hash of the folder>.json`, default `~/.cache`).
Entries are keyed by the file's relative path and validated by its size and modification time, so a
changed, added or removed file is re-indexed on its own and every other file is reused without being
opened. The cache is checked before use: a file that is not JSON, of another version, whose
checksum does not match its entries (edited or damaged) is ignored, and an entry whose fields have
the wrong type is re-indexed, so a poisoned cache is rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
from tqdm import tqdm

from invdesign.core.errors import DataFormatError, InvdesignError
from invdesign.data.hdf5_io import NP_SIZE, decode_text, open_h5, require, sorted_size_keys
from invdesign.io.atomic import atomic_write_text

INDEX_NAME = ".invdesign-index.json"
INDEX_VERSION = 2  # 2: with a checksum of the entries


@dataclass(frozen=True, slots=True)
class IndexRow:
    """One graph (a particle size of one source file), without its arrays.

    Attributes:
        path: absolute path of the HDF5 file.
        source: the source id (file stem, e.g. 'RockSalt_Mg' or a COD id); the grouping key of the
            grouped split.
        size_key: the size group name in the file, e.g. '10.00Å'.
        np_size: particle diameter in Å.
        n_atoms, n_bonds: nodes and directed edges of the particle graph.
        unit_cell_n_atoms, unit_cell_n_bonds: nodes and directed edges of the unit-cell graph.
        crystal_type, crystal_system, space_group_number: labels of the parent unit cell.
        elements: unique atomic numbers present.
    """

    path: str
    source: str
    size_key: str
    np_size: float
    n_atoms: int
    n_bonds: int
    unit_cell_n_atoms: int
    unit_cell_n_bonds: int
    crystal_type: str
    crystal_system: str
    space_group_number: int
    elements: tuple[int, ...]


# ---------------------------------------------------------------------------------- discovery
def find_files(root: Path) -> list[Path]:
    """Every `*.h5` below `root`, sorted by relative path; hidden files and folders (e.g. macOS
    `._x.h5`, `__MACOSX/`) are skipped. Raises `InvdesignError` if `root` is missing, not a folder,
    or holds none."""
    if not root.exists():
        raise InvdesignError("data folder does not exist", root)
    if not root.is_dir():
        raise InvdesignError("not a folder (expected a folder of CHILI *.h5 files)", root)
    files = []
    for path in root.rglob("*.h5"):
        parts = path.relative_to(root).parts
        if any(p.startswith(".") or p == "__MACOSX" for p in parts) or not path.is_file():
            continue
        files.append(path)
    if not files:
        raise InvdesignError("no CHILI *.h5 files in this folder or below it", root)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


# ----------------------------------------------------------------------------------- one file
def index_file(path: Path) -> dict[str, Any]:
    """The index entry of one file: file labels and one dict per particle size (shapes only)."""
    with open_h5(path) as h5:
        g = require(h5, "GlobalLabels", path)
        uc = require(h5, "UnitCellGraph", path)
        require(h5, "ScatteringData", path)
        for key in ("CellParameters", "SpaceGroupSymbol"):
            require(g, key, path)
        entry = {
            "crystal_type": decode_text(require(g, "CrystalType", path)[()]),
            "crystal_system": decode_text(require(g, "CrystalSystem", path)[()]),
            "space_group_number": int(require(g, "SpaceGroupNumber", path)[()]),
            "elements": sorted(
                {int(round(float(z))) for z in require(g, "ElementsPresent", path)[()].reshape(-1)}
            ),
            "unit_cell_n_atoms": _n_nodes(uc, path),
            "unit_cell_n_bonds": _n_edges(uc, path),
            "sizes": [],
        }
        particles = h5["DiscreteParticleGraphs"]
        for key in sorted_size_keys(h5, path):
            group = particles[key]
            size = float(group[NP_SIZE][()]) if NP_SIZE in group else float(key.rstrip("Å"))
            entry["sizes"].append(
                {
                    "key": key,
                    "np_size": size,
                    "n_atoms": _n_nodes(group, path),
                    "n_bonds": _n_edges(group, path),
                }
            )
    return entry


def _n_nodes(group: h5py.Group, path: Path) -> int:
    return int(require(group, "NodeFeatures", path).shape[0])


def _n_edges(group: h5py.Group, path: Path) -> int:
    shape = require(group, "EdgeDirections", path).shape
    if len(shape) != 2 or shape[0] != 2:
        raise DataFormatError(
            f"{group.name}/EdgeDirections has shape {shape}, expected [2, n_bonds]", path
        )
    return int(shape[1])


def rows_of(path: Path, source: str, entry: dict[str, Any]) -> list[IndexRow]:
    """The graph rows of one file entry (ascending particle size)."""
    return [
        IndexRow(
            path=str(path),
            source=source,
            size_key=s["key"],
            np_size=s["np_size"],
            n_atoms=s["n_atoms"],
            n_bonds=s["n_bonds"],
            unit_cell_n_atoms=entry["unit_cell_n_atoms"],
            unit_cell_n_bonds=entry["unit_cell_n_bonds"],
            crystal_type=entry["crystal_type"],
            crystal_system=entry["crystal_system"],
            space_group_number=entry["space_group_number"],
            elements=tuple(entry["elements"]),
        )
        for s in entry["sizes"]
    ]


# ---------------------------------------------------------------------------------- the cache
def cache_paths(root: Path, cache_dir: Path | None = None) -> list[Path]:
    """Where the index of `root` may live, in order of preference."""
    if cache_dir is not None:
        return [cache_dir / f"{_root_hash(root)}.json"]
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "invdesign" / "index"
    return [root / INDEX_NAME, user / f"{_root_hash(root)}.json"]


def _root_hash(root: Path) -> str:
    return hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]


def _checksum(files: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(files, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _valid_size(size: Any) -> bool:
    return (
        isinstance(size, dict)
        and isinstance(size.get("key"), str)
        and isinstance(size.get("np_size"), int | float)
        and not isinstance(size.get("np_size"), bool)
        and math.isfinite(size["np_size"])
        and _is_count(size.get("n_atoms"))
        and _is_count(size.get("n_bonds"))
    )


def valid_entry(entry: Any) -> bool:
    """Whether a cached file entry has every field `rows_of` reads, with the right type."""
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("stat"), list)
        and len(entry["stat"]) == 2
        and all(_is_count(v) for v in entry["stat"])
        and isinstance(entry.get("crystal_type"), str)
        and isinstance(entry.get("crystal_system"), str)
        and _is_count(entry.get("space_group_number"))
        and isinstance(entry.get("elements"), list)
        and all(_is_count(z) for z in entry["elements"])
        and _is_count(entry.get("unit_cell_n_atoms"))
        and _is_count(entry.get("unit_cell_n_bonds"))
        and isinstance(entry.get("sizes"), list)
        and all(_valid_size(s) for s in entry["sizes"])
    )


def load_cache(paths: list[Path]) -> dict[str, Any]:
    """The cached file entries (relative path -> entry with 'stat'); empty when none is usable.

    A cache that is not JSON, of another version or whose checksum does not match its entries is
    skipped; entries with missing or wrongly typed fields are left out (so they are re-indexed).
    """
    for path in paths:
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
            continue
        files = data.get("files")
        if not isinstance(files, dict) or data.get("checksum") != _checksum(files):
            continue
        return {rel: e for rel, e in files.items() if valid_entry(e)}
    return {}


def save_cache(paths: list[Path], files: dict[str, Any]) -> Path | None:
    """Write the index atomically to the first writable place; None if none is (still usable)."""
    text = json.dumps(
        {"version": INDEX_VERSION, "checksum": _checksum(files), "files": files},
        separators=(",", ":"),
    )
    for path in paths:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)
            return path
        except OSError:
            continue
    return None


def file_stat(path: Path) -> list[int]:
    """[size in bytes, mtime in ns]: the validity key of a cached entry."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


@dataclass
class IndexReport:
    """What building the index did: files reused from the cache, files opened, the cache file."""

    reused: int
    indexed: int
    cache_path: Path | None


def build_index(
    root: Path, cache_dir: Path | None = None
) -> tuple[list[IndexRow], IndexReport, str]:
    """Index every file below `root`, reusing valid cache entries.

    Returns:
        rows: one `IndexRow` per graph, files in relative-path order, sizes ascending.
        report: reuse counts and the cache location.
        fingerprint: a hash of all (relative path, size, mtime): changes whenever any file does.
    """
    root = root.resolve()
    files = find_files(root)
    paths = cache_paths(root, cache_dir)
    cached = load_cache(paths)
    entries: dict[str, Any] = {}
    todo: list[tuple[str, Path, list[int]]] = []
    for path in files:
        rel = path.relative_to(root).as_posix()
        stat = file_stat(path)
        old = cached.get(rel)
        if old is not None and old.get("stat") == stat:
            entries[rel] = old
        else:
            todo.append((rel, path, stat))
    reused = len(entries)
    try:
        for rel, path, stat in tqdm(todo, desc="indexing", unit="file", disable=len(todo) < 500):
            entries[rel] = {**index_file(path), "stat": stat}
    except InvdesignError:
        save_cache(paths, entries)  # keep the work done: a rerun opens only the rest
        raise
    entries = {rel: entries[rel] for rel in sorted(entries)}  # relative-path order
    if todo or len(cached) != len(files):
        where = save_cache(paths, entries)
    else:
        where = next((p for p in paths if p.exists()), None)
    rows = [row for rel, e in entries.items() for row in rows_of(root / rel, Path(rel).stem, e)]
    fingerprint = hashlib.sha256(
        json.dumps([[rel, e["stat"]] for rel, e in entries.items()]).encode()
    ).hexdigest()[:16]
    return rows, IndexReport(reused, len(files) - reused, where), fingerprint
