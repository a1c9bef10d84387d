"""CHILI Table 1 statistics of a dataset, computed from the index alone (no graph arrays are read).

Graphs (total and the CHILI random split's train / val / test), nodes and edges per graph (min,
median, max, total; edges count both directions, as CHILI does), sources (files) and graphs per
crystal system; sources per space group and per element (the breadth of a built set).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from invdesign.core.elements import symbol
from invdesign.core.errors import InvdesignError
from invdesign.data.index import IndexRow, build_index
from invdesign.data.layout import CRYSTAL_SYSTEMS
from invdesign.data.splits import chili_random_split

if TYPE_CHECKING:
    from invdesign.data.dataset import ChiliDataset


@dataclass(frozen=True)
class Summary:
    """min / median / max / total of a per-graph count."""

    min: int
    median: float
    max: int
    total: int

    @classmethod
    def of(cls, values: list[int]) -> Summary:
        a = np.asarray(values, dtype=np.int64)
        return cls(int(a.min()), float(np.median(a)), int(a.max()), int(a.sum()))


@dataclass(frozen=True)
class DatasetStats:
    """CHILI Table 1 for one folder.

    Attributes:
        root: the data folder.
        n_sources: number of HDF5 files (source unit cells).
        n_graphs: number of graphs (file x particle size).
        split: graphs per part of the CHILI random split (seed 42): {'train', 'val', 'test'}.
        nodes, edges: per-graph atoms and directed edges.
        crystal_systems: graphs per crystal system (the seven in order, then any other label).
        space_groups: sources (files) per space-group number, most frequent first.
        elements: sources (files) holding each element (symbol), by atomic number.
    """

    root: str
    n_sources: int
    n_graphs: int
    split: dict[str, int]
    nodes: Summary
    edges: Summary
    crystal_systems: dict[str, int]
    space_groups: dict[int, int] = field(default_factory=dict)
    elements: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def folder_stats(root: str | os.PathLike) -> DatasetStats:
    """Table 1 statistics of a folder of CHILI files: builds (or reuses) the index, reads no arrays.

    Does not import torch, so `invdesign data info` starts fast.
    """
    rows, _, _ = build_index(Path(root))
    return index_stats(rows, Path(root).resolve())


def dataset_stats(ds: ChiliDataset) -> DatasetStats:
    """Table 1 statistics of `ds` from its index rows."""
    return index_stats(ds.records, ds.data_root)


def index_stats(rows: list[IndexRow], root: Path) -> DatasetStats:
    """Table 1 statistics of index rows (one per graph)."""
    if not rows:
        raise InvdesignError("the CHILI files here hold no particle graphs", root)
    counts = Counter(r.crystal_system for r in rows)
    systems = {name: counts.pop(name, 0) for name in CRYSTAL_SYSTEMS}
    systems.update(sorted(counts.items()))
    sources = {r.path: (r.space_group_number, r.elements) for r in rows}
    split = (
        {k: len(v) for k, v in chili_random_split(range(len(rows)), seed=42).items()}
        if len(rows) >= 3
        else {"train": len(rows), "val": 0, "test": 0}
    )
    return DatasetStats(
        root=str(root),
        n_sources=len({r.path for r in rows}),
        n_graphs=len(rows),
        split=split,
        nodes=Summary.of([r.n_atoms for r in rows]),
        edges=Summary.of([r.n_bonds for r in rows]),
        crystal_systems=systems,
        space_groups=dict(Counter(sources[p][0] for p in sources).most_common()),
        elements={symbol(z): n for z, n in sorted(Counter(
            z for p in sources for z in sources[p][1]).items())},
    )


def format_stats(stats: DatasetStats) -> str:
    """A plain-text table in the layout of CHILI Table 1, plus the crystal-system counts."""
    n, e, split = stats.nodes, stats.edges, stats.split
    lines = [
        f"dataset: {stats.root}",
        f"sources (files): {stats.n_sources:,}",
        "",
        f"{'':<14}{'total':>13}{'train':>11}{'val':>9}{'test':>9}",
        f"{'# of graphs':<14}{stats.n_graphs:>13,}{split['train']:>11,}{split['val']:>9,}"
        f"{split['test']:>9,}",
        "",
        f"{'':<14}{'min':>9}{'median':>11}{'max':>11}{'total':>16}",
    ]
    for label, s in (("# of nodes", n), ("# of edges", e)):
        lines.append(f"{label:<14}{s.min:>9,}{s.median:>11,g}{s.max:>11,}{s.total:>16,}")
    lines += ["", "crystal system   graphs   share"]
    for name, count in stats.crystal_systems.items():
        share = count / stats.n_graphs if stats.n_graphs else 0.0
        lines.append(f"{name:<15}{count:>8,}{share:>8.1%}")
    if stats.space_groups:
        top = ", ".join(f"{sg}: {n:,}" for sg, n in list(stats.space_groups.items())[:10])
        lines += ["", f"space groups: {len(stats.space_groups)} distinct (sources; most frequent "
                  f"{top})"]
    if stats.elements:
        lines.append(f"elements: {len(stats.elements)} distinct: {' '.join(stats.elements)}")
    lines.append("(edges count both directions; split: CHILI random, seed 42, 10 % test, 10 % val)")
    return "\n".join(lines)
