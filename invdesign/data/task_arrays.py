"""Fast repeated access to a few fields of many graphs (for training small models for many epochs).

`load_task_arrays(ds, indices, fields)` reads each HDF5 file once (all the requested particle sizes
in one open) and stores the result as one `.npz` keyed by the dataset fingerprint (every file's
path, size and mtime), the indices and the fields. The next call with the same key, also from
another process, loads the `.npz` and opens no HDF5 file. A changed data file changes the
fingerprint, so a stale cache is never used.

The cache lives in `<data folder>/.invdesign-cache/` or, when the data folder is read-only, in
`$XDG_CACHE_HOME/invdesign/task_arrays/` (default `~/.cache`). Delete either folder to reclaim
space. Each `.npz` carries its key, the item count, the fields and a SHA-256 of its arrays; a file
that is not a readable `.npz`, belongs to another key or whose arrays do not match the checksum
(damaged or edited) is ignored and rewritten from the HDF5 files, never trusted.

Field names are those of `ChiliDataset[i]`: the graph fields ('x', 'edge_index', 'edge_attr',
'pos_abs', 'pos_frac') and the `y` labels ('xPDF', 'saxs', 'unit_cell_pos_frac', 'cell_params',
'n_atoms', ...).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from invdesign.core.errors import InvdesignError
from invdesign.data.fields import FIELDS, read_field
from invdesign.data.hdf5_io import open_h5
from invdesign.data.index import IndexRow
from invdesign.io.atomic import atomic_path


class IndexedGraphs(Protocol):
    """What `load_task_arrays` reads of a dataset (`invdesign.data.dataset.ChiliDataset` is one):
    one `IndexRow` per graph, the files' fingerprint and the folder for the cache."""

    records: list[IndexRow]
    fingerprint: str
    data_root: Path

CACHE_FOLDER = ".invdesign-cache"
_META = "__meta__"


def load_task_arrays(
    ds: IndexedGraphs, indices: Sequence[int], fields: Sequence[str], cache: bool = True
) -> dict[str, list[np.ndarray]]:
    """Fields of the graphs `indices`, one numpy array per graph, in the order of `indices`.

    Args:
        ds: the dataset.
        indices: graph indices (e.g. `ds.task_indices('pos_abs')` or one part of a split).
        fields: field names, e.g. ['xPDF', 'pos_abs', 'x']. Patterns come as [2, L] float32 (grid
            row, value row; all CHILI files share the grid, so `np.stack(out['xPDF'])` gives [N, 2,
            L]); positions [n, 3]; counts as 0-d arrays; strings as 0-d str arrays.
        cache: read and write the on-disk `.npz` cache.

    Returns:
        field name -> list of len(indices) arrays.
    """
    indices = [int(i) for i in indices]
    fields = list(dict.fromkeys(fields))
    if not fields:
        raise InvdesignError("no fields requested")
    unknown = [f for f in fields if f not in FIELDS]
    if unknown:
        raise InvdesignError(
            f"unknown field(s) {', '.join(unknown)}; choose from {', '.join(FIELDS)}"
        )
    for i in indices:
        if not 0 <= i < len(ds.records):
            raise InvdesignError(f"graph index {i} out of range 0..{len(ds.records) - 1}")
    key = hashlib.sha256(json.dumps([ds.fingerprint, indices, fields]).encode()).hexdigest()[:20]
    places = _cache_places(ds.data_root)
    if cache:
        for folder in places:
            hit = _load(folder / f"{key}.npz", key, len(indices), fields)
            if hit is not None:
                return hit
    out = _read(ds, indices, fields)
    if cache:
        for folder in places:
            if _save(folder / f"{key}.npz", key, out):
                break
    return out


def _read(ds: IndexedGraphs, indices: list[int], fields: list[str]) -> dict[str, list[np.ndarray]]:
    """Open each file once; read only the requested datasets of the requested sizes."""
    by_file: dict[str, list[int]] = defaultdict(list)
    for pos, i in enumerate(indices):
        by_file[ds.records[i].path].append(pos)
    out: dict[str, list[np.ndarray]] = {f: [np.empty(0)] * len(indices) for f in fields}
    for path, positions in by_file.items():
        with open_h5(Path(path)) as h5:
            for p in positions:
                key = ds.records[indices[p]].size_key
                for f in fields:
                    out[f][p] = read_field(h5, key, f, Path(path))
    return out


def _cache_places(root: Path) -> list[Path]:
    user = (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        / "invdesign"
        / "task_arrays"
    )
    return [root / CACHE_FOLDER, user]


def _digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over every array's name, dtype, shape and bytes (sorted by name)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _save(path: Path, key: str, out: dict[str, list[np.ndarray]]) -> bool:
    """Ragged storage: per field the flat concatenation and the [N, ndim] shapes, plus the key,
    count, fields and checksum under '__meta__'. Atomic write."""
    arrays: dict[str, np.ndarray] = {}
    for name, values in out.items():
        ndim = values[0].ndim if values else 0
        arrays[f"{name}/shapes"] = np.array([v.shape for v in values], dtype=np.int64).reshape(
            len(values), ndim
        )
        arrays[f"{name}/data"] = (
            np.concatenate([v.reshape(-1) for v in values]) if values else np.zeros(0)
        )
    n = len(next(iter(out.values())))
    meta = {"key": key, "n": n, "fields": list(out), "sha256": _digest(arrays)}
    arrays[_META] = np.array(json.dumps(meta))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
        return True
    except OSError:
        return False


def _load(path: Path, key: str, n: int, fields: list[str]) -> dict[str, list[np.ndarray]] | None:
    """The cached arrays, or None when the file is missing, unreadable, for another key or count,
    or its arrays do not match the stored checksum."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z[_META][()]))
            arrays = {k: z[k] for k in z.files if k != _META}
        if (
            not isinstance(meta, dict)
            or meta.get("key") != key
            or meta.get("n") != n
            or meta.get("fields") != fields
            or meta.get("sha256") != _digest(arrays)
        ):
            return None
        out = {}
        for name in fields:
            shapes, flat = arrays[f"{name}/shapes"], arrays[f"{name}/data"]
            sizes = (
                np.prod(shapes, axis=1).astype(np.int64)
                if shapes.shape[1]
                else np.ones(len(shapes), dtype=np.int64)
            )
            if len(shapes) != n or (shapes < 0).any() or sizes.sum() != flat.size:
                return None
            chunks = np.split(flat, np.cumsum(sizes)[:-1]) if len(shapes) else []
            out[name] = [c.reshape(tuple(s)) for c, s in zip(chunks, shapes, strict=True)]
    except (OSError, EOFError, KeyError, IndexError, TypeError, ValueError, zipfile.BadZipFile):
        return None
    return out
