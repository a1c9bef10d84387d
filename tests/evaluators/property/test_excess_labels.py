"""tools/make_excess_labels.py: `--extra` cuts added to existing label files, `--chili-more`."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import pytest
from ase.build import bulk

from invdesign.core.structure import Structure

TOOL = Path(__file__).resolve().parents[3] / "tools" / "make_excess_labels.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("make_excess_labels", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_label(particle, guard):
    """Stands in for the CHGNet single point (no model): E_f = 1 / n."""
    row = {"status": "ok", "n_atoms": particle.n_atoms}
    if particle.n_atoms < 13:
        return {**row, "status": f"skipped: {particle.n_atoms} atoms < 13"}
    return {**row, "energy_per_atom": 0.0, "formation_energy_per_atom": 1.0 / particle.n_atoms,
            "site_energies": [0.0] * particle.n_atoms, "chgnet_seconds": 0.0}


def test_extra_cuts_are_added_once_and_never_duplicated(tool, tmp_path, monkeypatch):
    monkeypatch.setattr(tool, "chgnet_particle", fake_label)
    cell = Structure.from_ase(bulk("Cu", "fcc", a=3.61, cubic=True))
    folder = tmp_path / "materials"
    folder.mkdir()
    record = {"id": "metal_fcc_Cu", "formula": "Cu4", "source": "metal",
              "bulk": {"species": cell.species.tolist(), "positions": cell.positions.tolist(),
                       "cell": cell.cell.tolist(), "formation_energy_per_atom": 0.0,
                       "status": "ok"},
              "particles": [{"status": "ok", "n_atoms": 43}]}
    (folder / "metal_fcc_Cu.json").write_text(json.dumps(record))
    args = argparse.Namespace(extra=4, band="small", seed=0, budget_minutes=0)
    tool.add_cuts(folder, args, None, 0.0)
    out = json.loads((folder / "metal_fcc_Cu.json").read_text())
    sizes = [p["n_atoms"] for p in out["particles"]]
    assert out["extra_small"] == 4 and len(sizes) == len(set(sizes)) > 1
    added = [p for p in out["particles"] if p.get("extra") == "small"]
    assert all(13 <= p["n_atoms"] <= 200 for p in added if p["status"] == "ok")
    ok = [p for p in added if p["status"] == "ok"]
    assert ok and all(p["particle_excess_energy_per_atom"] == pytest.approx(1 / p["n_atoms"])
                      for p in ok)
    tool.add_cuts(folder, args, None, 0.0)  # a rerun leaves a finished file alone
    assert json.loads((folder / "metal_fcc_Cu.json").read_text()) == out


def test_chili_more_keeps_the_first_draw(tool):
    base = argparse.Namespace(seed=0, chili=2, chili_more=0, metals="Cu")
    more = argparse.Namespace(seed=0, chili=2, chili_more=1, metals="Cu")
    a = {m["id"] for m in tool.materials(base)}
    b = {m["id"] for m in tool.materials(more)}
    assert a < b
    assert len(b - a) == len({m["structure_type"] for m in tool.materials(base)
                              if m["source"] == "chili3k"})
