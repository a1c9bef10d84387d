"""The few graph operations the property networks use, in plain torch: sums, means and maxima over
groups of rows (`scatter`), a softmax within each group (`segment_softmax`) and padding of each
graph's rows to a dense batch (`to_dense_batch`).

They compute what `torch_geometric.utils.scatter`, `softmax` and `to_dense_batch` compute on the
CPU, with the same operations in the same order (`scatter_add_` for sums, `scatter_reduce_` for
maxima, the same 1e-16 guard of the softmax), so a network gives the same numbers with either
(tests/evaluators/property/test_segment_ops.py compares them). Predicting with a property network
then never imports torch_geometric (~1 s and hundreds of modules); its data loaders and `CGConv`
(training, the CGCNN baseline) still come from torch_geometric.

Conventions: `index` [n] long gives the group of each row of `src` along `dim`; `dim_size` is the
number of groups (empty groups give 0).
"""

from __future__ import annotations

import torch

#: What `segment_softmax` adds to each group's sum of exponentials (as torch_geometric does).
SOFTMAX_EPS = 1e-16


def _broadcast(index: torch.Tensor, ref: torch.Tensor, dim: int) -> torch.Tensor:
    """`index` [n] viewed along `dim` and expanded to the shape of `ref`."""
    shape = [1] * ref.dim()
    shape[dim] = -1
    return index.view(shape).expand_as(ref)


def _out_shape(src: torch.Tensor, dim: int, dim_size: int) -> list[int]:
    shape = list(src.shape)
    shape[dim] = dim_size
    return shape


def scatter_sum(src: torch.Tensor, index: torch.Tensor, dim: int = 0,
                dim_size: int | None = None) -> torch.Tensor:
    """Sum of the rows of `src` in each group: [..., dim_size, ...]."""
    dim = dim % src.dim()
    size = _size(index, dim_size)
    return src.new_zeros(_out_shape(src, dim, size)).scatter_add_(
        dim, _broadcast(index, src, dim), src)


def scatter_mean(src: torch.Tensor, index: torch.Tensor, dim: int = 0,
                 dim_size: int | None = None) -> torch.Tensor:
    """Mean of the rows of `src` in each group (0 for an empty group)."""
    dim = dim % src.dim()
    size = _size(index, dim_size)
    count = src.new_zeros(size).scatter_add_(0, index, src.new_ones(src.shape[dim]))
    out = scatter_sum(src, index, dim, size)
    return out / _broadcast(count.clamp(min=1), out, dim)


def scatter_max(src: torch.Tensor, index: torch.Tensor, dim: int = 0,
                dim_size: int | None = None) -> torch.Tensor:
    """Largest row of `src` in each group (0 for an empty group)."""
    dim = dim % src.dim()
    size = _size(index, dim_size)
    return src.new_zeros(_out_shape(src, dim, size)).scatter_reduce_(
        dim, _broadcast(index, src, dim), src, reduce="amax", include_self=False)


def segment_softmax(src: torch.Tensor, index: torch.Tensor, num_segments: int | None = None,
                    dim: int = 0) -> torch.Tensor:
    """Softmax of `src` over the rows of each group (e.g. the incoming bonds of each atom)."""
    dim = dim % src.dim()
    size = _size(index, num_segments)
    src_max = scatter_max(src.detach(), index, dim, size)
    out = (src - src_max.index_select(dim, index)).exp()
    out_sum = scatter_sum(out, index, dim, size) + SOFTMAX_EPS
    return out / out_sum.index_select(dim, index)


def to_dense_batch(x: torch.Tensor, batch: torch.Tensor,
                   batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of `x` [N, ...] of each graph (`batch` [N], graphs contiguous and in order) padded
    with zeros to the largest graph: ([B, n_max, ...], mask [B, n_max] True on real rows)."""
    if batch_size is None:
        batch_size = int(batch.max()) + 1 if batch.numel() else 0
    counts = scatter_sum(torch.ones_like(batch), batch, 0, batch_size)
    n_max = int(counts.max()) if batch_size else 0
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(batch.shape[0], device=x.device) - starts[batch] + batch * n_max
    out = x.new_zeros([batch_size * n_max, *x.shape[1:]])
    out[slot] = x
    mask = torch.zeros(batch_size * n_max, dtype=torch.bool, device=x.device)
    mask[slot] = True
    return out.view([batch_size, n_max, *x.shape[1:]]), mask.view(batch_size, n_max)


def _size(index: torch.Tensor, dim_size: int | None) -> int:
    if dim_size is not None:
        return int(dim_size)
    return int(index.max()) + 1 if index.numel() else 0
