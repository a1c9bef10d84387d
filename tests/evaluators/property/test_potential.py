"""CHGNet's features for hybridisation: the recipe's single-point formation energy, the crystal
feature and the atom features; models trained with them save, load and predict, and structures
CHGNet refuses get NaN predictions rather than made-up ones (CHGNet ships its weights: runs
offline)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import bulk

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.evaluators.property import reference
from invdesign.evaluators.property.checkpoint import (
    load_property_checkpoint,
    save_property_checkpoint,
)
from invdesign.evaluators.property.data import make_graphs
from invdesign.evaluators.property.descriptors import N_DESCRIPTORS, structure_descriptors
from invdesign.evaluators.property.potential import (
    N_ATOM_POTENTIAL,
    N_POTENTIAL,
    POTENTIAL_NAMES,
    atom_potential_width,
)
from invdesign.evaluators.property.pretrain import transfer_encoder
from invdesign.evaluators.property.reference import CRYSTAL_FEATURES, ChgnetReference
from invdesign.evaluators.property.train import (
    TrainConfig,
    build_network,
    fit,
    model_inputs,
    n_atom_inputs,
    n_descriptor_inputs,
)

TINY = dict(hidden=8, heads=2, blocks=1, epochs=3, batch_size=4, lr=5e-3)


def cells() -> list[Structure]:
    """MgO and NaCl rock-salt cells at a few lattice constants (all CHGNet-safe)."""
    return [
        Structure.from_ase(bulk(formula, "rocksalt", a=a))
        for formula, lattice in (("MgO", 4.21), ("NaCl", 5.64))
        for a in (0.97 * lattice, lattice, 1.03 * lattice)
    ]


def graphs_for(structures, targets, cfg):
    inputs = model_inputs(structures, cfg)
    return make_graphs(structures, targets, inputs.desc, atom_features=inputs.atom_fea)


@pytest.mark.parametrize("model", ["crystograph", "cgcnn"])
def test_input_widths_follow_the_config(model):
    assert N_POTENTIAL == len(POTENTIAL_NAMES) == 1 + CRYSTAL_FEATURES
    plain = TrainConfig(model=model, **TINY)
    assert n_descriptor_inputs(plain) == n_atom_inputs(plain) == 0
    assert build_network(plain).atom_in is None
    both = TrainConfig(model=model, descriptors=True, chgnet_features=True, **TINY)
    assert n_descriptor_inputs(both) == N_DESCRIPTORS + N_POTENTIAL
    assert n_atom_inputs(both) == N_ATOM_POTENTIAL
    net = build_network(both)
    assert net.head[0].in_features == both.hidden + N_DESCRIPTORS + N_POTENTIAL
    assert net.atom_in.linear.in_features == N_ATOM_POTENTIAL


def test_chgnet_inputs_are_the_recipe_energy_and_chgnet_features():
    structures = cells()
    cfg = TrainConfig(descriptors=True, chgnet_features=True)
    inputs = model_inputs(structures, cfg)
    assert inputs.desc.shape == (6, N_DESCRIPTORS + N_POTENTIAL)
    assert inputs.status == ["ok"] * 6 and inputs.usable().all()
    np.testing.assert_allclose(inputs.desc[0, :N_DESCRIPTORS], structure_descriptors(structures[0]))
    energy, crystal = inputs.desc[:, N_DESCRIPTORS], inputs.desc[:, N_DESCRIPTORS + 1 :]
    recipe = ChgnetReference(relax=False).evaluate(structures)
    np.testing.assert_allclose(energy, [r["formation_energy_per_atom"] for r in recipe])
    assert energy[1] < energy[0] and energy[1] < energy[2]  # strained cells sit higher
    assert energy[1] < energy[4] < 0  # MgO more stable than NaCl, both below the elements
    # the crystal feature sees the strain and, more so, the chemistry
    strain = np.linalg.norm(crystal[0] - crystal[1])
    assert 0 < strain < np.linalg.norm(crystal[1] - crystal[4])
    assert [a.shape for a in inputs.atom_fea] == [(2, N_ATOM_POTENTIAL)] * 6
    mg, o = inputs.atom_fea[1]
    assert np.linalg.norm(mg - o) > 0  # one row per atom, in input order
    assert np.linalg.norm(inputs.atom_fea[1][0] - inputs.atom_fea[4][0]) > 0  # Mg vs Na


def test_all_layers_hold_every_message_passing_layer_in_input_order():
    # batch_size 2 splits the six cells (12 atoms) over three CHGNet batches: the features caught
    # per batch and layer must come back to the right cell and atom
    structures = cells()
    one = ChgnetReference(relax=False, features=True, batch_size=2).evaluate(structures)
    every = ChgnetReference(relax=False, features=True, batch_size=2, all_layers=True)
    layers = every.evaluate(structures)
    width = reference.CONV_LAYERS * CRYSTAL_FEATURES
    assert atom_potential_width(True) == width and atom_potential_width(False) == CRYSTAL_FEATURES
    for a, b in zip(one, layers, strict=True):
        assert b["atom_fea"].shape == (2, width)
        # CHGNet's own atom_fea is the third layer's (the magmom head's input)
        np.testing.assert_allclose(b["atom_fea"][:, 128:192], a["atom_fea"], rtol=1e-5, atol=1e-6)
        assert b["formation_energy_per_atom"] == pytest.approx(a["formation_energy_per_atom"])
    first, last = layers[1]["atom_fea"][0, :64], layers[1]["atom_fea"][0, 192:]
    assert np.linalg.norm(first - last) > 0  # distinct layers, not one repeated
    # no hook is left on the shared CHGNet: a plain call afterwards still returns one layer
    assert ChgnetReference(relax=False, features=True).evaluate(structures[:1])[0][
        "atom_fea"
    ].shape == (2, CRYSTAL_FEATURES)
    assert not any(layer._forward_hooks for layer in reference._chgnet().atom_conv_layers)


def test_a_model_on_all_layers_trains_saves_and_predicts(tmp_path):
    structures = cells()
    cfg = TrainConfig(model="atomset", chgnet_features=True, chgnet_all_layers=True, **TINY)
    assert n_atom_inputs(cfg) == reference.CONV_LAYERS * N_ATOM_POTENTIAL
    predictor = fit(graphs_for(structures, np.linspace(-1.0, 0.0, 6), cfg), cfg)
    path = tmp_path / "all_layers"
    save_property_checkpoint(path, predictor)
    loaded = load_property_checkpoint(path)
    assert loaded.cfg.chgnet_all_layers
    np.testing.assert_allclose(
        loaded.predict(structures), predictor.predict(structures), rtol=1e-5, atol=1e-6
    )


def test_atom_features_reach_the_prediction():
    structures = cells()
    cfg = TrainConfig(chgnet_features=True, seed=1, **TINY)
    graphs = graphs_for(structures, np.arange(6.0), cfg)
    predictor = fit(graphs, cfg)
    base = predictor.predict_graphs(graphs)
    changed = [g.clone() for g in graphs]
    ramp = torch.linspace(0.0, 1.0, N_ATOM_POTENTIAL)  # not a uniform shift: LayerNorm drops that
    changed[0].atom_fea = changed[0].atom_fea + ramp
    after = predictor.predict_graphs(changed)
    assert after[0] != pytest.approx(base[0]) and after[1:] == pytest.approx(base[1:])


@pytest.mark.parametrize("model", ["crystograph", "cgcnn"])
def test_model_with_chgnet_features_trains_saves_loads_and_predicts(tmp_path, model):
    structures = cells()
    cfg = TrainConfig(model=model, chgnet_features=True, seed=5, **TINY)
    inputs = model_inputs(structures, cfg)
    targets = inputs.desc[:, 0] + 0.1  # a target the features explain
    predictor = fit(
        make_graphs(structures, targets, inputs.desc, atom_features=inputs.atom_fea), cfg
    )
    assert predictor.desc_mean.shape == (N_POTENTIAL,)
    first = predictor.predict(structures)
    assert first.shape == (6,)
    # The predictions follow the target (MgO cells near -2.9, NaCl near -2.0): Pearson r measured
    # 2026-12-02 at 0.9988 (crystograph) and 0.980 (cgcnn) after 3 epochs; bound 0.9.
    assert np.corrcoef(first, targets)[0, 1] > 0.9
    save_property_checkpoint(tmp_path / "ckpt", predictor)
    loaded = load_property_checkpoint(tmp_path / "ckpt")
    assert loaded.cfg.chgnet_features
    np.testing.assert_allclose(loaded.predict(structures), first, rtol=1e-5, atol=1e-6)


def test_structure_chgnet_refuses_gets_nan_and_training_on_it_is_refused():
    structures = cells()
    close = Structure([29, 29], [[0, 0, 0], [0.5, 0, 0]])  # 0.5 Å pair: CHGNet guard
    cfg = TrainConfig(chgnet_features=True, **TINY)
    inputs = model_inputs([*structures, close], cfg)
    assert inputs.status[-1].startswith("skipped: pair closer than 0.7")
    assert np.isnan(inputs.desc[-1]).all() and np.isnan(inputs.atom_fea[-1]).all()
    assert inputs.usable().tolist() == [True] * 6 + [False]
    predictor = fit(graphs_for(structures, np.arange(6.0), cfg), cfg)
    values = predictor.predict([structures[0], close, structures[1]])
    assert np.isfinite(values[[0, 2]]).all() and np.isnan(values[1])
    bad = make_graphs(
        [*structures, close], np.arange(7.0), inputs.desc, atom_features=inputs.atom_fea
    )
    with pytest.raises(InvdesignError, match="1 training structures have no descriptors"):
        fit(bad, cfg)
    no_atoms = make_graphs(structures, np.arange(6.0), inputs.desc[:6])
    with pytest.raises(InvdesignError, match="needs per-atom features"):
        fit(no_atoms, cfg)
    with pytest.raises(InvdesignError, match=f"carry {N_POTENTIAL} descriptors; the model expects"):
        fit(no_atoms, TrainConfig(descriptors=True))


def test_cdssl_encoder_transfers_into_a_model_with_atom_features():
    with pytest.raises(InvdesignError, match="CDSSL pretraining cannot see CHGNet features"):
        TrainConfig(chgnet_features=True, pretrain_epochs=1)
    cfg = TrainConfig(chgnet_features=True, **TINY)
    plain = build_network(TrainConfig(**TINY))
    target = transfer_encoder(plain, build_network(cfg))
    torch.testing.assert_close(target.embed.weight, plain.embed.weight)


def test_missing_chgnet_is_a_one_line_install_hint(monkeypatch):
    reference._chgnet.cache_clear()
    monkeypatch.setitem(sys.modules, "chgnet.model", None)  # import now raises ImportError
    try:
        with pytest.raises(InvdesignError, match=r"pip install -e '\.\[chgnet\]'"):
            model_inputs(cells()[:1], TrainConfig(chgnet_features=True))
    finally:
        reference._chgnet.cache_clear()


def test_shipped_perov5_checkpoint_predicts_its_training_cells(shared_data):
    """checkpoints/property-perov5 (set+chgnet) rebuilds from its folder and, through CHGNet's
    features, reproduces heat_ref on the first cells of the file it was trained on."""
    from invdesign.evaluators.property.data import read_property_csv

    folder = Path(__file__).resolve().parents[3] / "checkpoints" / "property-perov5"
    predictor = load_property_checkpoint(folder)
    assert predictor.cfg.chgnet_features and predictor.cfg.target == "heat_ref"
    data = read_property_csv(shared_data / "perov5" / "perov5_val.csv", "heat_ref", limit=24)
    error = np.abs(predictor.predict(data.structures) - data.targets)
    spread = np.abs(data.targets - data.targets.mean()).mean()
    assert error.mean() < 0.15 < spread  # its training MAE is 0.026; the mean predictor's 0.5


def test_require_all_names_the_refused_structure():
    from invdesign.evaluators.property.potential import require_all

    require_all(["a", "b"], ["ok", "ok"])
    with pytest.raises(InvdesignError, match="CHGNet refused 1 structures, e.g. b: skipped: pair"):
        require_all(["a", "b"], ["ok", "skipped: pair closer than 0.7 Å (0.50 Å)"])
