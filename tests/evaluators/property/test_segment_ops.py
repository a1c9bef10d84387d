"""Prediction without torch_geometric gives the numbers it gave with it: the plain-torch graph
operations (`segment_ops`) equal torch_geometric's `scatter`, `softmax` and `to_dense_batch`
bit for bit, `batching.collate` gives the tensors PyG's loader gives, and a network predicts the
same from either batch; loading a property checkpoint and predicting imports no torch_geometric."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader
from torch_geometric.utils import scatter, softmax
from torch_geometric.utils import to_dense_batch as pyg_to_dense_batch

from invdesign.core.structure import Structure
from invdesign.evaluators.property.batching import collate, predict_batches
from invdesign.evaluators.property.data import make_graphs
from invdesign.evaluators.property.predictor import TrainConfig, build_network
from invdesign.evaluators.property.segment_ops import (
    scatter_max,
    scatter_mean,
    scatter_sum,
    segment_softmax,
    to_dense_batch,
)
from invdesign.testing import caesium_chloride_cell, rock_salt_cell


def _groups(n: int, groups: int, seed: int) -> torch.Tensor:
    """Sorted group indices with one group left empty (as a graph without bonds would be)."""
    index = torch.randint(0, groups - 1, (n,), generator=torch.Generator().manual_seed(seed))
    return torch.sort(torch.where(index >= 2, index + 1, index)).values


@pytest.mark.parametrize("shape", [(40,), (40, 3), (40, 4, 5)])
def test_scatter_and_softmax_equal_torch_geometric(shape):
    torch.manual_seed(0)
    src = torch.randn(*shape) * 10
    index = _groups(shape[0], 7, 1)
    assert torch.equal(scatter_sum(src, index, 0, 7), scatter(src, index, 0, 7, reduce="sum"))
    assert torch.equal(scatter_mean(src, index, 0, 7), scatter(src, index, 0, 7, reduce="mean"))
    assert torch.equal(scatter_max(src, index, 0, 7), scatter(src, index, 0, 7, reduce="max"))
    assert torch.equal(segment_softmax(src, index, 7), softmax(src, index, num_nodes=7))
    assert torch.equal(scatter_sum(src, index), scatter(src, index, reduce="sum"))


def test_to_dense_batch_equals_torch_geometric():
    x = torch.randn(11, 3)
    batch = torch.tensor([0, 0, 0, 1, 2, 2, 2, 2, 2, 3, 3])
    dense, mask = to_dense_batch(x, batch)
    expected, expected_mask = pyg_to_dense_batch(x, batch)
    assert torch.equal(dense, expected) and torch.equal(mask, expected_mask)


def _structures() -> list[Structure]:
    particle = Structure(np.array([29, 29, 8, 29]), np.array(
        [[0.0, 0.0, 0.0], [2.5, 0.0, 0.0], [1.2, 1.9, 0.3], [0.4, 0.5, 2.4]]), None, "particle")
    return [rock_salt_cell(), particle, caesium_chloride_cell(), rock_salt_cell(4.5, 11, 17)]


def test_collate_gives_the_tensors_of_pyg_loader():
    structures = _structures()
    pyg = next(iter(DataLoader(make_graphs(structures, np.arange(4.0), np.ones((4, 2))),
                               batch_size=4)))
    plain = collate(make_graphs(structures, np.arange(4.0), np.ones((4, 2)), plain=True))
    for key in ("z", "pos", "pe", "edge_index", "edge_shift", "lg_index", "desc", "y", "batch"):
        assert torch.equal(plain[key], pyg[key]), key
    assert plain.num_graphs == pyg.num_graphs


@pytest.mark.parametrize("model", ["crystograph", "cgcnn", "atomset"])
def test_network_predicts_the_same_from_plain_batches(model):
    structures = _structures()
    cfg = TrainConfig(model=model, hidden=8, heads=2, blocks=1, seed=0)
    torch.manual_seed(0)
    net = build_network(cfg).eval()
    with torch.no_grad():
        expected = torch.cat([net(b) for b in DataLoader(make_graphs(structures), batch_size=3)])
        plain = make_graphs(structures, plain=True)
        got = torch.cat([net(b) for b in predict_batches(model, plain, 3)])
    assert torch.equal(got, expected)


def test_predicting_from_a_checkpoint_imports_no_torch_geometric(tmp_path):
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from invdesign.evaluators.property.checkpoint import load_property_checkpoint, "
        "save_property_checkpoint\n"
        "from invdesign.evaluators.property.predictor import Predictor, TrainConfig, "
        "build_network\n"
        "from invdesign.testing import rock_salt_cell\n"
        "cfg = TrainConfig(hidden=8, heads=2, blocks=1)\n"
        f"save_property_checkpoint({str(tmp_path)!r}, Predictor(build_network(cfg), cfg, 0.0, "
        "1.0))\n"
        f"p = load_property_checkpoint({str(tmp_path)!r})\n"
        "assert np.isfinite(p.predict([rock_salt_cell()])).all()\n"
        "print(sorted(m for m in sys.modules if m.startswith('torch_geometric')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
