"""`invdesign sample`: what the model sees (grid coverage, input plot), options against headers,
further patterns (--xrd), refinement and cell files, through the command and the API."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from ase.io import read

import invdesign.generators.mlp  # noqa: F401  (registers 'mlp' without importing every generator)
from invdesign.cli.main import main
from invdesign.core.errors import DataFormatError
from invdesign.core.structure import Structure
from invdesign.core.tasks import TaskSpec
from invdesign.evaluators.base import evaluator_class
from invdesign.io.measured import read_pattern
from invdesign.physics.calculator import Instrument, MeasuredGridCalculator
from invdesign.pipeline import sample
from invdesign.pipeline.forward import pdf_fit_range
from invdesign.pipeline.inputs import coverage, model_inputs
from invdesign.pipeline.sizing import SizeEstimate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PT = EXAMPLES / "Pt_truncoct_2nm.gr"
ZNO = EXAMPLES / "ZnO_wurtzite_1nm.gr"
GRID = np.arange(6000) * 0.01  # the xPDF model grid, 0..59.99 Å
PARTICLE = SizeEstimate(diameter=14.0, bulk=False, nn_distance=2.0)
BULK = SizeEstimate(diameter=50.0, bulk=True, nn_distance=2.0)


def _columns(path: Path, x: np.ndarray, y: np.ndarray, header: str = "") -> Path:
    path.write_text(header + "\n".join(f"{a:.4f} {b:.6g}" for a, b in zip(x, y, strict=True)))
    return path


def _pt_particle(diameter: float = 10.0) -> Structure:
    from invdesign.crystals.packings import lattice_sphere

    atoms = lattice_sphere("fcc", 78, 2.775, diameter)
    return Structure(atoms.numbers, atoms.positions)


# ------------------------------------------------------------------ model grid coverage
def test_coverage_rules_on_hand_made_patterns(tmp_path) -> None:
    r = np.round(np.arange(0.0, 30.0, 0.01), 4)
    short = read_pattern(_columns(tmp_path / "short.gr", r, np.sin(r)))
    note = coverage(short, GRID, PARTICLE)  # a particle's G(r) is 0 beyond it: stated, not silent
    assert "G(r) = 0 from 29.99 Å on" in note and "short.gr" in note
    with pytest.raises(DataFormatError, match="has not died out by 29.99 Å") as info:
        coverage(short, GRID, BULK)
    assert str(info.value).startswith(str(tmp_path / "short.gr")) and "\n" not in str(info.value)
    with pytest.raises(DataFormatError, match="has not died out"):
        coverage(short, GRID, None)
    late = read_pattern(_columns(tmp_path / "late.gr", r[50:], np.sin(r[50:])))
    with pytest.raises(DataFormatError, match=r"0\.5\.\.29\.99 Å does not cover the model grid 0"):
        coverage(late, GRID, PARTICLE)
    full = read_pattern(_columns(tmp_path / "full.gr", np.arange(7000) * 0.01,
                                 np.sin(np.arange(7000) * 0.01)))
    assert coverage(full, GRID, BULK) is None
    q = np.arange(1.0, 8.0, 0.01)
    xrd = read_pattern(_columns(tmp_path / "x.xy", q, 1 + q, "# q_A^-1 I\n"), kind="xrd")
    with pytest.raises(DataFormatError, match="does not cover the model grid 1..29.95"):
        coverage(xrd, np.arange(1.0, 29.96, 0.05), None)


def test_model_input_is_interpolated_and_normalised(tmp_path) -> None:
    r = np.round(np.arange(0.0, 30.0, 0.01), 4)
    g = np.sin(3 * r) * np.exp(-r / 4)
    pattern = read_pattern(_columns(tmp_path / "g.gr", r, g))
    (inp,) = model_inputs({"pdf": pattern}, TaskSpec.parse("xPDF->pos_abs"), PARTICLE).values()
    assert inp.name == "xPDF" and inp.grid.size == 6000 and inp.note
    assert inp.values.min() == 0.0 and inp.values.max() == 1.0
    inside = inp.grid <= 29.99
    x, y = pattern.x, pattern.y  # as read (6 significant digits)
    expected = (np.interp(inp.grid[inside], x, y) - y.min()) / np.ptp(y)
    np.testing.assert_allclose(inp.values[inside], expected, atol=1e-12)
    np.testing.assert_allclose(inp.values[~inside], -y.min() / np.ptp(y), atol=1e-12)


def test_rpoly_raises_the_start_of_the_default_fit_range(tmp_path) -> None:
    r = np.round(np.arange(0.0, 30.0, 0.01), 4)
    text = "\n".join(f"{a:.2f} {np.sin(a):.5f}" for a in r)
    low = tmp_path / "low.gr"
    low.write_text("[PDF]\nrpoly = 0.9\n#### start data\n" + text)
    high = tmp_path / "high.gr"
    high.write_text("[PDF]\nrpoly = 2.2\n#### start data\n" + text)
    assert pdf_fit_range(read_pattern(low), None) == (1.5, 30.0)
    assert pdf_fit_range(read_pattern(high), None) == (2.2, 30.0)
    assert pdf_fit_range(read_pattern(high), (1.0, 20.0)) == (1.0, 20.0)  # an option wins


# ------------------------------------------------------------------ through the command
@pytest.mark.parametrize("rows, problem", [
    ([f"{0.1 * i:.1f} {np.inf if i == 12 else 1.0}" for i in range(30)], "NaN or inf"),
    ([f"{0.1 * i:.1f} 1.0" for i in range(20)] + ["1.9 2.0"], "repeated"),
    ([f"{5 + 0.01 * i:.2f} {np.sin(i / 10):.4f}" for i in range(2000)],
     "cannot read the particle size off G(r)"),  # starts at 5 Å: no first peak in 1.5-4 Å
])
@pytest.mark.parametrize("existing", [False, True])
def test_malformed_file_leaves_out_absent_or_unchanged(tmp_path, tiny_checkpoint, capsys, rows,
                                                       problem, existing) -> None:
    bad = tmp_path / "bad.gr"
    bad.write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    if existing:
        out.mkdir()
        (out / "mine.txt").write_text("keep")
    code = main(["sample", "--pdf", str(bad), "--checkpoint", str(tiny_checkpoint), "--out",
                 str(out), "--n", "2"] + (["--force"] if existing else []))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"invdesign: error: {bad}") and problem in err
    assert err.count("\n") == 1 and "Traceback" not in err
    if existing:
        assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    else:
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == (["bad.gr", "run"] if existing
                                                           else ["bad.gr"])


def test_range_the_model_grid_needs_leaves_the_model_out_or_is_refused(
        tmp_path, tiny_checkpoint, capsys, quick_pool) -> None:
    r = np.round(np.arange(0.5, 20.0, 0.01), 2)  # a small Pt particle, but r starts at 0.5 Å
    g = MeasuredGridCalculator(Instrument(qmax=24.0), r)([_pt_particle()])[0].numpy()
    path = _columns(tmp_path / "late.gr", r, g, "[PDF]\ncomposition = Pt\nqmax = 24\n"
                    "#### start data\n")
    problem = (f"{path}: r range 0.5..19.99 Å does not cover the model grid 0..59.99 Å (no zero "
               "padding; measure or crop to match)")
    out = tmp_path / "run"
    code = main(["sample", "--pdf", str(path), "--checkpoint", str(tiny_checkpoint), "--n", "2",
                 "--out", str(out)])
    err = capsys.readouterr().err
    # the packings answer; the model is left out, and the progress and the report say why
    assert code == 0 and f"tiny not sampled: {problem}" in err
    how = json.loads((out / "summary.json").read_text())["how"]
    assert how.startswith("2 candidates, seed 0, one pool from 0 samples of tiny, 2 packing "
                          "structures; 0 duplicates collapsed. Left out: tiny not sampled: ")
    # without a composition only the model could answer: refused in one line, nothing written
    bare = _columns(tmp_path / "bare.gr", r, g, "[PDF]\nqmax = 24\n#### start data\n")
    code = main(["sample", "--pdf", str(bare), "--checkpoint", str(tiny_checkpoint), "--n", "2",
                 "--out", str(tmp_path / "run2")])
    err = capsys.readouterr().err
    last = err.splitlines()[-1]  # after the progress lines: one error line
    assert code == 2 and last == f"invdesign: error: {problem.replace('late.gr', 'bare.gr')}"
    assert "Traceback" not in err and not (tmp_path / "run2").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare.gr", "late.gr", "run"]


def test_options_override_the_header_and_the_command_says_so(tmp_path, tiny_checkpoint,
                                                              capsys, quick_pool) -> None:
    out = tmp_path / "run"
    code = main(["sample", "--pdf", str(PT), "--checkpoint", str(tiny_checkpoint), "--n", "1",
                 "--qdamp", "0.03", "--qmax", "24", "--composition", "Pt140 S60 C300",
                 "--metal-core", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0
    assert "pdf.qdamp: 0.03 (option)" in err and "pdf.qmax: 24 (option)" in err
    assert "pdf.qmin: 1 (header)" in err and "qdamp not in the header" not in err
    assert "composition: Pt1 (option, Pt_truncoct_2nm.gr)" in err  # ligands dropped
    assert "pdf.header: rmin = 0, rmax = 30, rstep = 0.01, rpoly = 0.9" in err
    taken = json.loads((out / "summary.json").read_text())["taken"]
    assert taken["pdf.qdamp"] == "0.03 (option)"
    # the fit file carries the qdamp that was used
    assert "qdamp=0.03" in (out / "fit_rank1.fgr").read_text()


def test_xrd_beside_the_pdf_adds_its_scores(tmp_path, tiny_checkpoint, capsys,
                                            quick_pool) -> None:
    truth = Structure.from_ase(read(EXAMPLES / "Pt_truncoct_2nm.xyz"))
    q = np.round(np.arange(1.0, 10.0, 0.02), 4)
    i = MeasuredGridCalculator(Instrument(function="iq", qmin=1.0, qmax=10.0), q)([truth])[0]
    xrd = _columns(tmp_path / "pt.xy", q, i.numpy(), "# q_A^-1 I\n")
    out = tmp_path / "run"
    code = main(["sample", "--pdf", str(PT), "--xrd", str(xrd), "--checkpoint",
                 str(tiny_checkpoint), "--n", "2", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "xrd.qmax: 9.98 (data)" in err
    with open(out / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2
    # Each candidate's XRD scores, recomputed here from its written file: its I(q) on the
    # measured q grid, least-squares scale, Rw and Pearson r in float64 numpy. Measured on
    # 2026-12-02: agreement to 2e-8 (Pearson) and 1e-9 (Rw); the pipeline computes in float32 from
    # the in-memory structure, the file holds 8 decimals: 1e-6 leaves room for both.
    measured = read_pattern(xrd, kind="xrd")
    calculator = MeasuredGridCalculator(
        Instrument(function="iq", qmin=measured.qmin, qmax=measured.qmax,
                   qdamp=measured.qdamp, biso=measured.biso), measured.x)

    def scores(structure: Structure) -> tuple[float, float]:
        calc = calculator([structure])[0].double().numpy()
        scale = measured.y @ calc / (calc @ calc)
        resid = measured.y - scale * calc
        return (float(np.sqrt(resid @ resid / (measured.y @ measured.y))),
                float(np.corrcoef(measured.y, calc)[0, 1]))

    for row in rows:
        rw_xrd, r_xrd = scores(Structure.from_ase(read(out / row["file"])))
        assert float(row["xrd_rw"]) == pytest.approx(rw_xrd, abs=1e-6), row["file"]
        assert float(row["xrd_pearson"]) == pytest.approx(r_xrd, abs=1e-6), row["file"]
    # The truth against its own XRD, through the pipeline's evaluator: measured 2026-12-02
    # Rw 1.45e-6 and Pearson 1 - 6e-8 (the file holds 6 significant digits, the sum is float32).
    (own,) = evaluator_class("forward")(measured).evaluate([truth])
    assert own["rw"] < 1e-5 and own["pearson"] > 1 - 1e-6 and own["scale"] == pytest.approx(1.0)
    # A wrong structure (the truth expanded by 3 %) scores worse than every candidate: measured
    # Rw 0.385 and Pearson 0.857, against 0.042-0.057 and 0.9975-0.9986 for the two fcc packings.
    wrong_rw, wrong_r = scores(Structure(truth.species, truth.positions * 1.03))
    assert wrong_rw > max(float(r["xrd_rw"]) for r in rows) + 0.2
    assert wrong_r < min(float(r["xrd_pearson"]) for r in rows) - 0.1
    tth = tmp_path / "tth.xy"
    tth.write_text("# 2theta I\n" + "\n".join(f"{5 + 0.1 * k:.1f} {k}" for k in range(40)))
    code = main(["sample", "--pdf", str(PT), "--xrd", str(tth), "--checkpoint",
                 str(tiny_checkpoint), "--out", str(tmp_path / "run2")])
    err = capsys.readouterr().err
    assert code == 2 and "no wavelength" in err and str(tth) in err
    assert not (tmp_path / "run2").exists()


# ------------------------------------------------------------------ outputs
@pytest.fixture
def two_types(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool of the ZnO runs: the particle model and the wurtzite and zinc-blende types."""
    import invdesign.pipeline.run as run
    from invdesign.crystals.library import load_library
    from invdesign.pipeline import planning
    from invdesign.pipeline.sources import GeneratorSamples, LibraryTypes

    types = [t for t in load_library() if t.name in ("wurtzite", "zincblende")]
    monkeypatch.setattr(run, "load_library", lambda extra=None: types)
    monkeypatch.setattr(planning, "SOURCES", (GeneratorSamples(), LibraryTypes()))


@pytest.mark.slow
def test_crystals_cuts_and_their_refinement_are_written(tmp_path, tiny_checkpoint,
                                                        two_types) -> None:
    out = tmp_path / "run"
    result = sample(read_pattern(ZNO), checkpoint=tiny_checkpoint, n=3, out=out, refine=True,
                    refine_top=3)
    names = {p.name for p in out.iterdir()}
    assert (out / "input_pdf.png").read_bytes()[:4] == b"\x89PNG"
    assert "G(r) = 0 from 30 Å on" in result.taken["pdf.model_input"]
    kinds = sorted((c.source, c.structure_type, c.is_crystal) for c in result.candidates)
    assert kinds == [("generator", "generator", False)] * 3 + [
        ("library", "wurtzite", False), ("library", "wurtzite", True),
        ("library", "zincblende", False), ("library", "zincblende", True)]
    # crystals are written as cells; the discrete cuts (a ~14 Å particle: under 30 Å) with the
    # cell they were cut from
    for cand in result.candidates:
        stem = f"candidate_{cand.index:03d}"
        if cand.is_crystal:
            assert {f"{stem}.cif", f"{stem}.xyz", f"{stem}_refined.cif"} <= names
            assert read(out / f"{stem}.cif").pbc.all()
        elif cand.source == "library":
            assert {f"{stem}.xyz", f"{stem}_cell.cif", f"{stem}_cell.xyz"} <= names
            cell = read(out / f"{stem}_cell.cif")
            assert cell.pbc.all() and set(cell.get_chemical_symbols()) == {"Zn", "O"}
            particle = read(out / f"{stem}.xyz")
            assert not particle.pbc.any() and len(particle) == cand.structure.n_atoms
        else:
            assert not any(n.startswith(f"{stem}_cell") for n in names)  # sampled: no cell
    # the 3 best by screen Rw were refined: the wurtzite cut and both crystals (measured
    # 2026-12-02: screen Rw 0.105, 0.189, 0.455); a crystal's refined parameters are PDFfit2's
    refined = [c for c in result.candidates if c.rw_refined is not None]
    assert sorted((c.structure_type, c.is_crystal) for c in refined) == [
        ("wurtzite", False), ("wurtzite", True), ("zincblende", True)]
    crystal = next(c for c in refined if c.is_crystal and c.structure_type == "wurtzite")
    assert {"a", "c", "delta2", "qdamp", "spdiameter", "uiso_Zn", "uiso_O"} <= set(crystal.params)
    assert crystal.rw_refined <= crystal.rw and crystal.refined.is_periodic
    assert result.best.structure_type == "wurtzite"


def test_refine_fills_refined_columns_and_writes_refined_structures(tmp_path, tiny_checkpoint,
                                                                    monkeypatch,
                                                                    quick_pool) -> None:
    import invdesign.pipeline.forward as forward

    monkeypatch.setattr(forward, "REFINE_STEPS", 3)  # few steps, and no wall-time cap to hit on
    monkeypatch.setattr(forward, "REFINE_SECONDS", 1e6)  # a loaded machine: deterministic
    out = tmp_path / "run"
    result = sample(read_pattern(PT), checkpoint=tiny_checkpoint, n=3, refine=True,
                    refine_top=2, out=out)
    refined = [c for c in result.candidates if c.rw_refined is not None]
    assert len(refined) == 2
    stepped = [c for c in refined if c.params["refine_steps"] > 0]
    assert len(stepped) == 1  # the scans of both, then gradient steps for the better one
    assert stepped[0].params["refine_steps"] == 3
    (scanned,) = [c for c in refined if c is not stepped[0]]
    assert scanned.params["refine_steps"] == 0 and stepped[0].rank < scanned.rank
    for cand in refined:
        assert cand.rw_refined <= cand.rw + 1e-9 and cand.refined is not None
        assert {"lattice_scale", "biso", "qdamp", "refine_steps"} <= set(cand.params)
        assert (out / f"candidate_{cand.index:03d}_refined.xyz").is_file()
    with open(out / "summary.csv") as fh:
        rows = {int(r["rank"]): r for r in csv.DictReader(fh)}
    for cand in refined:
        row = rows[cand.rank]
        assert float(row["rw_refined"]) == pytest.approx(cand.rw_refined, abs=1e-6)
        assert float(row["biso"]) == pytest.approx(cand.params["biso"])
    (other,) = [rows[c.rank] for c in result.candidates if c.rw_refined is None]
    assert other["rw_refined"] == "" and other["biso"] == ""
    assert "particles through DebyeCalculator" in result.how
    best = result.best
    assert best.rw_refined is not None
    fgr = read_pattern(out / "fit_rank1.fgr")
    assert fgr.qdamp == pytest.approx(best.params["qdamp"], rel=1e-5)


def test_species_from_the_model_when_neither_option_nor_header_gives_them(tmp_path,
                                                                          tiny_checkpoint,
                                                                          quick_pool):
    text = ZNO.read_text()
    assert "composition = ZnO" in text
    plain = tmp_path / "no_composition.gr"
    plain.write_text(text.replace("composition = ZnO\n", ""))
    result = sample(read_pattern(plain), checkpoint=tiny_checkpoint, n=2)
    assert result.taken["composition"] == "from the model (model)"
    assert "Species: from the model (model)." in result.how
    assert [c.structure.info["source"] for c in result.candidates] == ["generator"] * 2
    vocab = {8, 30, 78}  # the tiny model's species
    assert all(set(c.structure.species.tolist()) <= vocab for c in result.candidates)
