"""`invdesign screen` through the CLI: ranking, an unreadable file with its reason, bad input."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from ase.build import bulk
from ase.io import write

from invdesign.cli.main import main
from invdesign.core.structure import Structure
from invdesign.evaluators.property.checkpoint import save_property_checkpoint
from invdesign.evaluators.property.data import make_graphs
from invdesign.evaluators.property.train import TrainConfig, fit, model_inputs


@pytest.fixture
def tiny_checkpoint(tmp_path):
    structures = [Structure.from_ase(bulk("Cu", "fcc", a=3.4 + 0.1 * i)) for i in range(6)]
    targets = np.linspace(-0.5, 0.5, 6)
    cfg = TrainConfig(hidden=8, heads=2, blocks=1, epochs=2, batch_size=3)
    folder = tmp_path / "ckpt"
    save_property_checkpoint(folder, fit(make_graphs(structures, targets), cfg))
    return folder


@pytest.fixture
def candidates(tmp_path):
    folder = tmp_path / "candidates"
    (folder / "sub").mkdir(parents=True)
    write(folder / "cu.cif", bulk("Cu", "fcc", a=3.6))
    write(folder / "sub" / "mgo.cif", bulk("MgO", "rocksalt", a=4.2))
    particle = bulk("Au", "fcc", a=4.08, cubic=True)
    particle.pbc = False
    particle.cell = None
    write(folder / "au4.xyz", particle, format="extxyz")
    (folder / "broken.cif").write_text("data_broken\n_cell_length_a nonsense\n")
    return folder


def test_screen_ranks_readable_files_and_lists_the_broken_one(
    tiny_checkpoint, candidates, tmp_path, capsys
):
    out = tmp_path / "pred.csv"
    code = main(
        ["screen", str(candidates), "--checkpoint", str(tiny_checkpoint), "--out", str(out)]
    )
    assert code == 0
    rows = list(csv.DictReader(out.open()))
    ranked = [r for r in rows if r["rank"]]
    assert sorted(r["file"] for r in ranked) == ["au4.xyz", "cu.cif", "sub/mgo.cif"]
    values = [float(r["formation_energy_per_atom"]) for r in ranked]
    assert values == sorted(values)
    assert {r["file"]: r["n_atoms"] for r in ranked}["au4.xyz"] == "4"
    broken = [r for r in rows if r["file"] == "broken.cif"]
    assert len(broken) == 1 and broken[0]["status"].startswith("unreadable: ")
    assert len(broken[0]["status"]) > len("unreadable: ")
    assert out.with_suffix(".png").is_file()
    assert "broken.cif" in capsys.readouterr().err


def test_screen_max_ef_filters(tiny_checkpoint, candidates, tmp_path):
    out = tmp_path / "pred.csv"
    assert (
        main(
            [
                "screen",
                str(candidates),
                "--checkpoint",
                str(tiny_checkpoint),
                "--out",
                str(out),
                "--max-ef",
                "-100",
            ]
        )
        == 0
    )
    assert not [r for r in csv.DictReader(out.open()) if r["rank"]]


def test_screen_max_ef_between_the_predictions_keeps_those_below(
    tiny_checkpoint, candidates, tmp_path
):
    """Predictions read first (measured 2026-12-02: 0.1079 Cu, 0.1125 MgO, 0.1165 Au4 eV/atom);
    a threshold halfway between the two largest keeps exactly the two below it."""
    every = tmp_path / "every.csv"
    assert main(["screen", str(candidates), "--checkpoint", str(tiny_checkpoint), "--out",
                 str(every)]) == 0
    values = {r["file"]: float(r["formation_energy_per_atom"])
              for r in csv.DictReader(every.open()) if r["rank"]}
    low, mid, high = sorted(values.values())
    assert low < mid < high  # distinct, so a threshold between them separates them
    threshold = (mid + high) / 2
    out = tmp_path / "kept.csv"
    assert main(["screen", str(candidates), "--checkpoint", str(tiny_checkpoint), "--out",
                 str(out), "--max-ef", repr(threshold)]) == 0
    kept = {r["file"]: float(r["formation_energy_per_atom"])
            for r in csv.DictReader(out.open()) if r["rank"]}
    assert kept == {f: v for f, v in values.items() if v < threshold}
    assert len(kept) == 2


def test_screen_missing_folder_exits_2_with_one_line(tmp_path, capsys):
    code = main(["screen", str(tmp_path / "nowhere"), "--out", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("invdesign: error:") and "nowhere" in err[0]
    assert not (tmp_path / "p.csv").exists()


def test_screen_bad_checkpoint_exits_2(candidates, tmp_path, capsys):
    not_a_checkpoint = tmp_path / "empty"  # not tmp_path: --out must not lie inside an input
    not_a_checkpoint.mkdir()
    code = main(
        ["screen", str(candidates), "--checkpoint", str(not_a_checkpoint), "--out",
         str(tmp_path / "p.csv")]
    )
    assert code == 2
    assert "not a property checkpoint" in capsys.readouterr().err


def test_screen_ranks_candidates_without_a_prediction_last(candidates, tmp_path, capsys):
    """A model with CHGNet features cannot predict a structure CHGNet refuses: that file
    is kept, ranked last, with the reason, and the CHGNet check skips it."""
    structures = [Structure.from_ase(bulk("Cu", "fcc", a=3.5 + 0.05 * i)) for i in range(6)]
    cfg = TrainConfig(hidden=8, heads=2, blocks=1, epochs=2, batch_size=3, chgnet_features=True)
    inputs = model_inputs(structures, cfg)
    graphs = make_graphs(
        structures, np.linspace(0, 1, 6), inputs.desc, atom_features=inputs.atom_fea
    )
    folder = tmp_path / "ckpt-chgnet"
    save_property_checkpoint(folder, fit(graphs, cfg))
    # H-H at 0.5 Å: valid (0.7 x the H radii is 0.35 Å) but closer than CHGNet accepts
    (candidates / "close.xyz").write_text("2\n\nH 0 0 0\nH 0.5 0 0\n")
    out = tmp_path / "pred.csv"
    argv = ["screen", str(candidates), "--checkpoint", str(folder), "--out", str(out)]
    assert main([*argv, "--check", "chgnet", "--top", "10"]) == 0
    ranked = [r for r in csv.DictReader(out.open()) if r["rank"]]
    assert [r["file"] for r in ranked][-1] == "close.xyz"
    assert ranked[-1]["formation_energy_per_atom"] == ""
    assert ranked[-1]["status"].startswith("no prediction:")
    assert ranked[-1]["chgnet_formation_energy_per_atom"] == ""  # not checked
    assert all(r["status"] == "ok" and r["chgnet_formation_energy_per_atom"] for r in ranked[:-1])
    assert "1 without a prediction" in capsys.readouterr().out


# ----------------------------------------------------- candidate sanity (issue 22, item 4)
OVERLAP = "invalid: atoms overlap: minimum distance 0 Å, below 0.7 x the sum of their atomic radii"


def test_screen_marks_coincident_atoms_and_lone_atoms_invalid(
    tiny_checkpoint, candidates, tmp_path
):
    """Three atoms on one point and a 1-atom particle are not predicted: status 'invalid: ...',
    ranked last, never 'ok'; the valid files are ranked as before."""
    (candidates / "stack.xyz").write_text("3\nstack\nCu 0 0 0\nCu 0 0 0\nCu 0 0 0\n")
    (candidates / "one.xyz").write_text("1\none atom\nCu 0 0 0\n")
    out = tmp_path / "pred.csv"
    argv = ["screen", str(candidates), "--checkpoint", str(tiny_checkpoint), "--out", str(out)]
    assert main(argv) == 0
    ranked = {r["file"]: r for r in csv.DictReader(out.open()) if r["rank"]}
    assert [r["rank"] for r in ranked.values()] == ["1", "2", "3", "4", "5"]
    assert {ranked["one.xyz"]["rank"], ranked["stack.xyz"]["rank"]} == {"4", "5"}
    assert ranked["stack.xyz"]["status"] == OVERLAP
    assert ranked["one.xyz"]["status"] == "invalid: 1 atom; at least 2 needed"
    assert ranked["stack.xyz"]["formation_energy_per_atom"] == ""
    assert ranked["one.xyz"]["formation_energy_per_atom"] == ""
    assert all(ranked[f]["status"] == "ok" for f in ("au4.xyz", "cu.cif", "sub/mgo.cif"))


@pytest.mark.parametrize(("text", "reason"), [
    ("1\none atom\nCu 0 0 0\n", "1 atom; at least 2 needed"),
    ("3\nstack\nCu 0 0 0\nCu 0 0 0\nCu 0 0 0\n", OVERLAP.removeprefix("invalid: ")),
])
def test_screen_without_a_valid_candidate_exits_2_with_one_line(
    tiny_checkpoint, tmp_path, capsys, text, reason
):
    folder = tmp_path / "cands"
    folder.mkdir()
    (folder / "a.xyz").write_text(text)
    out = tmp_path / "p.csv"
    code = main(["screen", str(folder), "--checkpoint", str(tiny_checkpoint), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"invdesign: error: {folder}: no valid candidate to screen (1 invalid; "
                   f"a.xyz: {reason})"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cands", "ckpt"]


@pytest.mark.parametrize(("option", "message"), [
    (["--max-ef", "nan"], "--max-ef must be a finite number (eV/atom), not nan"),
    (["--max-ef=-inf"], "--max-ef must be a finite number (eV/atom), not -inf"),
    (["--check", "chgnet", "--top", "-1"], "--top = -1 is below 1"),
])
def test_screen_bad_numeric_options_exit_2_with_one_line(candidates, tmp_path, capsys, option,
                                                         message):
    out = tmp_path / "p.csv"
    code = main(["screen", str(candidates), "--out", str(out), *option])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"invdesign: error: {message}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["candidates"]
