"""`ChiliDataset`: a lazy torch-geometric dataset over a folder of CHILI HDF5 files.

The folder is indexed once (`invdesign.data.index`: labels and shapes only, cached on disk); `ds[i]`
opens one file and reads one particle size, so memory does not grow with the dataset (CHILI-100K:
183M nodes). Graph i is (file, particle size) in index order: files by relative path, sizes
ascending.

Example:
    >>> ds = ChiliDataset("/data/CHILI-3K")
    >>> data = ds[0]                      # Data(x=[n, 4], edge_index=[2, m], ..., y={...})
    >>> idx = ds.task_indices("pos_abs")  # graphs with <= 200 atoms
    >>> arrays = ds.cache_task_arrays(idx, ["xPDF", "pos_abs"])  # fast repeated access
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.data import Dataset as PygDataset

from invdesign.core.errors import InvdesignError
from invdesign.core.tasks import TARGETS
from invdesign.data.hdf5_io import read_chili_file
from invdesign.data.index import IndexReport, IndexRow, build_index
from invdesign.data.layout import ChiliRecord, GraphArrays, crystal_system_number, size_key
from invdesign.data.task_arrays import load_task_arrays


class ChiliDataset(PygDataset):
    """Every graph (source file x particle size) of the CHILI `*.h5` files below `root`.

    Args:
        root: a folder holding CHILI HDF5 files (official downloads or `invdesign data build`
            output), searched recursively; or several such folders (e.g. CHILI-3K and the
            `clusters` set), whose graphs follow each other in the order given.
        transform: optional torch-geometric transform applied by `ds[i]`.
        cache_dir: where to keep the index (default: in `root`, else the per-user cache when `root`
            is read-only).

    Attributes:
        records: one `IndexRow` per graph (no arrays), in graph-index order.
        index_report: how many files the index reused from its cache and how many it opened.
        fingerprint: hash of every file's (path, size, mtime); keys derived caches.
        data_roots: the resolved folders; `data_root` is the first (derived caches live there).

    A graph's source (the grouping key of the grouped split) is its file's stem: files of the same
    stem in two folders form one group, so they never land in two parts of a split.

    Graph indices (`records`, `task_indices`, `split_indices`, `cache_task_arrays`) always refer to
    the full dataset, i.e. to `ds.get(i)` and to `ds[i]` of the unsliced dataset; use
    `ds[list_of_indices]` (a torch-geometric view) or `torch.utils.data.Subset` for a part.

    Raises:
        InvdesignError: a folder is missing or holds no `*.h5`, is given twice or lies inside
            another; a file is not HDF5 or lacks a CHILI group (the message names the file).
    """

    def __init__(
        self,
        root: str | os.PathLike | Sequence[str | os.PathLike],
        transform: Callable[[Data], Data] | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        roots = data_folders(root)
        cache = None if cache_dir is None else Path(cache_dir)
        rows: list[IndexRow] = []
        reports, prints = [], []
        for folder in roots:
            part, report, fingerprint = build_index(folder, cache)
            rows += part
            reports.append(report)
            prints.append(fingerprint)
        self.records: list[IndexRow] = rows
        self.index_report: IndexReport = reports[0] if len(roots) == 1 else IndexReport(
            sum(r.reused for r in reports), sum(r.indexed for r in reports),
            reports[0].cache_path)
        self.fingerprint: str = prints[0] if len(roots) == 1 else hashlib.sha256(
            json.dumps([[str(f), p] for f, p in zip(roots, prints, strict=True)]).encode()
        ).hexdigest()[:16]
        self.data_roots: list[Path] = [folder.resolve() for folder in roots]
        self.data_root = self.data_roots[0]
        super().__init__(str(roots[0]), transform=transform)

    # -------------------------------------------------------- torch_geometric Dataset protocol
    def len(self) -> int:
        return len(self.records)

    def get(self, idx: int) -> Data:
        """Graph `idx` as a `Data` (see `record_to_data`)."""
        row = self.records[idx]
        record = read_chili_file(row.path, sizes=[row.size_key])
        return record_to_data(record, 0, source=row.source, key=row.size_key)

    def __repr__(self) -> str:
        where = ", ".join(str(folder) for folder in self.data_roots)
        return f"{type(self).__name__}({where}, graphs={len(self.records)})"

    # ------------------------------------------------------------------------------ selections
    def task_indices(self, target: str, max_atoms: int | None = None) -> list[int]:
        """Graph indices passing CHILI's task filter.

        Args:
            target: 'unit_cell_pos_frac' (keeps unit_cell_n_atoms <= max_atoms) or 'pos_abs' (keeps
                n_atoms <= max_atoms, the particle).
            max_atoms: the limit; default CHILI's (20 unit-cell atoms, 200 particle atoms).
        """
        if target not in TARGETS:
            raise InvdesignError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
        limit = TARGETS[target] if max_atoms is None else int(max_atoms)
        attr = "unit_cell_n_atoms" if target == "unit_cell_pos_frac" else "n_atoms"
        return [i for i, row in enumerate(self.records) if getattr(row, attr) <= limit]

    @property
    def sources(self) -> list[str]:
        """The source id of every graph (the grouping key of the grouped split)."""
        return [row.source for row in self.records]

    def cache_task_arrays(
        self, indices: Sequence[int], fields: Sequence[str], cache: bool = True
    ) -> dict[str, list[np.ndarray]]:
        """The requested fields of many graphs, read once per file and kept in an on-disk cache.

        See `invdesign.data.task_arrays.load_task_arrays`: returns field -> one numpy array per
        index (in the order of `indices`); a second call (also from a new process) with the same
        files, indices and fields loads one `.npz` instead of reopening the HDF5 files.
        """
        return load_task_arrays(self, indices, fields, cache=cache)


def data_folders(root: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """One or several data folders as paths (`~` expanded); refuses an empty list, a folder
    given twice and a folder inside another (its files would be counted twice)."""
    items = [root] if isinstance(root, str | os.PathLike) else list(root)
    if not items:
        raise InvdesignError("no data folder given")
    folders = [Path(item).expanduser() for item in items]
    resolved = [folder.resolve() for folder in folders]
    for i, a in enumerate(resolved):
        for j, b in enumerate(resolved):
            if i < j and a == b:
                raise InvdesignError("data folder given twice", folders[i])
            if i != j and b in a.parents:
                raise InvdesignError(f"data folder lies inside the data folder {folders[j]}",
                                     folders[i])
    return folders


# --------------------------------------------------------------------------------- conversion
def _graph_tensors(graph: GraphArrays) -> dict[str, torch.Tensor]:
    return {
        "x": torch.from_numpy(np.ascontiguousarray(graph.node_features, dtype=np.float32)),
        "edge_index": torch.from_numpy(np.ascontiguousarray(graph.edge_index, dtype=np.int64)),
        "edge_attr": torch.from_numpy(np.ascontiguousarray(graph.edge_attr, dtype=np.float32)).view(
            -1, 1
        ),
        "pos_abs": torch.from_numpy(np.ascontiguousarray(graph.pos_abs, dtype=np.float32)),
        "pos_frac": torch.from_numpy(np.ascontiguousarray(graph.pos_frac, dtype=np.float32)),
    }


def record_labels(record: ChiliRecord, particle: int) -> dict[str, Any]:
    """The CHILI Table-2 `y` dict of particle `particle` of `record`.

    Strings stay `str`; counts are `int`; `np_size` is a float (Å); arrays are tensors:
    atomic_species [k] long, cell_params [6] float32 (a, b, c Å; alpha, beta, gamma deg),
    unit_cell_x [n_uc, 4], unit_cell_edge_index [2, m_uc], unit_cell_edge_attr [m_uc, 1] Å,
    unit_cell_pos_abs [n_uc, 3] Å, unit_cell_pos_frac [n_uc, 3], and each present pattern (xrd, nd,
    xPDF, nPDF, saxs, sans) [2, L] float32.
    """
    entry = record.particles[particle]
    uc = _graph_tensors(record.unit_cell)
    species = torch.from_numpy(np.asarray(record.elements_present, dtype=np.int64))
    y: dict[str, Any] = {
        "crystal_type": record.crystal_type,
        "space_group_symbol": record.space_group_symbol,
        "space_group_number": int(record.space_group_number),
        "crystal_system": record.crystal_system,
        "crystal_system_number": crystal_system_number(record.crystal_system),
        "atomic_species": species,
        "n_atomic_species": int(species.numel()),
        "np_size": float(entry.size),
        "n_atoms": entry.graph.n_atoms,
        "n_bonds": entry.graph.n_edges,
        "cell_params": torch.as_tensor(np.asarray(record.cell_params, dtype=np.float32)),
        "unit_cell_x": uc["x"],
        "unit_cell_edge_index": uc["edge_index"],
        "unit_cell_edge_attr": uc["edge_attr"],
        "unit_cell_pos_abs": uc["pos_abs"],
        "unit_cell_pos_frac": uc["pos_frac"],
        "unit_cell_n_atoms": record.unit_cell.n_atoms,
        "unit_cell_n_bonds": record.unit_cell.n_edges,
    }
    for name, values in entry.patterns.items():
        y[name] = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
    return y


def record_to_data(
    record: ChiliRecord, particle: int = 0, source: str | None = None, key: str | None = None
) -> Data:
    """Particle `particle` of `record` as a torch-geometric `Data` with every CHILI Table-2 field.

    Returns:
        Data with x [n, 4] (atomic_number, atomic_radius, atomic_weight, electron_affinity),
        edge_index [2, m] long (both directions), edge_attr [m, 1] bond length Å, pos_abs [n, 3] Å
        (centred on the central metal), pos_frac [n, 3], y (see `record_labels`), source (file stem)
        and size_key (the file's group name, '%.2fÅ').
    """
    entry = record.particles[particle]
    data = Data(**_graph_tensors(entry.graph), y=record_labels(record, particle))
    data.source = record.name if source is None else source
    data.size_key = size_key(entry.size) if key is None else key
    return data
