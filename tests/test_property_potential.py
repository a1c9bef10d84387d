"""The CHGNet descriptor for hybridisation: its column is the recipe's single-point formation
energy, models trained with it save, load and predict, and structures CHGNet refuses get NaN
predictions rather than made-up ones (CHGNet ships its weights: runs offline)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from ase.build import bulk
from invdesign.evaluators.property import reference
from invdesign.evaluators.property.checkpoint import (
    load_property_checkpoint,
    save_property_checkpoint,
)
from invdesign.evaluators.property.data import make_graphs
from invdesign.evaluators.property.descriptors import N_DESCRIPTORS, structure_descriptors
from invdesign.evaluators.property.reference import ChgnetReference
from invdesign.evaluators.property.train import (
    TrainConfig,
    build_network,
    descriptor_inputs,
    fit,
    n_descriptor_inputs,
)

from invdesign.errors import InvdesignError
from invdesign.structure import Structure

TINY = dict(hidden=8, heads=2, blocks=1, epochs=3, batch_size=4, lr=5e-3)


def cells() -> list[Structure]:
    """MgO and NaCl rock-salt cells at a few lattice constants (all CHGNet-safe)."""
    return [
        Structure.from_ase(bulk(formula, "rocksalt", a=a))
        for formula, lattice in (("MgO", 4.21), ("NaCl", 5.64))
        for a in (0.97 * lattice, lattice, 1.03 * lattice)
    ]


def test_descriptor_widths_follow_the_config():
    assert n_descriptor_inputs(TrainConfig()) == 0
    assert n_descriptor_inputs(TrainConfig(chgnet_descriptor=True)) == 1
    both = TrainConfig(descriptors=True, chgnet_descriptor=True, **TINY)
    assert n_descriptor_inputs(both) == N_DESCRIPTORS + 1
    head = build_network(both).head[0]
    assert head.in_features == both.hidden + N_DESCRIPTORS + 1


def test_chgnet_column_is_the_recipe_single_point_energy_after_the_structure_block():
    structures = cells()
    cfg = TrainConfig(descriptors=True, chgnet_descriptor=True)
    desc, status = descriptor_inputs(structures, cfg)
    assert desc.shape == (6, N_DESCRIPTORS + 1) and status == ["ok"] * 6
    np.testing.assert_allclose(desc[0, :N_DESCRIPTORS], structure_descriptors(structures[0]))
    recipe = ChgnetReference(relax=False).evaluate(structures)
    np.testing.assert_allclose(desc[:, -1], [r["formation_energy_per_atom"] for r in recipe])
    assert desc[1, -1] < desc[0, -1] and desc[1, -1] < desc[2, -1]  # strained cells sit higher
    assert desc[1, -1] < desc[4, -1] < 0  # MgO more stable than NaCl, both below the elements


def test_model_with_chgnet_descriptor_trains_saves_loads_and_predicts(tmp_path):
    structures = cells()
    cfg = TrainConfig(chgnet_descriptor=True, seed=5, **TINY)
    desc, _ = descriptor_inputs(structures, cfg)
    targets = desc[:, 0] + 0.1  # a target the descriptor explains
    predictor = fit(make_graphs(structures, targets, desc), cfg)
    assert predictor.desc_mean.shape == (1,)
    first = predictor.predict(structures)
    assert first.shape == (6,) and np.all(np.isfinite(first))
    save_property_checkpoint(tmp_path / "ckpt", predictor)
    loaded = load_property_checkpoint(tmp_path / "ckpt")
    assert loaded.cfg.chgnet_descriptor
    np.testing.assert_allclose(loaded.predict(structures), first, rtol=1e-5, atol=1e-6)


def test_structure_chgnet_refuses_gets_nan_and_training_on_it_is_refused():
    structures = cells()
    close = Structure([29, 29], [[0, 0, 0], [0.5, 0, 0]])  # 0.5 Å pair: CHGNet guard
    cfg = TrainConfig(chgnet_descriptor=True, **TINY)
    desc, status = descriptor_inputs([*structures, close], cfg)
    assert np.isnan(desc[-1, 0]) and status[-1].startswith("skipped: pair closer than 0.7")
    predictor = fit(make_graphs(structures, np.arange(6.0), desc[:6]), cfg)
    values = predictor.predict([structures[0], close, structures[1]])
    assert np.isfinite(values[[0, 2]]).all() and np.isnan(values[1])
    with pytest.raises(InvdesignError, match="1 training structures have no descriptors"):
        fit(make_graphs([*structures, close], np.arange(7.0), desc), cfg)
    with pytest.raises(InvdesignError, match="carry 1 descriptors; the model expects"):
        fit(make_graphs(structures, np.arange(6.0), desc[:6]), TrainConfig(descriptors=True))


def test_missing_chgnet_is_a_one_line_install_hint(monkeypatch):
    reference._chgnet.cache_clear()
    monkeypatch.setitem(sys.modules, "chgnet.model", None)  # import now raises ImportError
    try:
        with pytest.raises(InvdesignError, match=r"pip install -e '\.\[chgnet\]'"):
            descriptor_inputs(cells()[:1], TrainConfig(chgnet_descriptor=True))
    finally:
        reference._chgnet.cache_clear()
