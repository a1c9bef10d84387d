"""The crystal graph as a PyG `Data` (`graphs.build_graph`), for training with PyG's data loaders:
the one graph class of the property package that needs torch_geometric (prediction uses the plain
`batching.GraphData` and `batching.collate`, which give the networks the same tensors)."""

from __future__ import annotations

from torch_geometric.data import Data


class CrystalGraph(Data):
    """PyG `Data` whose `lg_index` is offset by the number of bonds when graphs are batched."""

    def __inc__(self, key, value, *args, **kwargs):
        if key == "lg_index":
            return self.edge_index.size(1)
        return super().__inc__(key, value, *args, **kwargs)
