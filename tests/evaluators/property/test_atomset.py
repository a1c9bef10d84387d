"""The `atomset` property model (a set transformer over a cell's atoms, used with CHGNet's atom
features for perov5) and ensembles of independently trained networks: the model learns, its
prediction of a cell does not depend on what it is batched with, an ensemble predicts the mean of
its members and survives a checkpoint round trip with CHGNet's features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk
from torch_geometric.loader import DataLoader

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.evaluators.property.checkpoint import (
    load_property_checkpoint,
    save_property_checkpoint,
)
from invdesign.evaluators.property.data import make_graphs
from invdesign.evaluators.property.model import Ensemble, Residual
from invdesign.evaluators.property.train import (
    PackedGraphs,
    TrainConfig,
    build_network,
    fit,
    fit_baseline,
    model_inputs,
    parse_depths,
)
from invdesign.testing import rock_salt_learning_set


def test_atomset_training_error_falls_well_below_the_mean_predictor():
    structures, targets = rock_salt_learning_set()
    baseline = float(np.abs(targets - targets.mean()).mean())
    cfg = TrainConfig(model="atomset", hidden=16, heads=2, blocks=1, epochs=60, batch_size=8,
                      lr=1e-2, weight_decay=0.0, seed=0)
    predictor = fit(make_graphs(structures, targets, k=cfg.k, line_k=cfg.line_k), cfg)
    mae = float(np.abs(predictor.predict(structures) - targets).mean())
    # the lattice constant reaches the model only through its neighbour-distance histogram
    assert mae < 0.25 * baseline, (mae, baseline)


def test_atomset_prediction_does_not_depend_on_the_batch():
    """Padding of the smaller cells to the largest one of a batch must not leak into them."""
    small, targets = rock_salt_learning_set()
    big = Structure.from_ase(bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 1, 1))  # 8 atoms
    cfg = TrainConfig(model="atomset", hidden=16, heads=2, blocks=2, dropout=0.1, seed=1)
    graphs = make_graphs([*small, big], [*targets, 0.0], k=cfg.k, line_k=cfg.line_k)
    net = build_network(cfg).eval()
    alone = [float(net(next(iter(DataLoader([g], batch_size=1)))).detach()) for g in graphs]
    together = net(next(iter(DataLoader(graphs, batch_size=len(graphs))))).detach().numpy()
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-5)
    # the packed batches training uses give what PyG's collation gives, in the order asked
    packed = PackedGraphs(graphs)
    order = torch.tensor([8, 0, 3, 5])
    np.testing.assert_allclose(
        net(packed.batch(order)).detach().numpy(), np.array(alone)[order], rtol=1e-5, atol=1e-5
    )
    seen = torch.cat([b.y for b in packed.batches(4, torch.Generator().manual_seed(0), True)])
    assert len(seen) == 8 and len(set(seen.tolist())) == 8  # drop_last: two full batches


def test_ensemble_is_the_mean_of_its_members():
    structures, targets = rock_salt_learning_set()
    cfg = TrainConfig(model="atomset", hidden=8, heads=2, blocks=1, epochs=3, batch_size=4,
                      ensemble=3, seed=5)
    graphs = make_graphs(structures, targets, k=cfg.k, line_k=cfg.line_k)
    predictor = fit(graphs, cfg)
    assert isinstance(predictor.net, Ensemble) and len(predictor.net.members) == 3
    batch = next(iter(DataLoader(graphs, batch_size=len(graphs))))
    members = np.stack([m.eval()(batch).detach().numpy() for m in predictor.net.members])
    assert np.ptp(members, axis=0).max() > 1e-4  # different seeds: different networks
    expected = members.mean(0) * predictor.y_std + predictor.y_mean
    np.testing.assert_allclose(predictor.predict_graphs(graphs), expected, rtol=1e-5, atol=1e-6)
    # member 0 is the network a single fit with the same seed trains
    single = fit(graphs, TrainConfig(**{**cfg.to_dict(), "ensemble": 1}))
    np.testing.assert_allclose(
        single.predict_graphs(graphs), members[0] * predictor.y_std + predictor.y_mean,
        rtol=1e-5, atol=1e-6,
    )


def test_an_ensemble_of_mixed_depths_trains_each_member_at_its_depth_and_round_trips(tmp_path):
    structures, targets = rock_salt_learning_set()
    cfg = TrainConfig(model="atomset", hidden=8, heads=2, blocks=1, epochs=2, batch_size=4,
                      ensemble=3, ensemble_blocks=[1, 2, 1], baseline=True, seed=3)
    assert cfg.ensemble_blocks == (1, 2, 1)  # JSON gives a list; stored as a tuple
    predictor = fit(make_graphs(structures, targets, k=cfg.k, line_k=cfg.line_k), cfg)
    depths = [len(m.net.layers) for m in predictor.net.members]  # Residual(AtomSet).net
    assert depths == [1, 2, 1]
    # member 1 is the network a single fit of depth 2 with its seed trains
    single = fit(make_graphs(structures, targets, k=cfg.k, line_k=cfg.line_k),
                 TrainConfig(**{**cfg.to_dict(), "ensemble": 1, "ensemble_blocks": (),
                                "blocks": 2, "seed": 4}))
    member = predictor.net.members[1]
    for name, value in single.net.state_dict().items():
        torch.testing.assert_close(member.state_dict()[name], value)
    save_property_checkpoint(tmp_path / "mixed", predictor)
    loaded = load_property_checkpoint(tmp_path / "mixed")
    assert loaded.cfg.ensemble_blocks == (1, 2, 1)
    np.testing.assert_allclose(
        loaded.predict(structures), predictor.predict(structures), rtol=1e-5, atol=1e-6
    )


def test_ensemble_depths_parse_from_the_command_line():
    assert parse_depths("2,3,2") == (2, 3, 2)
    cfg = TrainConfig(ensemble=3, ensemble_blocks=parse_depths("2,3,2"))
    assert cfg.ensemble_blocks == (2, 3, 2)
    with pytest.raises(ValueError):
        parse_depths("2,x")


def test_atomset_ensemble_with_chgnet_features_round_trips(tmp_path):
    pytest.importorskip("chgnet")
    structures = [
        Structure.from_ase(bulk(formula, "rocksalt", a=a))
        for formula, lattice in (("MgO", 4.21), ("NaCl", 5.64))
        for a in (0.97 * lattice, lattice, 1.03 * lattice)
    ]
    targets = np.linspace(-1.0, 0.5, len(structures))
    cfg = TrainConfig(model="atomset", chgnet_features=True, hidden=8, heads=2, blocks=1,
                      epochs=2, batch_size=4, ensemble=2, dropout=0.1, seed=0)
    inputs = model_inputs(structures, cfg)
    graphs = make_graphs(structures, targets, inputs.desc, atom_features=inputs.atom_fea)
    predictor = fit(graphs, cfg)
    first = predictor.predict(structures)
    assert np.all(np.isfinite(first))
    save_property_checkpoint(tmp_path / "ckpt", predictor)
    loaded = load_property_checkpoint(tmp_path / "ckpt")
    assert loaded.cfg.ensemble == 2 and loaded.cfg.model == "atomset"
    np.testing.assert_allclose(loaded.predict(structures), first, rtol=1e-5, atol=1e-6)


def test_linear_baseline_is_a_ridge_fit_to_the_composition_and_round_trips(tmp_path):
    """cfg.baseline: the network corrects a ridge fit to the composition fractions (here the
    mean of each metal's cells, as the lattice constants are spread alike), fitted before
    training and stored in the checkpoint with the weights."""
    structures, targets = rock_salt_learning_set()
    cfg = TrainConfig(model="atomset", hidden=8, heads=2, blocks=1, epochs=2, batch_size=4,
                      ensemble=2, baseline=True, seed=3)
    graphs = make_graphs(structures, targets, k=cfg.k, line_k=cfg.line_k)
    predictor = fit(graphs, cfg)
    batch = next(iter(DataLoader(graphs, batch_size=len(graphs))))
    for member in predictor.net.members:
        assert isinstance(member, Residual)
        base = member.baseline(batch).numpy() * predictor.y_std + predictor.y_mean
        mg = np.arange(len(structures)) % 2 == 0  # Mg, Cu, Mg, ... (rock_salt_learning_set)
        expected = np.where(mg, targets[mg].mean(), targets[~mg].mean())
        np.testing.assert_allclose(base, expected, atol=5e-3)  # ridge: slightly shrunk
        member.eval()
        np.testing.assert_allclose(
            member(batch).detach(), (member.baseline(batch) + member.net(batch)).detach()
        )
    save_property_checkpoint(tmp_path / "ckpt", predictor)
    loaded = load_property_checkpoint(tmp_path / "ckpt")
    assert loaded.cfg.baseline
    np.testing.assert_allclose(
        loaded.predict(structures), predictor.predict(structures), rtol=1e-5, atol=1e-6
    )


def test_linear_baseline_reads_chgnet_energy_column_only():
    """With CHGNet's block, the baseline's one graph-level input is its energy (column 0)."""
    structures, targets = rock_salt_learning_set()
    energy = targets + 0.1 * np.sin(np.arange(len(targets)))  # an informative "energy"
    desc = np.concatenate([energy[:, None], np.random.default_rng(0).normal(size=(8, 64))], 1)
    atoms = [np.zeros((s.n_atoms, 64)) for s in structures]
    cfg = TrainConfig(model="atomset", chgnet_features=True, baseline=True)
    graphs = make_graphs(structures, targets, desc, atom_features=atoms)
    y = (targets - targets.mean()) / targets.std()
    baseline = fit_baseline(graphs, y, cfg, desc.mean(0), desc.std(0))
    weights = baseline.desc_weight.numpy()
    assert weights[0] > 0.1 and np.all(weights[1:] == 0)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"ensemble": 0}, "ensemble"), ({"dropout": 1.0}, "dropout"),
     ({"model": "atomset", "pretrain_epochs": 2}, "CDSSL"),
     ({"baseline": True, "pretrain_epochs": 2}, "baseline"),
     ({"ensemble": 3, "ensemble_blocks": (1, 2)}, "one depth"),
     ({"ensemble": 2, "ensemble_blocks": (1, 0)}, "one depth")],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(InvdesignError, match=message):
        TrainConfig(**options)
