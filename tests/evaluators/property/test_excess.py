"""Particle excess-energy model: sparse neighbour list, invariances, statuses, learning, loading."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from ase.build import bulk
from scipy.spatial.transform import Rotation

from invdesign.core.errors import CheckpointError, InvdesignError
from invdesign.core.structure import Structure
from invdesign.evaluators.base import evaluator_class
from invdesign.evaluators.property.excess import (
    KEY,
    WEIGHTS,
    ExcessTrainConfig,
    ParticleExcessEvaluator,
    bulk_input,
    collate,
    fit_excess,
    load_excess_checkpoint,
    particle_input,
    predict_inputs,
    save_excess_checkpoint,
)
from invdesign.evaluators.property.excess_features import (
    N_RELATIVE,
    SHELL_CENTRES,
    atom_features,
    neighbour_pairs,
    pair_radius,
    species_shells,
)


def sphere(symbol: str, a: float, radius: float, kind: str = "fcc") -> Structure:
    """A sphere of `radius` Å cut from a cubic lattice (one element)."""
    atoms = bulk(symbol, kind, a=a, cubic=True).repeat((8, 8, 8))
    pos = atoms.positions - atoms.positions.mean(0)
    keep = np.linalg.norm(pos, axis=1) <= radius
    return Structure(atoms.numbers[keep], pos[keep])


def tiny_set() -> list[tuple]:
    """`tiny_structures` as model inputs (without the particle-relative block)."""
    return [(particle_input(s, 5.5), y, t) for s, y, t in tiny_structures()]


def tiny_structures() -> list[tuple]:
    """Cu and Ni spheres labelled with a surface-fraction-like excess (eV/atom) and per-atom
    targets that average to it (1 eV per missing neighbour / 12)."""
    items = []
    for symbol, a in (("Cu", 3.61), ("Ni", 3.52)):
        for radius in (3.0, 4.5, 6.0, 7.5):
            p = sphere(symbol, a, radius)
            i, _, _ = neighbour_pairs(p.positions, 0.8 * a)
            missing = 12 - np.bincount(i, minlength=p.n_atoms)
            sites = missing / 12.0
            items.append((p, float(sites.mean()), sites))
    return items


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    options = {"hidden": 16, "layers": 2, "cutoff": 5.5, "relative": True, "members": 2}
    data = [(particle_input(s, 5.5, True), y, t) for s, y, t in tiny_structures()]
    net, _ = fit_excess(data, options, ExcessTrainConfig(epochs=3, batch_size=4))
    folder = tmp_path_factory.mktemp("excess") / "ckpt"
    save_excess_checkpoint(folder, net, options, {"elements": [28, 29]})
    return folder


def test_neighbour_list_matches_brute_force():
    rng = np.random.default_rng(0)
    pos = rng.uniform(-6, 6, size=(60, 3))
    i, j, d = neighbour_pairs(pos, 3.5)
    full = np.linalg.norm(pos[:, None] - pos[None], axis=2)
    bi, bj = np.nonzero((full <= 3.5) & ~np.eye(60, dtype=bool))
    assert sorted(zip(i.tolist(), j.tolist(), strict=True)) == sorted(
        zip(bi.tolist(), bj.tolist(), strict=True))
    np.testing.assert_allclose(d, full[i, j])
    assert len(i) > 60  # the test is about a populated list


def test_bulk_input_is_the_environment_deep_inside_a_particle():
    cell = Structure.from_ase(bulk("Cu", "fcc", a=3.61))
    centre = sphere("Cu", 3.61, 12.0)
    k = int(np.argmin(np.linalg.norm(centre.positions, axis=1)))
    inner = atom_features(centre)[k]
    np.testing.assert_allclose(bulk_input(cell).features[0], inner, atol=1e-5)
    surface = atom_features(centre)[int(np.argmax(np.linalg.norm(centre.positions, axis=1)))]
    assert np.abs(surface - inner).max() > 0.1  # the features do see a surface


def test_relative_block_is_zero_deep_inside_and_sees_broken_bonds():
    cell = Structure.from_ase(bulk("Cu", "fcc", a=3.61))
    centre = sphere("Cu", 3.61, 12.0)
    k = int(np.argmin(np.linalg.norm(centre.positions, axis=1)))
    feats = atom_features(centre, relative=True)
    assert feats.shape[1] == atom_features(centre).shape[1] + N_RELATIVE
    block = feats[:, -N_RELATIVE:]
    bulk_block = bulk_input(cell, relative=True).features[0, -N_RELATIVE:]
    # per-atom part (deficits, broken-bond terms): the centre atom is bulk-like, as the crystal
    np.testing.assert_allclose(block[k, :-2], 0.0, atol=1e-4)
    np.testing.assert_allclose(bulk_block, 0.0, atol=1e-4)  # size term 0 for the bulk too
    assert block[k, -2] == pytest.approx(centre.n_atoms ** (-1 / 3))
    surface = int(np.argmax(np.linalg.norm(centre.positions, axis=1)))
    assert block[surface, N_RELATIVE - 4] > 0.1  # a surface atom has broken bonds


def test_ensemble_predicts_the_mean_of_its_members(checkpoint):
    import torch

    net, _ = load_excess_checkpoint(checkpoint)
    p = particle_input(sphere("Cu", 3.61, 6.0), 5.5, True)
    x = (torch.from_numpy(p.features) - net.mean) / net.std
    z = torch.from_numpy(p.species)
    with torch.no_grad():
        parts = [m(x, z) for m in net.members]
        both = net(torch.from_numpy(p.features), z)
    assert not torch.allclose(parts[0], parts[1])  # members trained from different seeds
    torch.testing.assert_close(both, (parts[0] + parts[1]) / 2)


def test_prediction_invariant_to_rotation_translation_and_order(checkpoint):
    p = sphere("Cu", 3.61, 6.0)
    rng = np.random.default_rng(1)
    rot = Rotation.random(random_state=2).as_matrix()
    perm = rng.permutation(p.n_atoms)
    moved = Structure(p.species[perm], p.positions[perm] @ rot.T + [3.0, -7.0, 11.0])
    ev = ParticleExcessEvaluator(checkpoint)
    a, b = ev.evaluate([p, moved])
    assert a["status"] == b["status"] == "ok"
    assert a[KEY] == pytest.approx(b[KEY], abs=1e-5)
    fa = atom_features(p)
    fb = atom_features(moved)
    np.testing.assert_allclose(fa[perm], fb, atol=1e-4)


def test_unit_cell_and_unknown_element_get_no_prediction(checkpoint):
    ev = evaluator_class("particle_excess")(checkpoint=checkpoint)
    cell = Structure.from_ase(bulk("Cu", "fcc", a=3.61))
    gold = sphere("Au", 4.08, 5.0)
    copper = sphere("Cu", 3.61, 5.0)
    records = ev.evaluate([cell, gold, copper])
    assert records[0]["status"] == "no prediction: not a discrete particle"
    assert records[1]["status"].startswith("no prediction: element(s) Au")
    assert math.isnan(records[0][KEY]) and math.isnan(records[1][KEY])
    assert records[2]["status"] == "ok" and math.isfinite(records[2][KEY])


def test_tiny_training_lowers_the_loss():
    data = tiny_set()
    _, losses = fit_excess(data, {"hidden": 16, "layers": 2},
                           ExcessTrainConfig(epochs=60, batch_size=4, lr=5e-3))
    assert losses[-1] < 0.3 * losses[0]


def test_missing_checkpoint_names_the_folder(tmp_path):
    folder = tmp_path / "nowhere"
    with pytest.raises(InvdesignError, match="nowhere"):
        ParticleExcessEvaluator(folder)


def test_loading_uses_safetensors(checkpoint, tmp_path):
    from safetensors import safe_open

    with safe_open(str(checkpoint / WEIGHTS), framework="pt") as f:
        assert f.metadata()["format"].startswith("invdesign-particle-excess")
        assert "members.1.first.weight" in f.keys()  # noqa: SIM118 - safe_open has keys()
    net, config = load_excess_checkpoint(checkpoint)
    assert config["elements"] == [28, 29] and net.members[0].first.out_features == 16
    assert net.relative and len(net.members) == 2
    # a pickle under the safetensors name is refused, never unpickled
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((checkpoint / "config.json").read_text())
    import torch

    torch.save({"x": torch.zeros(1)}, bad / WEIGHTS)
    with pytest.raises(CheckpointError, match=WEIGHTS):
        load_excess_checkpoint(bad)


def test_edited_config_is_refused_before_building(checkpoint, tmp_path):
    import shutil

    folder = tmp_path / "edited"
    shutil.copytree(checkpoint, folder)
    config = json.loads((folder / "config.json").read_text())
    config["net"]["hidden"] = 10**6
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="config.json"):
        load_excess_checkpoint(folder)


def rock_salt_sphere(radius: float) -> Structure:
    """A NaCl sphere of `radius` Å (two elements, for the neighbour-species shells)."""
    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat((8, 8, 8))
    pos = atoms.positions - atoms.positions[np.argmin(np.linalg.norm(
        atoms.positions - atoms.positions.mean(0), axis=1))]
    keep = np.linalg.norm(pos, axis=1) <= radius
    return Structure(atoms.numbers[keep], pos[keep])


def test_species_shells_split_the_counts_by_neighbour_element():
    p = rock_salt_sphere(9.0)
    shells, present = species_shells(p)
    assert present.tolist() == [11, 17] and shells.shape == (p.n_atoms, 8, 2)
    # the first shell of rock salt is the other element: the nearest-neighbour channel of the
    # most central Na atom counts Cl only
    dist = np.where(p.species == 11, np.linalg.norm(p.positions, axis=1), np.inf)
    centre = int(np.argmin(dist))
    assert dist[centre] < 3.0
    near = int(np.argmin(np.abs(SHELL_CENTRES - 2.82 / (pair_radius(np.array([11]))[0]
                                                       + pair_radius(np.array([17]))[0]))))
    assert shells[centre, near, 1] > 5 * shells[centre, near, 0]
    # the bulk cell's shells are those deep inside the particle
    cell = Structure.from_ase(bulk("NaCl", "rocksalt", a=5.64))
    inside = bulk_input(cell, species=True)
    np.testing.assert_allclose(inside.shells[0], shells[centre], atol=1e-5)
    np.testing.assert_array_equal(inside.shell_species, present)


def test_species_network_trains_saves_and_is_invariant(tmp_path):
    options = {"hidden": 16, "layers": 2, "cutoff": 5.5, "members": 2, "species": 4}
    data = [(particle_input(s, 5.5, species=True), y, t) for s, y, t in tiny_structures()]
    salt = rock_salt_sphere(7.0)
    data.append((particle_input(salt, 5.5, species=True), 0.5, None))
    net, losses = fit_excess(data, options, ExcessTrainConfig(epochs=40, batch_size=4, lr=5e-3))
    assert losses[-1] < 0.5 * losses[0]
    folder = save_excess_checkpoint(tmp_path / "ckpt", net, options, {"elements": [11, 17, 28, 29]})
    ev = ParticleExcessEvaluator(folder)
    assert ev.net.species == 4
    rot = Rotation.random(random_state=3).as_matrix()
    perm = np.random.default_rng(4).permutation(salt.n_atoms)
    moved = Structure(salt.species[perm], salt.positions[perm] @ rot.T + 5.0)
    a, b = ev.evaluate([salt, moved])
    assert a["status"] == b["status"] == "ok"
    assert a[KEY] == pytest.approx(b[KEY], abs=1e-5)
    # a batch of inputs with different element counts gives each input's own prediction
    single = predict_inputs(ev.net, [data[0][0]])[0]
    feats, z, batch, shells, shell_z = collate([data[0][0], data[-1][0]])
    import torch

    with torch.no_grad():
        c = ev.net(feats, z, shells, shell_z)
    assert float(c[batch == 0].mean()) == pytest.approx(single, abs=1e-5)
