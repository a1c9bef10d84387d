"""Graphs and batches of graphs for the property networks, in plain torch.

`GraphData` holds one graph's tensors (or a batch's) as attributes, as a PyG `Data` does;
`collate` joins graphs into one batch the way PyG's `Batch.from_data_list` does for the
attributes the networks read (node rows and bond rows concatenated, `edge_index` shifted by the
atoms before it, `lg_index` by the bonds before it, `batch` the graph of each atom), so
`predict_batches` gives the networks the same tensors as PyG's `DataLoader` without importing
torch_geometric. `PackedGraphs` concatenates the graphs once so that a batch is a few index
operations (the `atomset` model's training and prediction). Training of the other models keeps
PyG's `DataLoader` (its shuffling, module `train`).

Graph attributes (see `graphs`): z [n] long, pos [n, 3] Å, pe [n, n_pe], atom_fea [n, m]
(optional), edge_index [2, E] long, edge_shift [E, 3] Å, lg_index [2, T] long (bond indices),
desc [1, n_desc] and y [1] (optional, per graph).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

#: Attributes with one row per atom, per bond, per graph; index attributes and what shifts them.
NODE_KEYS = ("z", "pos", "pe", "atom_fea")
EDGE_KEYS = ("edge_shift",)
GRAPH_KEYS = ("desc", "y")
INDEX_KEYS = ("edge_index", "lg_index")


class GraphData:
    """Tensors of one graph or one batch as attributes (item access too, like a PyG `Data`)."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)

    def __contains__(self, key: str) -> bool:
        return getattr(self, key, None) is not None

    def keys(self) -> list[str]:
        return list(vars(self))

    def clone(self) -> GraphData:
        return GraphData(**{k: v.clone() if isinstance(v, torch.Tensor) else v
                            for k, v in vars(self).items()})

    def to(self, device: str | torch.device) -> GraphData:
        return GraphData(**{k: v.to(device) if isinstance(v, torch.Tensor) else v
                            for k, v in vars(self).items()})

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={list(v.shape)}" if isinstance(v, torch.Tensor) else f"{k}={v}"
                           for k, v in vars(self).items())
        return f"GraphData({shapes})"


def _n_nodes(graph: Any) -> int:
    return int(graph.num_nodes) if getattr(graph, "num_nodes", None) is not None else int(
        graph.z.shape[0])


def collate(graphs: Sequence[Any]) -> GraphData:
    """One batch of `graphs` (`GraphData` or PyG `Data` with the attributes above): the tensors
    PyG's collation gives for them, plus `batch` [N] and `num_graphs`."""
    first = graphs[0]
    counts = torch.tensor([_n_nodes(g) for g in graphs])
    edges = torch.tensor([int(g.edge_index.shape[1]) for g in graphs])
    values: dict[str, Any] = {}
    for key in (*NODE_KEYS, *EDGE_KEYS, *GRAPH_KEYS):
        if getattr(first, key, None) is not None:
            values[key] = torch.cat([getattr(g, key) for g in graphs])
    shifts = {"edge_index": torch.cumsum(counts, 0) - counts,
              "lg_index": torch.cumsum(edges, 0) - edges}
    for key in INDEX_KEYS:
        if getattr(first, key, None) is not None:
            values[key] = torch.cat([getattr(g, key) + int(shift)
                                     for g, shift in zip(graphs, shifts[key], strict=True)], 1)
    values["batch"] = torch.repeat_interleave(torch.arange(len(graphs)), counts)
    values["num_graphs"] = len(graphs)
    return GraphData(**values)


class PackedGraphs:
    """The tensors an `atomset` network reads (z, pos, atom_fea per atom; edge_index, edge_shift
    per bond; desc, y per graph), concatenated once, so that a batch is a few index operations:
    PyG's per-graph collation costs more than the network itself on five-atom cells."""

    NODE_KEYS = ("z", "pos", "atom_fea")
    GRAPH_KEYS = ("desc", "y")

    def __init__(self, graphs: Sequence) -> None:
        self.n_nodes = torch.tensor([_n_nodes(g) for g in graphs])
        self.n_edges = torch.tensor([int(g.edge_index.shape[1]) for g in graphs])
        self.node_start = torch.cumsum(self.n_nodes, 0) - self.n_nodes
        self.edge_start = torch.cumsum(self.n_edges, 0) - self.n_edges
        first = graphs[0]
        self.node = {
            k: torch.cat([getattr(g, k) for g in graphs])
            for k in self.NODE_KEYS
            if getattr(first, k, None) is not None
        }
        self.graph = {
            k: torch.cat([getattr(g, k).reshape(1, -1) for g in graphs])
            for k in self.GRAPH_KEYS
            if getattr(first, k, None) is not None
        }
        self.edge_index = torch.cat([g.edge_index for g in graphs], 1)  # per-graph atom indices
        self.edge_shift = torch.cat([g.edge_shift for g in graphs])

    def __len__(self) -> int:
        return len(self.n_nodes)

    def batch(self, ids: torch.Tensor) -> GraphData:
        """The graphs `ids` as one batch (the attributes of a PyG `Batch` the model uses)."""
        counts, edge_counts = self.n_nodes[ids], self.n_edges[ids]
        nodes = _ranges(self.node_start[ids], counts)
        edges = _ranges(self.edge_start[ids], edge_counts)
        offset = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, edge_counts)
        batch = GraphData(
            edge_index=self.edge_index[:, edges] + offset,
            edge_shift=self.edge_shift[edges],
            batch=torch.repeat_interleave(torch.arange(len(ids)), counts),
            **{k: v[nodes] for k, v in self.node.items()},
        )
        for k, v in self.graph.items():
            batch[k] = v[ids] if k == "desc" else v[ids].reshape(-1)
        batch.num_graphs = len(ids)
        return batch

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None, drop_last: bool = False
    ) -> Iterator[GraphData]:
        """Batches in order, or shuffled by `generator`."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if generator is not None else None
        stop = n - n % batch_size if drop_last and n > batch_size else n
        for start in range(0, stop, batch_size):
            ids = torch.arange(start, min(start + batch_size, n))
            yield self.batch(ids if order is None else order[ids])


def _ranges(starts: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Concatenation of arange(s, s + c) for each start s and count c."""
    shift = torch.repeat_interleave(starts - (torch.cumsum(counts, 0) - counts), counts)
    return torch.arange(int(counts.sum())) + shift


def predict_batches(model: str, graphs: Sequence, batch_size: int) -> Iterator[GraphData]:
    """Batches of `graphs` in order, for prediction: packed for `atomset`, collated otherwise."""
    if model == "atomset":
        yield from PackedGraphs(graphs).batches(batch_size)
        return
    for start in range(0, len(graphs), batch_size):
        yield collate(graphs[start:start + batch_size])
