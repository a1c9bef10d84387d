"""A train / save / load / predict cycle on a tiny CSV written here, and CSV input errors."""

from __future__ import annotations

import numpy as np
import pytest

from invdesign.core.errors import CheckpointError, DataFormatError, InvdesignError
from invdesign.core.structure import Structure
from invdesign.evaluators.base import evaluator_class
from invdesign.evaluators.property.checkpoint import (
    load_property_checkpoint,
    save_property_checkpoint,
)
from invdesign.evaluators.property.data import (
    PropertyData,
    make_graphs,
    read_property_csv,
    write_property_csv,
)
from invdesign.evaluators.property.descriptors import N_DESCRIPTORS, structure_descriptors
from invdesign.evaluators.property.train import TrainConfig, fit

TINY = dict(hidden=8, heads=2, blocks=1, epochs=3, batch_size=4, lr=5e-3)


def tiny_data(n: int = 8) -> PropertyData:
    """Rock-salt cells of two metals at several lattice constants; target a (Å) + 0.5 [Mg]."""
    structures, targets = [], []
    frac = [[0, 0, 0], [0.5, 0.5, 0.5]]
    for i in range(n):
        a, metal = 3.0 + 0.1 * i, (12, 29)[i % 2]
        cell = np.array([[0, a, a], [a, 0, a], [a, a, 0]]) / 2 * 2**0.5 * 2**0.5
        structures.append(Structure.from_fractional([metal, 8], frac, cell))
        targets.append(a + 0.5 * (metal == 12))
    ids = [f"mp-{i}" for i in range(n)]
    return PropertyData(structures, np.array(targets), ids, "formation_energy_per_atom")


def rock_salt_descriptors(cell: Structure) -> list[float]:
    """The descriptors of a `tiny_data` rock-salt cell (fcc primitive vectors of length a sqrt 2,
    metal-O distance a), by hand: Niggli cell a sqrt 2 x3 at 60 deg; 2 a^3 per 2 atoms; Slater
    radii (Mg 1.50, Cu 1.35, O 0.60 Å); every bond a (Voronoi cube: 6 equal faces); 12 nearest
    = 6 at a + 6 at a sqrt 2; two one-atom Wyckoff orbits: 1 bit per atom; cubic; periodic."""
    a = float(np.linalg.norm(cell.cell[0])) / 2**0.5
    metal = {12: 1.50, 29: 1.35}[int(max(cell.species))]
    packing = 4 / 3 * np.pi * (metal**3 + 0.60**3) / (2 * a**3)
    nn12 = [a * (1 + 2**0.5) / 2, a * (2**0.5 - 1) / 2]
    return [a * 2**0.5] * 3 + [60.0] * 3 + [a**3, packing, a, 0.0, a, a, a, *nn12, 6.0, 0.0,
                                             1.0, 2.0, 0, 0, 0, 0, 0, 0, 1, 1]


def test_csv_roundtrip_in_mp20_format(tmp_path):
    data = tiny_data(4)
    particle = Structure([29, 29, 29], [[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0]])
    data.structures.append(particle)
    data.targets = np.append(data.targets, 0.1)
    data.ids.append("p-1")
    path = tmp_path / "tiny.csv"
    write_property_csv(path, data)
    header = path.read_text().splitlines()[0]
    assert header.startswith("material_id,formation_energy_per_atom,cif")
    back = read_property_csv(path)
    assert back.ids == data.ids
    np.testing.assert_allclose(back.targets, data.targets, atol=1e-6)
    assert [s.kind for s in back.structures] == ["unit_cell"] * 4 + ["particle"]
    np.testing.assert_allclose(
        back.structures[0].cell_parameters(), data.structures[0].cell_parameters(), atol=1e-4
    )
    np.testing.assert_allclose(
        back.structures[4].distance_matrix(), particle.distance_matrix(), atol=1e-4
    )


def test_train_save_load_predict_cycle(tmp_path):
    data = tiny_data(8)
    path = tmp_path / "tiny.csv"
    write_property_csv(path, data)
    data = read_property_csv(path)
    desc = np.stack([structure_descriptors(s) for s in data.structures])
    assert desc.shape == (8, N_DESCRIPTORS)
    np.testing.assert_allclose(desc, [rock_salt_descriptors(s) for s in data.structures],
                               rtol=1e-6, atol=1e-9)
    graphs = make_graphs(data.structures, data.targets, desc)
    cfg = TrainConfig(descriptors=True, pretrain_epochs=1, seed=3, **TINY)
    predictor = fit(graphs, cfg)
    first = predictor.predict(data.structures)
    assert first.shape == (8,) and np.all(np.isfinite(first))
    again = fit(graphs, cfg).predict(data.structures)
    np.testing.assert_allclose(again, first, rtol=1e-5)  # seeded
    save_property_checkpoint(tmp_path / "ckpt", predictor)
    loaded = load_property_checkpoint(tmp_path / "ckpt")
    np.testing.assert_allclose(loaded.predict(data.structures), first, rtol=1e-5, atol=1e-6)
    records = evaluator_class("formation_energy")(tmp_path / "ckpt").evaluate(data.structures[:2])
    np.testing.assert_allclose(
        [r["formation_energy_per_atom"] for r in records], first[:2], rtol=1e-5, atol=1e-6
    )


def test_cgcnn_baseline_trains_in_the_same_harness():
    data = tiny_data(8)
    predictor = fit(make_graphs(data.structures, data.targets), TrainConfig(model="cgcnn", **TINY))
    # After 3 epochs the predictions follow the targets: measured 2026-12-02 Pearson r 0.858,
    # Spearman 0.94 (the descriptor hybrid of the cycle test measured 0.06: not learnt in 3 epochs).
    assert np.corrcoef(predictor.predict(data.structures), data.targets)[0, 1] > 0.7


def test_csv_without_target_column_names_the_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("material_id,cif\nmp-1,xx\n")
    with pytest.raises(DataFormatError, match="formation_energy_per_atom"):
        read_property_csv(path)


def test_csv_with_broken_cif_names_the_row(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("material_id,formation_energy_per_atom,cif\nmp-1,0.1,not a cif\n")
    with pytest.raises(DataFormatError, match="row 2"):
        read_property_csv(path)


def test_missing_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(CheckpointError):
        load_property_checkpoint(tmp_path)
    with pytest.raises(InvdesignError, match="unknown property model"):
        TrainConfig(model="alignn")


def test_element_feature_table_groups_similar_elements():
    from invdesign.evaluators.property.atoms import N_ELEMENT_FEATURES, element_feature_table

    table = element_feature_table()
    assert table.shape == (101, N_ELEMENT_FEATURES)
    assert not table[0].any()  # no element 0
    # one-hot group, period and block: 3 ones; each known binned property: one more
    assert table[8].sum() == 3 + 5  # oxygen has all five properties
    na, k, o, s = table[11], table[19], table[8], table[16]
    assert na[0] == k[0] == 1.0 and o[15] == s[15] == 1.0  # groups 1 and 16
    assert (na * k).sum() > (na * o).sum()  # alkali metals share more than Na and O


def test_checkpoint_from_before_element_features_loads_without_them(tmp_path):
    import json

    data = tiny_data(6)
    cfg = TrainConfig(element_features=False, **TINY)
    predictor = fit(make_graphs(data.structures, data.targets), cfg)
    save_property_checkpoint(tmp_path / "old", predictor)
    config_path = tmp_path / "old" / "config.json"
    config = json.loads(config_path.read_text())
    del config["train_config"]["element_features"]  # as written before the option existed
    config_path.write_text(json.dumps(config))
    loaded = load_property_checkpoint(tmp_path / "old")
    assert loaded.cfg.element_features is False
    np.testing.assert_allclose(
        loaded.predict(data.structures), predictor.predict(data.structures), rtol=1e-5, atol=1e-6
    )
    assert TrainConfig().element_features  # new models use them by default
