"""Pieces of `invdesign sample`: size from G(r), metallic packings, atomic output folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.crystals.packings import lattice_sphere, packing_candidates
from invdesign.physics.calculator import Instrument, MeasuredGridCalculator
from invdesign.pipeline.outputs import OutputFolder
from invdesign.pipeline.result import is_valid, nn_distance
from invdesign.pipeline.sizing import estimate_size, first_peak


def test_first_peak_finds_a_gaussian_peak_between_grid_points() -> None:
    r = np.arange(0.0, 10.0, 0.01)
    g = np.exp(-((r - 2.5037) ** 2) / (2 * 0.05**2)) + 0.3 * np.exp(-((r - 4.0) ** 2) / 0.02)
    assert first_peak(r, g) == pytest.approx(2.5037, abs=1e-3)


def test_size_of_a_simulated_particle_is_its_extent() -> None:
    atoms = lattice_sphere("fcc", 29, 2.556, 16.0)
    particle = Structure(atoms.numbers, atoms.positions)
    extent = 2 * np.linalg.norm(particle.positions - particle.positions.mean(0), axis=1).max()
    r = np.arange(0.01, 30.0, 0.01)
    calc = MeasuredGridCalculator(Instrument(qmax=25.0, qdamp=0.02), r, dtype=torch.float64)
    g = calc([particle])[0].numpy()
    size = estimate_size(r, g)
    assert not size.bulk
    assert abs(size.diameter - extent) <= 3.0
    assert size.nn_distance == pytest.approx(2.556, rel=0.01)


def test_signal_that_does_not_die_out_is_bulk() -> None:
    r = np.arange(0.01, 20.0, 0.01)
    g = np.sin(2 * np.pi * r / 2.5) * np.exp(-0.002 * r**2) * 5  # still strong at 20 Å
    size = estimate_size(r, g, bulk_diameter=33.0)
    assert size.bulk and size.diameter == 33.0


def test_packings_have_the_requested_nn_distance_and_are_distinct() -> None:
    cands = packing_candidates({78: 1.0}, nn=2.775, diameter=14.0, n=8)
    assert len(cands) == 8
    keys = {(c.info["shape"], c.n_atoms, round(c.info["diameter"], 2)) for c in cands}
    assert len(keys) == 8
    for c in cands:
        assert np.allclose(c.positions.mean(0), 0.0, atol=1e-9)
        assert c.min_distance() == pytest.approx(2.775, rel=0.001)
        assert set(c.species.tolist()) == {78}
    assert cands[0].info["shape"] == "fcc"  # Pt's own packing comes first


def test_alloy_packing_follows_the_composition() -> None:
    cand = packing_candidates({78: 0.5, 28: 0.5}, nn=2.7, diameter=12.0, n=1, seed=3)[0]
    counts = np.bincount(cand.species, minlength=79)
    assert abs(int(counts[78]) - int(counts[28])) <= 1


def test_alloy_packing_keeps_every_element_of_the_composition() -> None:
    """A 2 % minority on a 13-atom icosahedron rounds to 0 atoms: it still gets one (the most
    abundant element gives it up)."""
    comp = {78: 0.96, 28: 0.02, 29: 0.02}
    for cand in packing_candidates(comp, nn=2.7, diameter=7.0, n=6, seed=0):
        counts = np.bincount(cand.species, minlength=79)
        assert counts[28] == 1 and counts[29] == 1, cand.info["shape"]
        assert counts[78] == cand.n_atoms - 2


def test_nn_distance_and_validity_of_hand_made_structures() -> None:
    square = Structure([29] * 4, [[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0], [2.5, 2.5, 0]])
    assert nn_distance(square) == pytest.approx(2.5)
    assert is_valid(square)
    assert not is_valid(Structure([29, 29], [[0, 0, 0], [0.5, 0, 0]]))


def test_output_folder_is_atomic(tmp_path) -> None:
    out = tmp_path / "run"
    with OutputFolder(out) as folder:
        folder._write_text("a.txt", "new")
        assert not out.exists()  # nothing visible before commit
        folder.commit()
    assert (out / "a.txt").read_text() == "new"
    with pytest.raises(InvdesignError, match="--force"):
        OutputFolder(out)
    with pytest.raises(RuntimeError), OutputFolder(out, force=True) as folder:
        folder._write_text("b.txt", "half")
        raise RuntimeError("boom")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temporary folder left


def test_output_folder_never_replaces_a_folder_holding_the_input(tmp_path) -> None:
    data = tmp_path / "data.gr"
    data.write_text("1 2\n")
    with pytest.raises(InvdesignError, match=r"--out holds the input .*data\.gr; choose another"):
        OutputFolder(tmp_path, force=True, protect=[data])
    assert data.read_text() == "1 2\n"


def test_only_sane_unit_cells_are_cut() -> None:
    from invdesign.crystals.cuts import cut_cells, sane_cell
    from invdesign.testing import rock_salt_cell

    good, collapsed = rock_salt_cell(4.2), rock_salt_cell(1.0)
    assert sane_cell(good) and not sane_cell(collapsed)
    particles = list(cut_cells([collapsed, good], diameter=9.0))
    assert len(particles) == 1
    p = particles[0]
    assert p.kind == "particle" and set(p.species.tolist()) == {12, 8}
    assert p.info["source"] == "unit_cell"
    assert 2 * np.linalg.norm(p.positions, axis=1).max() <= 9.0 + 2 * 2.1 + 1e-6


def test_geometry_of_a_large_particle_matches_the_distance_matrix() -> None:
    from invdesign.core import elements
    from invdesign.pipeline.result import MIN_DISTANCE_FRACTION, geometry

    rng = np.random.default_rng(0)
    atoms = lattice_sphere("fcc", 28, 2.49, 14.0)
    pos = atoms.positions + rng.normal(0.0, 0.05, atoms.positions.shape)
    for clash in (False, True):
        if clash:
            pos[1] = pos[0] + [0.0, 0.0, 1.2]  # closer than 0.7 x (1.35 + 1.35) Å
        particle = Structure(atoms.numbers, pos)
        d = particle.distance_matrix()
        np.fill_diagonal(d, np.inf)
        limit = MIN_DISTANCE_FRACTION * 2 * float(elements.atomic_radius(28))
        shape = geometry(particle)
        assert shape["nn_distance"] == pytest.approx(float(np.median(d.min(axis=1))), rel=1e-12)
        assert shape["min_distance"] == pytest.approx(float(d.min()), rel=1e-12)
        assert shape["valid"] is bool(d.min() >= limit) is (not clash)
        assert nn_distance(particle) == shape["nn_distance"]
        assert is_valid(particle) is shape["valid"]
