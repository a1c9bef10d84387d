"""The one candidate pool of `sample`: validity before Rw, the source of every candidate in the
report, the user's CIFs (`--library DIR`), discrete cuts under an atom limit."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from ase.io import read

import invdesign.generators.mlp  # noqa: F401  (registers 'mlp' without importing every generator)
from invdesign.cli.main import main
from invdesign.core.structure import Structure
from invdesign.evaluators.metrics.validity import Validity
from invdesign.pipeline import planning, sample
from invdesign.pipeline.pool import cut_crystal, rank
from invdesign.pipeline.report import table
from invdesign.pipeline.result import Candidate
from invdesign.pipeline.sources import PARTICLE_ATOM_LIMIT, PoolInputs, SourceContext
from invdesign.testing import rock_salt_cell

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PT = EXAMPLES / "Pt_truncoct_2nm.gr"
ZNO = EXAMPLES / "ZnO_wurtzite_1nm.gr"
TRUTH = EXAMPLES / "Pt_truncoct_2nm.xyz"


def _validity(valid: bool) -> Validity:
    return Validity(valid, 2.5, 0.0, (), "" if valid else "atoms too close")


def test_rank_puts_every_invalid_candidate_below_every_valid_one() -> None:
    dimer = Structure([78, 78], [[0.0, 0, 0], [2.7, 0, 0]])
    rws = [0.05, 0.9, 0.01, 0.4, float("nan"), 0.3]
    valid = [False, True, False, True, True, False]
    cands = [Candidate(i, dimer, rw=rw, scale=1.0, validity=_validity(v))
             for i, (rw, v) in enumerate(zip(rws, valid, strict=True))]
    cands[5].rw_refined = 0.001  # refined far below every valid one: still below them
    rank(cands)
    assert [c.index for c in cands] == [3, 1, 4, 5, 2, 0]
    assert [c.rank for c in cands] == [1, 2, 3, 4, 5, 6]


class Truths:
    """A test source: the true Pt particle with one atom moved onto its neighbour (invalid, the
    best fit) and the true particle expanded by 2 % (valid, a worse fit)."""

    name = "truths"
    from_model = False
    method = ""

    def applies(self, inputs: PoolInputs) -> bool:
        return True

    def checkpoint(self, inputs: PoolInputs, loaded: Path) -> Path | None:
        return None

    def candidates(self, context: SourceContext, n: int) -> Iterator[Structure]:
        truth = Structure.from_ase(read(TRUTH))
        clash = truth.positions.copy()
        clash[1] = clash[0] + [0.3, 0.0, 0.0]
        yield Structure(truth.species, clash, info={"source": "truths", "structure_type": "clash"})
        yield Structure(truth.species, truth.positions * 1.02,
                        info={"source": "truths", "structure_type": "expanded"})


def test_invalid_best_fit_ranks_below_a_valid_one_in_a_run(tiny_checkpoint, monkeypatch) -> None:
    monkeypatch.setattr(planning, "SOURCES", (Truths(),))
    result = sample(PT, checkpoint=tiny_checkpoint, n=1)
    first, second = result.candidates
    assert (first.structure_type, first.valid) == ("expanded", True)
    assert (second.structure_type, second.valid) == ("clash", False)
    assert second.rw < first.rw  # the better fit, ranked below
    assert second.validity.reason.startswith("atoms too close: Pt-Pt 0.30 Å")
    assert result.rows()[1]["invalid_reason"] == second.validity.reason


@pytest.mark.slow
def test_report_and_summary_name_the_source_of_every_candidate(tmp_path, tiny_checkpoint) -> None:
    out = tmp_path / "run"
    result = sample(PT, checkpoint=tiny_checkpoint, n=1, out=out)
    with open(out / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(result.candidates)
    assert {(r["source"], r["structure_type"]) for r in rows} >= {
        ("packing", "fcc"), ("packing", "octahedron"), ("library", "dhcp")}
    assert all(r["source"] and r["structure_type"] and r["valid"] in ("True", "False")
               for r in rows)
    lines = table(result).splitlines()
    assert lines[0].split()[-3:] == ["source", "type", "file"]
    for line, row in zip(lines[1:], rows, strict=True):
        assert line.split()[-3:] == [row["source"], row["structure_type"], row["file"]]
    assert f"{result.duplicates} duplicates collapsed" in result.how


def _user_cif(folder: Path) -> Path:
    """A made-up tetragonal ZnO type (no library type matches it) as `folder/tetra_zno.cif`."""
    cell = Structure.from_fractional([30, 8], [[0, 0, 0], [0.5, 0.5, 0.5]],
                                     np.diag([3.0, 3.0, 3.9]))
    folder.mkdir()
    path = folder / "tetra_zno.cif"
    cell.to_ase().write(path, format="cif")
    return path


@pytest.mark.slow
def test_library_folder_adds_user_cifs_to_the_pool(tmp_path, tiny_checkpoint) -> None:
    _user_cif(tmp_path / "mine")
    result = sample(ZNO, checkpoint=tiny_checkpoint, n=1, library=tmp_path / "mine")
    users = [c for c in result.candidates if c.source == "user_cif"]
    assert [c.structure_type for c in users if not c.structure.info.get("cut")] == ["tetra_zno"]
    assert sorted(users[0].structure.species.tolist()) == [8, 30]


@pytest.mark.slow
def test_aflow_prototypes_join_a_pdf_run_only_when_asked(tiny_checkpoint) -> None:
    plain = sample(ZNO, checkpoint=tiny_checkpoint, n=1)
    assert not any(c.source == "aflow" for c in plain.candidates)
    broad = sample(ZNO, checkpoint=tiny_checkpoint, n=1, aflow=True)
    aflow = {c.structure_type for c in broad.candidates if c.source == "aflow"}
    assert aflow and all(t.startswith("aflow_") for t in aflow)
    assert len(broad.candidates) > len(plain.candidates)


@pytest.mark.parametrize(("make", "problem"), [
    (lambda d: None, "--library: structure library folder not found"),
    (lambda d: d.mkdir(), "--library: structure library folder holds no .cif file"),
    (lambda d: (d.mkdir(), (d / "x.cif").write_text("garbage\n")), "--library: cannot read CIF"),
])
def test_bad_library_folder_is_one_line_exit_2_nothing_written(tmp_path, tiny_checkpoint, capsys,
                                                               make, problem) -> None:
    folder = tmp_path / "lib"
    make(folder)
    out = tmp_path / "run"
    code = main(["sample", "--pdf", str(ZNO), "--checkpoint", str(tiny_checkpoint), "--library",
                 str(folder), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"invdesign: error: {folder}") and problem in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == (["lib"] if folder.exists() else [])


def test_cuts_stay_under_the_atom_limit() -> None:
    cell = rock_salt_cell(4.2)
    small = cut_crystal(cell, 12.0)
    assert small is not None and small.kind == "particle" and small.info["cut"] is True
    # a 100 Å sphere of rock salt holds ~47,000 atoms: never cut
    assert PARTICLE_ATOM_LIMIT == 3000 and cut_crystal(cell, 100.0) is None


class Refined:
    """A stand-in for `ForwardAdapter.refine_many`: records what it was given."""

    def __init__(self) -> None:
        self.given: list[int] = []

    def refine_many(self, cands: list[Candidate]) -> None:
        self.given = [c.index for c in cands]


def test_refinement_takes_the_best_crystal_and_the_best_particle() -> None:
    from invdesign.pipeline.pool import refine_best

    dimer = Structure([78, 78], [[0.0, 0, 0], [2.7, 0, 0]])
    cell = Structure([78], [[0.0, 0, 0]], np.eye(3) * 2.7, "unit_cell")
    shapes = [dimer, dimer, dimer, cell, cell, dimer]
    rws = [0.10, 0.11, 0.12, 0.20, 0.15, 0.05]
    valid = [True, True, True, True, True, False]
    cands = [Candidate(i, s, rw=rw, scale=1.0, validity=_validity(v))
             for i, (s, rw, v) in enumerate(zip(shapes, rws, valid, strict=True))]
    forward = Refined()
    chosen, _ = refine_best(cands, forward, 3, None)  # type: ignore[arg-type]
    assert forward.given == [0, 1, 4]  # the best valid crystal replaces the third particle
    assert [c.index for c in chosen] == [0, 1, 4]
    refine_best(cands, forward, 1, None)  # type: ignore[arg-type]
    assert forward.given == [0]
