"""`invdesign screen`'s two numbers (issue 25): the formation energy of each file's material (a
cut particle's source cell beside it, a packing's bulk lattice) and a particle's excess energy."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.cluster import Icosahedron
from ase.io import write

from invdesign.cli.main import main
from invdesign.core.structure import Structure
from invdesign.crystals.packings import packing_cell
from invdesign.evaluators.property.checkpoint import save_property_checkpoint
from invdesign.evaluators.property.data import make_graphs
from invdesign.evaluators.property.evaluator import FormationEnergyEvaluator
from invdesign.evaluators.property.materials import (
    BASIS_CELL,
    BASIS_ESTIMATE,
    BASIS_PARTICLE,
    BASIS_SOURCE,
    EXCESS_MAX_ATOMS,
    MaterialEnergies,
    cell_key,
    material_cell,
    particle_core,
)
from invdesign.evaluators.property.screen import COLUMNS
from invdesign.evaluators.property.train import TrainConfig, fit


@pytest.fixture
def property_checkpoint(tmp_path):
    cells = [Structure.from_ase(bulk(el, "fcc", a=a + 0.1 * i))
             for el, a in (("Cu", 3.4), ("Pt", 3.8)) for i in range(3)]
    cfg = TrainConfig(hidden=8, heads=2, blocks=1, epochs=2, batch_size=3)
    return save_property_checkpoint(tmp_path / "prop",
                                    fit(make_graphs(cells, np.linspace(-0.5, 0.5, 6)), cfg))


@pytest.fixture
def excess_checkpoint(tmp_path):
    """A particle-excess checkpoint of the excess model's own network, untrained."""
    excess = pytest.importorskip("invdesign.evaluators.property.excess",
                                 reason="the particle-excess model (helper A) is not installed")
    torch.manual_seed(0)  # an untrained network: these tests are of the plumbing, not the model
    return excess.save_excess_checkpoint(tmp_path / "excess", excess.ExcessNet(), {})


@pytest.fixture
def folder(tmp_path):
    """A unit cell, a cut particle with its source cell beside it (as `sample` writes them), a
    packing with its provenance in the extended XYZ comment, and a particle without any."""
    folder = tmp_path / "candidates"
    folder.mkdir()
    write(folder / "cu.cif", bulk("Cu", "fcc", a=3.6))
    cell = bulk("Pt", "fcc", a=3.95, cubic=True)
    write(folder / "candidate_001_cell.cif", cell)
    cut = cell.repeat(2)
    cut.pbc, cut.cell = False, None
    write(folder / "candidate_001.xyz", cut, format="extxyz")
    ico = Icosahedron("Pt", 3, latticeconstant=2.76 * np.sqrt(2.0))
    ico.info.update(source="packing", shape="icosahedron", nn=2.76)
    write(folder / "candidate_002.xyz", ico, format="extxyz")
    loose = Icosahedron("Cu", 2)
    write(folder / "loose.xyz", loose, format="extxyz")
    return folder


def rows_of(path):
    return {r["file"]: r for r in csv.DictReader(path.open()) if r["rank"]}


def predicted(checkpoint, structures):
    return [r["formation_energy_per_atom"]
            for r in FormationEnergyEvaluator(checkpoint).evaluate(structures)]


def test_screen_gives_each_file_its_materials_energy_and_the_excess_column(
        property_checkpoint, folder, tmp_path):
    out = tmp_path / "pred.csv"
    assert main(["screen", str(folder), "--checkpoint", str(property_checkpoint), "--out",
                 str(out)]) == 0
    header = next(csv.reader(out.open()))
    assert tuple(header) == COLUMNS
    assert "particle_excess_energy_per_atom" in header
    rows = rows_of(out)
    source = Structure.from_ase(bulk("Pt", "fcc", a=3.95, cubic=True), kind="unit_cell")
    lattice = Structure.from_ase(packing_cell("fcc", 78, 2.76), kind="unit_cell")
    want_source, want_lattice = predicted(property_checkpoint, [source, lattice])
    cut, packing = rows["candidate_001.xyz"], rows["candidate_002.xyz"]
    assert cut["formation_energy_basis"] == BASIS_SOURCE
    assert float(cut["formation_energy_per_atom"]) == pytest.approx(want_source, abs=1e-4)
    assert float(rows["candidate_001_cell.cif"]["formation_energy_per_atom"]) == \
        pytest.approx(want_source, abs=1e-4)
    assert packing["formation_energy_basis"] == "bulk fcc lattice"
    assert float(packing["formation_energy_per_atom"]) == pytest.approx(want_lattice, abs=1e-4)
    assert rows["cu.cif"]["formation_energy_basis"] == BASIS_CELL
    assert rows["cu.cif"]["particle_excess_energy_per_atom"] == ""
    assert rows["cu.cif"]["excess_status"] == "not a discrete particle"
    assert rows["loose.xyz"]["formation_energy_basis"] in (BASIS_ESTIMATE, BASIS_PARTICLE)


def test_screen_with_an_excess_checkpoint_fills_the_particles_excess(
        property_checkpoint, excess_checkpoint, folder, tmp_path, capsys):
    from invdesign.evaluators.property.excess import ParticleExcessEvaluator

    out = tmp_path / "pred.csv"
    assert main(["screen", str(folder), "--checkpoint", str(property_checkpoint),
                 "--excess-checkpoint", str(excess_checkpoint), "--out", str(out)]) == 0
    assert "excess energy not predicted" not in capsys.readouterr().out
    rows = rows_of(out)
    from invdesign.evaluators.property.screen import read_candidate

    loose = read_candidate(folder / "loose.xyz")
    cut = read_candidate(folder / "candidate_001.xyz")
    want = [r["particle_excess_energy_per_atom"]
            for r in ParticleExcessEvaluator(excess_checkpoint).evaluate([cut, loose])]
    assert float(rows["candidate_001.xyz"]["particle_excess_energy_per_atom"]) == \
        pytest.approx(want[0], abs=1e-4)
    assert float(rows["loose.xyz"]["particle_excess_energy_per_atom"]) == \
        pytest.approx(want[1], abs=1e-4)
    # no cell known: the particle's own prediction minus its excess energy
    assert rows["loose.xyz"]["formation_energy_basis"] == BASIS_ESTIMATE
    assert float(rows["loose.xyz"]["formation_energy_per_atom"]) == pytest.approx(
        predicted(property_checkpoint, [loose])[0] - want[1], abs=1e-4)
    assert rows["cu.cif"]["particle_excess_energy_per_atom"] == ""


def test_screen_refuses_a_missing_excess_checkpoint_in_one_line(property_checkpoint, folder,
                                                                 tmp_path, capsys):
    out = tmp_path / "pred.csv"
    code = main(["screen", str(folder), "--checkpoint", str(property_checkpoint),
                 "--excess-checkpoint", str(tmp_path / "nowhere"), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("invdesign: error:")
    assert "nowhere" in err[0] and not out.exists()


# ------------------------------------------------------------------ the materials module


class Counting:
    """The real formation-energy evaluator, counting the structures it is asked about."""

    def __init__(self, checkpoint):
        self.inner, self.asked = FormationEnergyEvaluator(checkpoint), []

    def evaluate(self, structures):
        self.asked += [s.n_atoms for s in structures]
        return self.inner.evaluate(structures)


def test_each_distinct_material_cell_is_predicted_once(property_checkpoint):
    cell = Structure.from_ase(bulk("Cu", "fcc", a=3.61, cubic=True), kind="unit_cell")
    shifted = Structure(cell.species, cell.positions + cell.cell[0], cell.cell, "unit_cell")
    assert cell_key(shifted) == cell_key(cell)  # a lattice translation: the same cell
    other = Structure.from_ase(bulk("Cu", "fcc", a=3.70, cubic=True), kind="unit_cell")
    particles = [Structure(np.full(13, 29), Icosahedron("Cu", 2).positions, None, "particle",
                           {"unit_cell": cell}) for _ in range(3)]
    counting = Counting(property_checkpoint)
    records = MaterialEnergies(counting).evaluate([cell, shifted, other, *particles])
    assert sorted(counting.asked) == [4, 4]  # two distinct cells, nothing else
    values = [r["formation_energy_per_atom"] for r in records]
    assert values[0] == values[1] == values[3] == values[4] == values[5] != values[2]


def test_a_large_particle_is_estimated_from_its_core_and_excess_stops_at_the_limit(
        property_checkpoint):
    rng = np.random.default_rng(0)
    pos = rng.uniform(-60, 60, size=(EXCESS_MAX_ATOMS + 1, 3))
    big = Structure(np.full(len(pos), 29), pos, None, "particle")
    core = particle_core(big, 50)
    centre_dist = np.linalg.norm(pos - pos.mean(0), axis=1)
    assert core.n_atoms == 50
    assert np.linalg.norm(core.positions - pos.mean(0), axis=1).max() <= \
        np.sort(centre_dist)[49] + 1e-12
    assert material_cell(big) == (None, BASIS_ESTIMATE)
    excess = MaterialEnergies(FormationEnergyEvaluator(property_checkpoint)).excess_energies([big])
    assert math.isnan(excess[0][0]) and "above 20,000" in excess[0][1]


def test_an_alloy_packings_material_is_a_random_alloy_of_its_composition_on_its_lattice():
    from invdesign.crystals.packings import packing_candidates

    for particle in packing_candidates({78: 0.5, 28: 0.5}, 2.7, 15.0, 6):
        cell, basis = material_cell(particle)
        shape = particle.info["shape"]
        lattice = shape if shape in ("fcc", "hcp", "bcc") else "fcc"
        assert basis == f"bulk {lattice} lattice" and cell.is_periodic
        counts = {z: int((cell.species == z).sum()) for z in (28, 78)}
        assert counts[28] == counts[78] and cell.n_atoms >= 32
        # the lattice at the packing's nearest-neighbour distance
        assert cell.min_distance() == pytest.approx(2.7, abs=1e-6)
