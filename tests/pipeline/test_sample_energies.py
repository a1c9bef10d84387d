"""The energy screening of `sample` (issue 25): every valid candidate gets the formation energy of
its material, every particle its excess energy, with tiny checkpoints made here (a property
checkpoint trained for 2 epochs on 6 cells; the excess model's when its module is installed)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.cluster import Icosahedron
from ase.io import read

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
)
from invdesign.evaluators.property.train import TrainConfig, fit
from invdesign.pipeline import defaults
from invdesign.pipeline.energies import add_energies
from invdesign.pipeline.pool import cut_crystal
from invdesign.pipeline.result import ENERGY_COLUMNS, Candidate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PT = EXAMPLES / "Pt_truncoct_2nm.gr"


def tiny_property_checkpoint(folder: Path) -> Path:
    """A 2-epoch property model on 6 strained fcc cells of Cu and Pt (targets made up)."""
    cells = [Structure.from_ase(bulk(el, "fcc", a=a + 0.1 * i))
             for el, a in (("Cu", 3.4), ("Pt", 3.8)) for i in range(3)]
    cfg = TrainConfig(hidden=8, heads=2, blocks=1, epochs=2, batch_size=3)
    return save_property_checkpoint(folder, fit(make_graphs(cells, np.linspace(-0.5, 0.5, 6)),
                                                cfg))


def tiny_excess_checkpoint(folder: Path) -> Path:
    """A particle-excess checkpoint of the excess model's own network, untrained."""
    excess = pytest.importorskip("invdesign.evaluators.property.excess",
                                 reason="the particle-excess model (helper A) is not installed")
    torch.manual_seed(0)  # an untrained network: these tests are of the plumbing, not the model
    return excess.save_excess_checkpoint(folder, excess.ExcessNet(), {})


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    """A checkpoint folder holding only a tiny property-default."""
    root = tmp_path / "checkpoints"
    tiny_property_checkpoint(root / defaults.PROPERTY_MODEL)
    monkeypatch.setenv(defaults.CHECKPOINT_ENV, str(root))
    return root


def predict(root: Path, structures: list[Structure]) -> list[float]:
    evaluator = FormationEnergyEvaluator(root / defaults.PROPERTY_MODEL)
    return [r["formation_energy_per_atom"] for r in evaluator.evaluate(structures)]


def test_every_valid_candidate_of_a_run_gets_its_materials_formation_energy(
        root, tmp_path, tiny_checkpoint, quick_pool, capsys) -> None:
    out = tmp_path / "run"
    assert main(["sample", "--pdf", str(PT), "--checkpoint", str(tiny_checkpoint), "--n", "4",
                 "--out", str(out)]) == 0
    with open(out / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(col in rows[0] for col in ENERGY_COLUMNS)
    valid = [r for r in rows if r["valid"] == "True"]
    assert len(valid) == 4  # the packings of the quick pool (the Pt particle is beyond the model)
    # a packing's material is the bulk lattice of Pt at the packing's nearest-neighbour distance:
    # fcc for fcc spheres and the cluster shapes, the packing's own lattice otherwise
    for row in valid:
        particle = Structure.from_ase(read(out / row["file"]), kind="particle")
        lattice = row["structure_type"] if row["structure_type"] in ("hcp", "bcc") else "fcc"
        assert row["formation_energy_basis"] == f"bulk {lattice} lattice"
        cell = Structure.from_ase(packing_cell(lattice, 78, float(particle.info["nn"])),
                                  kind="unit_cell")
        assert float(row["formation_energy_per_atom"]) == pytest.approx(predict(root, [cell])[0],
                                                                        abs=1e-9)
        assert row["particle_excess_energy_per_atom"] == ""  # no excess checkpoint in `root`
        assert row["excess_status"].startswith("no prediction: no particle-excess checkpoint")
    err = capsys.readouterr()
    line = next(s for s in err.err.splitlines() if s.startswith("energies:"))
    assert "of 4 valid candidate(s)" in line and "particle-excess" in line
    assert "Particle excess energy not predicted:" in err.out  # the report's 'how' says why


def test_no_energies_leaves_the_columns_empty(root, tmp_path, tiny_checkpoint, quick_pool,
                                              capsys) -> None:
    out = tmp_path / "run"
    assert main(["sample", "--pdf", str(PT), "--checkpoint", str(tiny_checkpoint), "--n", "2",
                 "--no-energies", "--out", str(out)]) == 0
    with open(out / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(r[c] == "" for r in rows for c in ENERGY_COLUMNS)
    assert "energies:" not in capsys.readouterr().err


def test_a_cut_particle_reports_its_source_cells_formation_energy(root) -> None:
    cell = Structure.from_ase(bulk("Cu", "fcc", a=3.61, cubic=True), kind="unit_cell")
    particle = cut_crystal(cell, 12.0)
    assert particle is not None and not particle.is_periodic
    loose = Structure(particle.species, particle.positions, None, "particle")  # no provenance
    cands = [Candidate(i, s, rw=0.1, scale=1.0) for i, s in enumerate((cell, particle, loose))]
    add_energies(cands, "cpu", lambda _line: None)
    want_cell, want_loose = predict(root, [cell, loose])
    crystal, cut, other = (c.energies for c in cands)
    assert crystal["formation_energy_basis"] == BASIS_CELL
    assert cut["formation_energy_basis"] == BASIS_SOURCE
    assert crystal["formation_energy_per_atom"] == pytest.approx(want_cell, abs=1e-9)
    assert cut["formation_energy_per_atom"] == pytest.approx(want_cell, abs=1e-9)
    # no cell and no excess model: the particle's own prediction, said so
    assert other["formation_energy_basis"] == BASIS_PARTICLE
    assert other["formation_energy_per_atom"] == pytest.approx(want_loose, abs=1e-9)
    assert math.isnan(cut["particle_excess_energy_per_atom"])
    assert "particle-excess" in cut["excess_status"]


def test_an_invalid_candidate_is_not_predicted(root) -> None:
    overlapping = Structure(np.array([29, 29]), np.zeros((2, 3)), None, "particle")
    cand = Candidate(0, overlapping, rw=0.1, scale=1.0)
    assert not cand.valid
    add_energies([cand], "cpu", lambda _line: None)
    assert cand.energies == {}
    assert all(cand.row()[c] is None for c in ENERGY_COLUMNS)


#: eV/atom: the pipeline predicts the particles in other batches than the direct call, and
#: float32 sums in another order differ by ~1e-8 on some CPUs
FLOAT32 = 1e-6


def test_particles_get_the_excess_energy_and_the_estimate_uses_it(root) -> None:
    folder = tiny_excess_checkpoint(root / defaults.EXCESS_MODEL)
    from invdesign.evaluators.property.excess import ParticleExcessEvaluator

    cell = Structure.from_ase(bulk("Pt", "fcc", a=3.92, cubic=True), kind="unit_cell")
    cut = cut_crystal(cell, 12.0)
    loose = Structure.from_ase(Icosahedron("Pt", 3), kind="particle")
    assert cut is not None
    cands = [Candidate(i, s, rw=0.1, scale=1.0) for i, s in enumerate((cell, cut, loose))]
    lines: list[str] = []
    add_energies(cands, "cpu", lines.append)
    excess = [r["particle_excess_energy_per_atom"]
              for r in ParticleExcessEvaluator(folder).evaluate([cut, loose])]
    crystal, cut_e, loose_e = (c.energies for c in cands)
    assert math.isnan(crystal["particle_excess_energy_per_atom"])
    assert cut_e["particle_excess_energy_per_atom"] == pytest.approx(excess[0], abs=FLOAT32)
    assert loose_e["particle_excess_energy_per_atom"] == pytest.approx(excess[1], abs=FLOAT32)
    assert all(math.isfinite(v) for v in excess)
    # a particle without a cell: its own prediction minus its excess energy
    assert loose_e["formation_energy_basis"] == BASIS_ESTIMATE
    assert loose_e["formation_energy_per_atom"] == pytest.approx(
        predict(root, [loose])[0] - excess[1], abs=FLOAT32)
    assert "particle excess energy of 2 of 2 particle(s)" in lines[-1]
