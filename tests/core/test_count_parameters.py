"""`count_parameters_meta` counts what the real module holds (parameters plus buffers), with the
initialisers skipped on `meta`, and still answers None for a constructor that needs real data."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from invdesign.core.schema import count_parameters_meta


def _real_count(module: nn.Module) -> int:
    return sum(t.numel() for t in module.parameters()) + sum(b.numel() for b in module.buffers())


@pytest.mark.parametrize("build", [
    lambda: nn.Embedding(11, 4),
    lambda: nn.Sequential(nn.Linear(3, 5), nn.LayerNorm(5), nn.BatchNorm1d(5)),
    lambda: nn.TransformerEncoderLayer(8, 2, 16, batch_first=True),
    lambda: nn.MultiheadAttention(8, 2),
    lambda: nn.LSTM(4, 8),
])
def test_counts_what_the_module_holds(build):
    torch.manual_seed(0)
    assert count_parameters_meta(build) == _real_count(build())


class _NeedsData(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("table", torch.arange(4.0))
        self.size = int(self.table.sum())  # a value: impossible on meta


def test_a_constructor_that_reads_values_gives_none():
    assert count_parameters_meta(_NeedsData) is None


def test_initialisation_still_runs_outside_the_count():
    count_parameters_meta(lambda: nn.Embedding(5, 3))
    weight = nn.Embedding(5, 3).weight
    assert weight.device.type == "cpu" and float(weight.abs().sum()) > 0
