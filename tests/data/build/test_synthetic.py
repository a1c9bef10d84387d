"""`invdesign data build synthetic`: determinism, rejections with reasons, sources, duplicates, CLI.

Tiny builds: a few cells, one 3 Å particle, one pattern or none, a few CHGNet steps.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice
from pymatgen.core import Structure as PmgStructure
from pymatgen.io.cif import CifWriter

from invdesign.cli.main import main
from invdesign.core.errors import InvdesignError
from invdesign.core.structure import Structure
from invdesign.data.build.runner import REPORT_NAME, run_tasks
from invdesign.data.build.synthetic import (
    DUPLICATES_NAME,
    SyntheticSource,
    build_synthetic,
    build_synthetic_source,
    library_tasks,
    read_duplicates,
)
from invdesign.data.build.synthetic_plan import CellPlan
from invdesign.data.build.synthetic_relax import check_relaxed, place, relax
from invdesign.data.dataset import ChiliDataset
from invdesign.data.hdf5_io import read_chili_file
from invdesign.testing import rock_salt_cell

TINY = {"radii": [3.0], "relax_steps": 5}


def _build(out: Path, **kwargs):
    options = {"n": 3, "seed": 0, "sources": ["synthetic"], "patterns": ["xPDF"], **TINY,
               "progress": False, **kwargs}
    return build_synthetic(out, **options)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("synthetic") / "a"
    return out, _build(out)


def _records(folder: Path) -> dict[str, object]:
    return {p.stem: read_chili_file(p) for p in sorted(folder.glob("*.h5"))}


def test_same_seed_gives_the_same_files(built, tmp_path) -> None:
    out, summary = built
    again = _build(tmp_path / "b")
    assert [(o.name, o.status, o.reason) for o in summary.outcomes] == [
        (o.name, o.status, o.reason) for o in again.outcomes]
    first, second = _records(out), _records(tmp_path / "b")
    assert first and first.keys() == second.keys()
    for name, record in first.items():
        other = second[name]
        assert record.space_group_number == other.space_group_number
        np.testing.assert_array_equal(record.unit_cell.pos_abs, other.unit_cell.pos_abs)
        np.testing.assert_array_equal(record.cell_params, other.cell_params)
        for a, b in zip(record.particles, other.particles, strict=True):
            np.testing.assert_array_equal(a.patterns["xPDF"], b.patterns["xPDF"])
    other_seed = _build(tmp_path / "c", seed=1)
    assert {o.name for o in other_seed.outcomes}.isdisjoint(first)


def test_files_hold_small_cells_and_read_through_the_dataset(built, capsys) -> None:
    out, summary = built
    records = _records(out)
    assert len(records) == summary.count("written") >= 1
    for name, record in records.items():
        assert name.startswith("syn0_")
        assert 1 <= record.unit_cell.n_atoms <= 20
        frac = record.unit_cell.pos_frac  # wrapped after relaxation, as CHILI's cells are
        assert frac.min() > -1e-6 and frac.max() < 1.0 + 1e-6
        assert int(name.rsplit("_sg", 1)[1]) == record.space_group_number  # symmetry kept
        assert set(record.particles[0].patterns) == {"xPDF"}
    dataset = ChiliDataset(out)
    assert len(dataset) == sum(len(r.particles) for r in records.values())
    data = dataset[0]
    assert data.x.shape[1] == 4 and data.pos_abs.shape[0] == data.x.shape[0]
    assert main(["data", "info", str(out)]) == 0
    printed = capsys.readouterr().out
    groups = {r.space_group_number for r in records.values()}
    assert f"space groups: {len(groups)} distinct" in printed
    assert "elements: " in printed and "O" in printed.split("elements: ")[1].split()


def test_report_lists_every_task(built) -> None:
    out, summary = built
    lines = (out / REPORT_NAME).read_text().splitlines()[1:]
    assert [line.split("\t")[0] for line in lines] == [o.name for o in summary.outcomes]
    assert all(o.reason for o in summary.outcomes if o.status == "rejected")
    assert summary.count("failed") == 0


def test_a_cell_pyxtal_cannot_place_is_rejected_with_its_reason(tmp_path) -> None:
    # one Na atom cannot sit in Fm-3m (smallest orbit: 4 atoms)
    plan = CellPlan(0, "intermetallic", 225, ("Na",), (1,), (0,), seed=5)
    task = SyntheticSource("bad", "synthetic", plan=plan, radii=(3.0,), patterns=())
    summary = run_tasks([task], build_synthetic_source, tmp_path / "out", progress=False)
    (outcome,) = summary.outcomes
    assert outcome.status == "rejected"
    assert "pyxtal could not place Na in space group 225" in outcome.reason
    assert not list((tmp_path / "out").glob("*.h5"))


def test_placement_is_bounded_by_coordinate_trials() -> None:
    # the same NaCl-type plan: placed with the default budget (the same cell every time: the
    # budget counts trials, not seconds), refused with its reason when the budget is spent before
    # pyxtal's first coordinate trial
    plan = CellPlan(0, "halide", 225, ("Na", "Cl"), (4, 4), (1, -1), seed=3)
    cell = place(plan)
    assert sorted(cell.species.tolist()) == [11] * 4 + [17] * 4
    assert cell.min_distance() > 1.5
    again = place(plan)
    assert np.array_equal(again.species, cell.species)
    assert np.allclose(again.positions, cell.positions) and np.allclose(again.cell, cell.cell)
    with pytest.raises(InvdesignError, match="could not place Na4Cl4 in space group 225") as info:
        place(plan, trials=0)
    assert str(info.value).endswith("within 0 coordinate trials")


def _cube(a: float, frac=((0, 0, 0), (0.5, 0.5, 0.5))) -> Structure:
    return Structure.from_fractional([11, 17], np.array(frac), np.eye(3) * a)


@pytest.mark.parametrize(("after", "energies", "reason"), [
    (_cube(1.2), [-3.0, -3.1], "atoms collapsed: minimum distance 1.04 Å"),
    (_cube(5.2), [-3.0, -3.1], "volume changed x2.20"),
    (_cube(3.4), [-3.0, -3.2, -3.1], "energy rising"),
    (_cube(3.4), [-3.0, -2.9], "energy rising"),
    (_cube(3.4), [-3.0, np.nan], "not finite"),
])
def test_relaxed_cells_that_fall_apart_are_refused(after, energies, reason) -> None:
    with pytest.raises(InvdesignError, match=reason):
        check_relaxed(_cube(4.0), after, np.array(energies))


def test_relaxed_cell_that_holds_passes_and_a_lone_atom_is_disconnected() -> None:
    check_relaxed(_cube(3.0), _cube(3.0), np.array([-3.0, -3.2, -3.19]))
    lone = Structure.from_fractional([11, 17, 11], np.array([[0, 0, 0], [0.06, 0, 0],
                                                               [0.5, 0.5, 0.5]]), np.eye(3) * 40)
    with pytest.raises(InvdesignError, match="disconnected: 2 isolated"):
        check_relaxed(lone, lone, np.array([-1.0, -1.1]))


def test_relaxed_cells_keep_fractional_coordinates_in_the_unit_interval() -> None:
    """CHILI's cells hold fractional coordinates in [0, 1); a relaxation that ends with atoms
    across a face (here: the input already is, shifted by -0.01) returns them wrapped."""
    cell = rock_salt_cell(5.64, metal=11, anion=17)
    shifted = Structure.from_fractional(cell.species, cell.frac_positions - 0.01, cell.cell)
    assert shifted.frac_positions.min() < 0
    relaxed, energies = relax(shifted, steps=1)
    frac = relaxed.frac_positions
    assert frac.min() > -1e-9 and frac.max() < 1.0 and len(energies) >= 1
    moved = (frac - np.mod(shifted.frac_positions, 1.0) + 0.5) % 1.0 - 0.5
    assert np.abs(moved).max() < 0.05  # the same sites, one step of relaxation apart


def _perov5_csv(path: Path) -> Path:
    cells = {
        "11": PmgStructure(Lattice.cubic(3.905), ["Sr", "Ti", "O", "O", "O"],
                           [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5],
                            [0, 0.5, 0.5]]),
        "12": PmgStructure(Lattice.cubic(4.007), ["K", "Nb", "O", "O", "O"],
                           [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5],
                            [0, 0.5, 0.5]]),
    }
    cells["13"] = cells["11"].copy()  # the same SrTiO3 under another id: a duplicate
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["", "material_id", "cif", "formula"])
        for k, (mid, cell) in enumerate(cells.items()):
            writer.writerow([k, mid, str(CifWriter(cell)), cell.composition.reduced_formula])
    return path


def test_perov5_cells_build_and_a_duplicate_is_removed_for_good(tmp_path) -> None:
    csv_path = _perov5_csv(tmp_path / "perov5_val.csv")
    out = tmp_path / "out"
    summary = build_synthetic(out, sources=["perov5"], perov5_csv=csv_path, patterns=["none"],
                              radii=[3.0], progress=False)
    status = {o.name: (o.status, o.reason) for o in summary.outcomes}
    assert status["perov5_11"] == ("written", "")
    assert status["perov5_12"] == ("written", "")
    assert status["perov5_13"][0] == "rejected"
    assert "duplicate of perov5_11" in status["perov5_13"][1]
    assert sorted(p.stem for p in out.glob("*.h5")) == ["perov5_11", "perov5_12"]
    assert read_duplicates(out) == {"perov5_13": "perov5_11"}
    assert (out / DUPLICATES_NAME).is_file()
    record = read_chili_file(out / "perov5_12.h5")
    assert record.space_group_number == 221 and record.particles[0].patterns == {}
    again = build_synthetic(out, sources=["perov5"], perov5_csv=csv_path, patterns=["none"],
                            radii=[3.0], progress=False)
    assert again.count("written") == 0 and again.count("exists") == 2
    assert not (out / "perov5_13.h5").exists()


def test_a_refused_cell_is_remembered_and_not_redone_on_resume(tmp_path) -> None:
    csv_path = _perov5_csv(tmp_path / "perov5_val.csv")
    with csv_path.open("a", newline="") as handle:
        csv.writer(handle).writerow([3, "99", "data_broken\n_cell_length_a x\n", "X"])
    out = tmp_path / "out"
    options = {"sources": ["perov5"], "perov5_csv": csv_path, "patterns": ["none"],
               "progress": False}
    first = {o.name: o for o in build_synthetic(out, radii=[3.0], **options).outcomes}
    assert first["perov5_99"].status == "rejected"
    assert "unreadable CIF" in first["perov5_99"].reason
    record = out / ".rejected" / "perov5_99.tsv"
    fingerprint, reason = record.read_text().rstrip("\n").split("\t")
    assert reason == first["perov5_99"].reason
    # a resumed run reads the refusal instead of redoing it (the marker reason shows which)
    record.write_text(f"{fingerprint}\tremembered refusal\n")
    again = {o.name: o for o in build_synthetic(out, radii=[3.0], **options).outcomes}
    assert (again["perov5_99"].status, again["perov5_99"].reason) == ("rejected",
                                                                      "remembered refusal")
    assert again["perov5_11"].status == "exists"
    retried = build_synthetic(out, radii=[3.0], retry_rejected=True, **options)
    assert "unreadable CIF" in {o.name: o for o in retried.outcomes}["perov5_99"].reason
    # another task (other radii) is not the one refused: tried again, and a record left by a
    # different task is dropped once its file is written
    record.write_text(f"{fingerprint}\tremembered refusal\n")
    (out / ".rejected" / "perov5_12.tsv").write_text("0123456789abcdef\tstale\n")
    (out / "perov5_12.h5").unlink()
    other = build_synthetic(tmp_path / "out", radii=[3.0, 4.0], **options)
    status = {o.name: o for o in other.outcomes}
    assert "unreadable CIF" in status["perov5_99"].reason
    assert status["perov5_12"].status == "written"
    assert not (out / ".rejected" / "perov5_12.tsv").exists()


def test_library_types_are_sources_with_chili_labels(tmp_path) -> None:
    tasks = library_tasks()
    assert len(tasks) == 94 and len({t.name for t in tasks}) == 94
    rocksalt = next(t for t in tasks if t.library_type == "rocksalt")
    assert rocksalt.crystal_type == "RockSalt"
    outcome = build_synthetic_source(
        SyntheticSource(rocksalt.name, "library", library_type="rocksalt",
                        crystal_type="RockSalt", radii=(3.0,), patterns=()), tmp_path)
    assert outcome.status == "written"
    record = read_chili_file(tmp_path / f"{rocksalt.name}.h5")
    assert record.crystal_type == "RockSalt" and record.space_group_number == 225


@pytest.mark.parametrize(("extra", "message"), [
    (["--n", "-1"], "--n must be in"),
    (["--n", "0"], "--n must be at least 1"),
    (["--n", "2", "--sources", "cod"], "unknown source 'cod'"),
    (["--sources", "perov5"], "needs --perov5-csv"),
    (["--sources", "perov5", "--perov5-csv", "/nonexistent/p.csv"], "perov5 CSV not found"),
    (["--n", "2", "--patterns", "ir"], "unknown pattern 'ir'"),
    (["--n", "2", "--relax-steps", "-4"], "--relax-steps must be in"),
    (["--n", "2", "--radii", "0"], "particle radii must be in"),
])
def test_bad_arguments_give_one_line(tmp_path, capsys, extra, message) -> None:
    out = tmp_path / "out"
    assert main(["data", "build", "synthetic", "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("invdesign: error: ") and message in err
    assert not out.exists()


def test_csv_without_cif_column_is_refused(tmp_path) -> None:
    bad = tmp_path / "p.csv"
    bad.write_text("material_id,formula\n1,SrTiO3\n")
    with pytest.raises(InvdesignError, match="needs a 'cif' column"):
        build_synthetic(tmp_path / "out", sources=["perov5"], perov5_csv=bad, progress=False)


@pytest.mark.slow
def test_two_workers_write_the_same_files(built, tmp_path) -> None:
    out, summary = built
    parallel = _build(tmp_path / "w2", workers=2)
    assert [(o.name, o.status) for o in parallel.outcomes] == [
        (o.name, o.status) for o in summary.outcomes]
    first, second = _records(out), _records(tmp_path / "w2")
    assert first.keys() == second.keys()
    for name, record in first.items():
        np.testing.assert_array_equal(record.unit_cell.pos_abs, second[name].unit_cell.pos_abs)
