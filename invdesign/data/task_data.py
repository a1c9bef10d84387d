"""Task tensors: the few small arrays per graph a task needs (input patterns, target coordinates
and species, the cell), in memory (`TaskData`) or read batch by batch from the files
(`LazyTaskData`).

In memory: read once through `ChiliDataset.cache_task_arrays` (one pass over the HDF5 files, then an
on-disk `.npz`), turned into dense tensors and kept for every epoch; a process that trains several
models on one task (the Table 5 benchmark) reuses them through a small in-process cache.

A data set too large for that (CHILI-100K: about 500,000 graphs of 6,000-point PDFs) is read batch
by batch instead (`LazyTaskData`): only the on-disk index (labels and shapes) stays in memory, and
each batch opens the files of its graphs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psutil
import torch

from invdesign.core.conditions import minmax, on_model_grid
from invdesign.core.errors import InvdesignError
from invdesign.core.patterns import PATTERNS, pattern_spec
from invdesign.core.tasks import TARGETS, Condition, TaskBatch, TaskSpec
from invdesign.data.dataset import ChiliDataset
from invdesign.data.splits import split_indices
from invdesign.data.task_arrays import load_task_arrays

CHILI_INPUTS = ("saxs", "xrd", "xPDF")
_MEMORY: dict[tuple[str, str, str, int], TaskData] = {}


@dataclass
class TaskData:
    """Dense tensors of N graphs for one task (targets sorted by |r|, padded).

    Attributes:
        patterns: name -> [N, L] min-max normalised values on the model grid.
        target: [N, max_atoms, 3] fractional coordinates or Å; mask [N, max_atoms] bool.
        species: [N, max_atoms] long atomic numbers in target order, 0 for padding.
        n_atoms: [N] long; cell_params: [N, 6] (a, b, c Å; angles deg).
        indices: [N] graph indices of the dataset; meta: per graph source and size_key.
        pattern_range: name -> [N, 2] (min, max - min) of each stored pattern before normalising,
            so `raw_pattern` gives the values back (e.g. for Rw against a simulated pattern).
        parent: particle tasks only, the unit cells the particles were cut from, as unit-cell task
            data of the same graphs (same patterns; at least CHILI's 20 atoms of padding), e.g.
            for a generator that predicts the crystal and cuts the particle from it.
    """

    task: TaskSpec
    patterns: dict[str, torch.Tensor]
    target: torch.Tensor
    mask: torch.Tensor
    species: torch.Tensor
    n_atoms: torch.Tensor
    cell_params: torch.Tensor
    indices: list[int]
    meta: list[dict[str, Any]] = field(default_factory=list)
    pattern_range: dict[str, torch.Tensor] = field(default_factory=dict)
    parent: TaskData | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def subset(self, indices: list[int]) -> TaskData:
        """The rows holding the given dataset graph indices (in that order)."""
        pos = {g: k for k, g in enumerate(self.indices)}
        rows = torch.tensor([pos[i] for i in indices], dtype=torch.long)
        return TaskData(
            self.task,
            {k: v[rows] for k, v in self.patterns.items()},
            self.target[rows],
            self.mask[rows],
            self.species[rows],
            self.n_atoms[rows],
            self.cell_params[rows],
            list(indices),
            [self.meta[int(r)] for r in rows],
            {k: v[rows] for k, v in self.pattern_range.items()},
            None if self.parent is None else self.parent.subset(indices),
        )

    def concat(self, other: TaskData) -> TaskData:
        """These rows followed by `other`'s (same task); `other`'s graph indices are stored as
        -1 - index, since they count in another dataset."""
        if other.task != self.task:
            raise InvdesignError(f"cannot join {other.task.name} data to {self.task.name} data")
        parent = None
        if self.parent is not None and other.parent is not None:
            if other.parent.task != self.parent.task:  # padded to another size: pad both
                task = max(self.parent.task, other.parent.task, key=lambda t: t.max_atoms)
                parent = self.parent.padded(task).concat(other.parent.padded(task))
            else:
                parent = self.parent.concat(other.parent)
        return TaskData(
            self.task,
            {k: torch.cat([v, other.patterns[k]]) for k, v in self.patterns.items()},
            torch.cat([self.target, other.target]),
            torch.cat([self.mask, other.mask]),
            torch.cat([self.species, other.species]),
            torch.cat([self.n_atoms, other.n_atoms]),
            torch.cat([self.cell_params, other.cell_params]),
            self.indices + [-1 - i for i in other.indices],
            self.meta + other.meta,
            {k: torch.cat([v, other.pattern_range[k]]) for k, v in self.pattern_range.items()},
            parent,
        )

    def padded(self, task: TaskSpec) -> TaskData:
        """The same rows as data of `task` (same target, at least as many atoms of padding)."""
        if task.target != self.task.target or task.max_atoms < self.target.shape[1]:
            raise InvdesignError(f"cannot pad {self.task.name} data to {task.name} data")
        m = task.max_atoms
        return TaskData(
            task, self.patterns, _pad(self.target, m), _pad(self.mask, m), _pad(self.species, m),
            self.n_atoms, self.cell_params, self.indices, self.meta, self.pattern_range,
            self.parent,
        )

    def raw_pattern(self, name: str, row: int) -> np.ndarray:
        """[L] float64 values of pattern `name` of `row` on the model grid, as stored (before
        min-max normalising)."""
        if name not in self.pattern_range:
            raise InvdesignError(f"the stored range of pattern {name} was not kept")
        lo, span = self.pattern_range[name][row].double().tolist()
        return self.patterns[name][row].double().numpy() * span + lo

    def compositions(self, rows: torch.Tensor | list[int]) -> list[dict[int, float]]:
        """Atomic number -> fraction for the given rows."""
        out = []
        for r in rows:
            z = self.species[int(r)][self.mask[int(r)]].tolist()
            counts = Counter(z)
            out.append({int(k): v / len(z) for k, v in sorted(counts.items())})
        return out

    def batch(
        self, rows: torch.Tensor | list[int], condition_on: tuple[str, ...] = ()
    ) -> TaskBatch:
        """A `TaskBatch` of the given rows; `condition_on` adds 'composition', 'cell', 'n_atoms'."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        cond = Condition(
            {k: v[rows] for k, v in self.patterns.items()},
            self.compositions(rows) if "composition" in condition_on else None,
            self.cell_params[rows] if "cell" in condition_on else None,
            self.n_atoms[rows] if "n_atoms" in condition_on else None,
        )
        return TaskBatch(
            cond,
            self.target[rows],
            self.mask[rows],
            self.species[rows],
            self.n_atoms[rows],
            self.cell_params[rows],
            [self.meta[int(r)] for r in rows],
            None if self.parent is None else self.parent.batch(rows, condition_on),
        )

    def species_vocab(self) -> list[int]:
        """Sorted atomic numbers present in these graphs."""
        return sorted(int(z) for z in torch.unique(self.species[self.mask]).tolist())


def task_fields(task: TaskSpec, shared: bool = True) -> list[str]:
    """The fields read for `task`: the task's patterns, target positions and species, the cell
    (particles also their parent cells). `shared` adds CHILI's three inputs, so that one field
    set per target lets the on-disk cache of `cache_task_arrays` serve every Table 5 task of a
    target after one pass over the files."""
    pos_field, species_field = _target_fields(task)
    return [
        *dict.fromkeys([*stored_patterns(task), *(CHILI_INPUTS if shared else ())]),
        pos_field,
        species_field,
        "cell_params",
        *(["unit_cell_pos_frac", "unit_cell_x"] if task.kind == "particle" else []),
    ]


def stored_patterns(task: TaskSpec) -> list[str]:
    """The stored patterns (CHILI fields) the task's inputs are read from (a view reads its
    source pattern, `invdesign.core.patterns.VIEWS`)."""
    return list(dict.fromkeys(pattern_spec(name).stored for name in task.patterns))


def _target_fields(task: TaskSpec) -> tuple[str, str]:
    return ("unit_cell_pos_frac", "unit_cell_x") if task.kind == "unit_cell" else ("pos_abs", "x")


def in_unit_cell(frac: np.ndarray) -> np.ndarray:
    """Fractional coordinates wrapped into [0, 1), as CHILI's cells hold them (a file may keep an
    atom across a cell face, e.g. a relaxed cell); values already inside are returned as stored."""
    frac = np.asarray(frac, dtype=np.float32)
    wrapped = np.mod(frac, np.float32(1.0))
    wrapped[wrapped >= 1.0] = 0.0  # -1e-9 mod 1 is 1.0 in float32
    return np.where((frac >= 0.0) & (frac < 1.0), frac, wrapped)


def task_data_from_arrays(
    ds: ChiliDataset, task: TaskSpec, indices: list[int], arrays: dict[str, list[np.ndarray]],
    parent_atoms: int | None,
) -> TaskData:
    """The `TaskData` of graphs `indices` from their raw fields (`task_fields`); particle tasks
    get their parent cells padded to `parent_atoms`."""
    patterns, ranges = {}, {}
    for name in task.patterns:
        stored = pattern_spec(name).stored
        if any(a.size == 0 for a in arrays[stored]):
            raise InvdesignError(f"some graphs of {_where(ds)} have no {stored} pattern")
        values = np.stack([on_model_grid(a, name) for a in arrays[stored]])
        patterns[name] = torch.as_tensor(minmax(values), dtype=torch.float32)
        lo = values.min(axis=1)
        ranges[name] = torch.as_tensor(np.stack([lo, values.max(axis=1) - lo], axis=1))
    cell_params = torch.as_tensor(
        np.stack(arrays["cell_params"]), dtype=torch.float32
    ).reshape(-1, 6)
    meta = [
        {"index": i, "source": ds.records[i].source, "size_key": ds.records[i].size_key}
        for i in indices
    ]

    def part(task: TaskSpec, pos: str, feats: str, parent: TaskData | None) -> TaskData:
        positions = arrays[pos]
        if pos == "unit_cell_pos_frac":
            positions = [in_unit_cell(a) for a in positions]
        target, mask, species = _sorted_padded(positions, arrays[feats], task.max_atoms)
        return TaskData(task, patterns, target, mask, species, mask.sum(1), cell_params,
                        list(indices), meta, ranges, parent)

    parent = None
    if task.kind == "particle":
        assert parent_atoms is not None
        cells = TaskSpec(task.patterns, "unit_cell_pos_frac", parent_atoms)
        parent = part(cells, "unit_cell_pos_frac", "unit_cell_x", None)
    return part(task, *_target_fields(task), parent)


def load_task_data(ds: ChiliDataset, task: TaskSpec, indices: list[int] | None = None) -> TaskData:
    """Read the task tensors of `indices` (default: every graph passing the task filter) once."""
    if indices is None:
        indices = ds.task_indices(task.target, task.max_atoms)
    if not indices:
        raise InvdesignError(
            f"no graph in {_where(ds)} fits task {task.name} (max_atoms={task.max_atoms})"
        )
    key = (str(ds.data_root), ds.fingerprint, task.name, task.max_atoms)
    cached = _MEMORY.get(key)
    if cached is not None and set(indices) <= set(cached.indices):
        return cached.subset(indices)
    particle = task.kind == "particle"
    fields = task_fields(task)
    arrays = ds.cache_task_arrays(indices, fields)
    parent_atoms = None
    if particle:  # CHILI's 20 atoms of padding, or more when a cell holds more
        parent_atoms = max(TARGETS["unit_cell_pos_frac"],
                           max(len(a) for a in arrays["unit_cell_pos_frac"]))
    data = task_data_from_arrays(ds, task, indices, arrays, parent_atoms)
    _MEMORY[key] = data
    return data


#: `in_memory='auto'` keeps the task arrays in memory up to this estimated size (see
#: `estimated_bytes`), else reads them batch by batch from the files; None: the size
#: `in_memory_limit` gives from the memory available when the data are set up.
IN_MEMORY_LIMIT_BYTES: int | None = None
#: The share of the available memory `in_memory_limit` allows, and its floor (bytes).
IN_MEMORY_SHARE = 0.25
IN_MEMORY_FLOOR_BYTES = 1 << 30
_READ_CHUNK = 1024


def _rows_of(data: TaskData, rows: list[int]) -> TaskData:
    """`data`'s rows `rows` (positions, repeats allowed) as a new `TaskData`."""
    r = torch.tensor(rows, dtype=torch.long)
    return TaskData(
        data.task, {k: v[r] for k, v in data.patterns.items()}, data.target[r], data.mask[r],
        data.species[r], data.n_atoms[r], data.cell_params[r], [data.indices[i] for i in rows],
        [data.meta[i] for i in rows], {k: v[r] for k, v in data.pattern_range.items()},
        None if data.parent is None else _rows_of(data.parent, rows))


class WholeDataRequired(InvdesignError):
    """A statistic of every graph's arrays (e.g. the diffusion prior's prototype library) was asked
    of data left on disk (`LazyTaskData`); `what` names the arrays."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"{what} of every graph was asked of data read batch by batch from the "
                         "files; set data.in_memory=true")


def in_memory_limit(limit: int | None = None) -> int:
    """The size up to which `in_memory='auto'` keeps task arrays in memory: `limit` if given, else
    `IN_MEMORY_SHARE` of the memory available now (`psutil`), at least `IN_MEMORY_FLOOR_BYTES`.
    A fixed 1 GiB made an 18k-graph unit-cell set (1.4 GiB estimated) read every batch from the
    files on a 24 GB machine, and its MLP epochs six times slower."""
    if limit is not None:
        return int(limit)
    available = psutil.virtual_memory().available
    return max(IN_MEMORY_FLOOR_BYTES, int(IN_MEMORY_SHARE * available))


def estimated_bytes(task: TaskSpec, n_graphs: int) -> int:
    """Rough peak memory (bytes) of reading `n_graphs` graphs of `task` into memory: the raw
    patterns read (two float32 rows each, CHILI's three inputs and the task's), the normalised
    float32 patterns kept, and the padded targets."""
    read = [name for name in task_fields(task) if name in PATTERNS]
    per_graph = (sum(8 * len(pattern_spec(name).grid()) for name in read)
                 + sum(4 * len(pattern_spec(name).grid()) for name in task.patterns)
                 + 64 * task.max_atoms)
    return n_graphs * per_graph


class LazyTaskData:
    """The reading interface of `TaskData` (`len`, `task`, `indices`, `batch`, `raw_pattern`,
    `compositions`, `species_vocab`) over graphs left in their HDF5 files: each call reads only the
    graphs it needs through the dataset's on-disk index (`load_task_arrays(..., cache=False)`) and
    turns them into tensors exactly as `load_task_data` does, so batches hold the same values as
    those of the in-memory data while memory does not grow with the number of graphs.

    Args:
        task: the task.
        segments: (dataset, graph indices) pairs whose rows follow each other; the graph indices
            of the second and later segments are reported as -1 - index (as `TaskData.concat`).
        parent_atoms: particle tasks, the padding of the parent cells (the largest cell of the
            graphs the in-memory data would have been read from, at least CHILI's 20).
    """

    def __init__(self, task: TaskSpec, segments: Sequence[tuple[ChiliDataset, list[int]]],
                 parent_atoms: int | None = None) -> None:
        self.task = task
        self.segments = [(ds, [int(i) for i in idx]) for ds, idx in segments]
        self.parent_atoms = parent_atoms
        self._starts = np.cumsum([0, *(len(idx) for _, idx in self.segments)])

    def __len__(self) -> int:
        return int(self._starts[-1])

    @property
    def indices(self) -> list[int]:
        return [i if k == 0 else -1 - i for k, (_, idx) in enumerate(self.segments) for i in idx]

    @property
    def meta(self) -> list[dict[str, Any]]:
        return [{"index": i, "source": ds.records[i].source, "size_key": ds.records[i].size_key}
                for ds, idx in self.segments for i in idx]

    @property
    def n_atoms(self) -> torch.Tensor:
        """[N] atom counts of the targets, from the index (no file is opened)."""
        attr = "unit_cell_n_atoms" if self.task.kind == "unit_cell" else "n_atoms"
        return torch.tensor([getattr(ds.records[i], attr) for ds, idx in self.segments
                             for i in idx], dtype=torch.long)

    def _whole(self, what: str) -> Any:
        raise WholeDataRequired(what)

    target = property(lambda self: self._whole("the target"))
    mask = property(lambda self: self._whole("the mask"))
    parent = property(lambda self: self._whole("the parent cells"))
    patterns = property(lambda self: self._whole("the patterns"))

    def concat(self, other: LazyTaskData) -> LazyTaskData:
        """These rows followed by `other`'s (same task); parent cells padded to the larger."""
        if other.task != self.task:
            raise InvdesignError(f"cannot join {other.task.name} data to {self.task.name} data")
        atoms = None if self.parent_atoms is None else max(self.parent_atoms,
                                                           other.parent_atoms or 0)
        return LazyTaskData(self.task, [*self.segments, *other.segments], atoms)

    def _read(self, rows: Sequence[int] | torch.Tensor) -> tuple[TaskData, list[int]]:
        """The graphs of `rows` read from the files (grouped by segment) as in-memory `TaskData`,
        and for each requested row its row in that data."""
        rows = [int(r) for r in torch.as_tensor(rows, dtype=torch.long).reshape(-1).tolist()]
        if not rows or any(not 0 <= r < len(self) for r in rows):
            raise IndexError(f"rows {rows[:5]}... not in 0..{len(self) - 1}")
        segment = np.searchsorted(self._starts, rows, side="right") - 1
        parts, order = [], [0] * len(rows)
        done = 0
        for k, (ds, idx) in enumerate(self.segments):
            mine = [p for p, s in enumerate(segment) if s == k]
            if not mine:
                continue
            graphs = [idx[rows[p] - int(self._starts[k])] for p in mine]
            arrays = load_task_arrays(ds, graphs, task_fields(self.task, shared=False),
                                      cache=False)
            parts.append(task_data_from_arrays(ds, self.task, graphs, arrays, self.parent_atoms))
            for j, p in enumerate(mine):
                order[p] = done + j
            done += len(mine)
        data = parts[0]
        for extra in parts[1:]:
            data = data.concat(extra)
        return data, order

    def read(self, rows: Sequence[int] | torch.Tensor) -> TaskData:
        """The given rows, in that order, read from the files as in-memory `TaskData`."""
        data, order = self._read(rows)
        return data if order == list(range(len(order))) else _rows_of(data, order)

    def batch(self, rows: Sequence[int] | torch.Tensor,
              condition_on: tuple[str, ...] = ()) -> TaskBatch:
        """A `TaskBatch` of the given rows, read from the files."""
        data, order = self._read(rows)
        return data.batch(order, condition_on)

    def raw_pattern(self, name: str, row: int) -> np.ndarray:
        data, order = self._read([row])
        return data.raw_pattern(name, order[0])

    def compositions(self, rows: torch.Tensor | list[int]) -> list[dict[int, float]]:
        data, order = self._read(rows)
        return data.compositions(order)

    def species_vocab(self) -> list[int]:
        """Sorted atomic numbers present in these graphs (one pass over their species field, a
        chunk of graphs at a time)."""
        feats = _target_fields(self.task)[1]
        found: set[int] = set()
        for ds, idx in self.segments:
            for start in range(0, len(idx), _READ_CHUNK):
                chunk = idx[start:start + _READ_CHUNK]
                for x in load_task_arrays(ds, chunk, [feats], cache=False)[feats]:
                    found.update(np.rint(np.asarray(x)[:, 0]).astype(np.int64).tolist())
        return sorted(found)


def _task_graphs(ds: ChiliDataset, task: TaskSpec) -> list[int]:
    chosen = ds.task_indices(task.target, task.max_atoms)
    if not chosen:
        raise InvdesignError(f"no graph fits task {task.name}", _where(ds))
    return chosen


def load_task_split(
    ds: ChiliDataset, task: TaskSpec, split: str = "grouped", split_seed: int = 42,
    required: tuple[str, ...] = ("train", "val", "test"),
) -> dict[str, TaskData]:
    """The task tensors of the 'train', 'val' and 'test' parts of a split of `ds` (each part's
    `indices` are its dataset graph indices); a one-line error when a `required` part is empty."""
    chosen = _task_graphs(ds, task)
    data = load_task_data(ds, task, chosen)
    parts = split_indices(ds, split, split_seed, indices=chosen)
    for name in required:
        if not parts[name]:
            raise InvdesignError(
                f"the {split} split of {len(chosen)} graphs for task {task.name} leaves the "
                f"{name} part empty",
                _where(ds),
            )
    return {name: data.subset(idx) for name, idx in parts.items()}


def load_task_part(
    ds: ChiliDataset, task: TaskSpec, split: str = "grouped", split_seed: int = 42,
    part: str = "test",
) -> TaskData:
    """The task tensors of one part ('train', 'val', 'test', or 'all') of a split of `ds`."""
    if part == "all":
        return load_task_data(ds, task, _task_graphs(ds, task))
    return load_task_split(ds, task, split, split_seed, (part,))[part]


def _where(ds: ChiliDataset) -> str:
    return ", ".join(str(folder) for folder in getattr(ds, "data_roots", [ds.data_root]))


def _pad(t: torch.Tensor, m: int) -> torch.Tensor:
    """`t` [N, M, ...] zero-padded along dim 1 to m >= M."""
    extra = torch.zeros((t.shape[0], m - t.shape[1], *t.shape[2:]), dtype=t.dtype)
    return torch.cat([t, extra], dim=1)


def _sorted_padded(
    positions: list[np.ndarray], features: list[np.ndarray], max_atoms: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Coordinates [N, max_atoms, 3], mask [N, max_atoms] and species [N, max_atoms], each graph's
    atoms sorted by |r| (stable, float64 norms) and zero-padded."""
    target = torch.zeros(len(positions), max_atoms, 3)
    mask = torch.zeros(len(positions), max_atoms, dtype=torch.bool)
    species = torch.zeros(len(positions), max_atoms, dtype=torch.long)
    for i, (pos, x) in enumerate(zip(positions, features, strict=True)):
        pos = np.asarray(pos, dtype=np.float64).reshape(-1, 3)
        order = np.argsort(np.linalg.norm(pos, axis=1), kind="stable")
        n = len(order)
        target[i, :n] = torch.as_tensor(pos[order], dtype=torch.float32)
        mask[i, :n] = True
        species[i, :n] = torch.as_tensor(np.rint(np.asarray(x)[:, 0]).astype(np.int64)[order])
    return target, mask, species
