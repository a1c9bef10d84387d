"""`sample --xrd` without a PDF: crystal candidates ranked by powder-fit Rwp, written as CIF with
their fitted lattice; a PDF model refused for an XRD file; with a PDF, `xrd_rwp` for crystals."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice
from pymatgen.io.cif import CifParser

from invdesign.cli.main import main
from invdesign.core.errors import DataFormatError, InvdesignError
from invdesign.core.structure import Structure
from invdesign.core.tasks import TaskSpec
from invdesign.crystals.dedup import same_structure
from invdesign.crystals.library import composition_of, typed_cells
from invdesign.evaluators.forward.powder_pattern import Profile, powder_pattern, reflections
from invdesign.generators.base import build_generator
from invdesign.generators.checkpoint import save_checkpoint
from invdesign.io.measured import read_pattern
from invdesign.pipeline import sample
from invdesign.pipeline.report import report
from invdesign.pipeline.result import Candidate
from invdesign.pipeline.sources import lattice_cell
from invdesign.pipeline.xrd import extra_rwp

CU = 1.5406
STRAIN = 1.02


def _cell(name: str):
    return next(t.cell for t in typed_cells(composition_of("TiO2")) if t.structure_type == name)


def _write_xy(path: Path, cell, tth_min: float, size: float) -> Path:
    """The noise-free powder pattern of `cell` (Cu Kα1, 2θ from `tth_min` to 90°, crystallites
    of `size` Å) on a flat background, as a two-column .xy stating wavelength and unit."""
    refl = reflections(cell, CU / (2 * math.sin(math.radians(47.0))))
    tth = np.arange(tth_min, 90.0, 0.04)
    y = powder_pattern(refl, refl.lattice, tth, (CU,), Profile(w=0.004, size=size))
    path.write_text("# wavelength = 1.5406\n# x_unit = 2theta_deg\n" + "\n".join(
        f"{a:.2f} {b:.6g}" for a, b in zip(tth, 5000 * y / y.max() + 100, strict=True)))
    return path


@pytest.fixture(scope="module")
def rutile_xy(tmp_path_factory) -> tuple[Path, np.ndarray, float]:
    """Rutile TiO2 with its lattice stretched 2 %, simulated with `powder_pattern` (200 Å
    crystallites, Cu Kα1), Poisson counts on a flat background, as a two-column .xy whose header
    states the wavelength and the 2-theta unit. Returns the file, the stretched a, b, c and the
    Rwp of the noise-free curve against the counts (weights 1 / counts, as the fit's)."""
    cell = _cell("rutile")
    refl = reflections(cell, CU / (2 * math.sin(math.radians(47.0))))
    lattice = refl.lattice.copy()
    lattice[:3] *= STRAIN
    tth = np.arange(20.0, 90.0, 0.04)
    y = powder_pattern(refl, lattice, tth, (CU,), Profile(w=0.004, size=200.0))
    clean = 5000 * y / y.max() + 100
    counts = np.random.default_rng(0).poisson(clean).astype(float)
    truth_rwp = math.sqrt(np.sum((counts - clean) ** 2 / counts) / np.sum(counts))
    path = tmp_path_factory.mktemp("xrd") / "rutile.xy"
    path.write_text("# wavelength = 1.5406\n# x_unit = 2theta_deg\n"
                    + "\n".join(f"{a:.2f} {b:g}" for a, b in zip(tth, counts, strict=True)))
    return path, lattice[:3], truth_rwp


def test_rutile_pattern_ranks_rutile_first_and_writes_its_fitted_cif(rutile_xy, tmp_path):
    path, abc, truth_rwp = rutile_xy
    out = tmp_path / "run"
    result = sample({"xrd": path}, composition="TiO2", refine=True, refine_top=2, out=out)
    best = result.best
    assert best.structure_type == "rutile" and best.source == "library"
    assert any(c.source == "aflow" for c in result.candidates)  # AFLOW prototypes by default
    assert best.rank == 1 and best.rw_refined is not None
    # the refined fit reaches the noise of the counts: the true curve's Rwp (its model family
    # holds the truth; the fit's background and profile may absorb a little more noise)
    assert 0.97 * truth_rwp < best.rw_refined <= truth_rwp + 1e-4
    # every other structure (all screened, one more refined) fits worse; a lower-symmetry
    # description of rutile (AFLOW's CaCl2 type) may fit as well, and ranks behind rutile
    assert all(c.scores["rwp"] > 0.3 for c in result.candidates[1:]
               if not same_structure(c.final, best.final))
    assert result.metric == "Rwp"
    assert not any(c.structure.kind == "particle" for c in result.candidates)
    # the refined cell is written as CIF with its fitted lattice (the stretched one)
    cif = out / f"candidate_{best.index:03d}_refined.cif"
    written = CifParser(str(cif)).parse_structures(primitive=False)[0]
    assert written.lattice.abc == pytest.approx(tuple(abc), rel=1e-3)
    with open(out / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(result.candidates)
    assert rows[0]["structure_type"] == "rutile" and rows[0]["source"] == "library"
    assert rows[0]["file"] == f"candidate_{best.index:03d}.cif"
    assert float(rows[0]["rwp"]) == pytest.approx(best.rw_refined)
    assert float(rows[0]["a"]) == pytest.approx(abc[0], rel=1e-3)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metric"] == "Rwp" and summary["model"] == "known structures"
    # the shipped XRD model's grid starts at q 1.1 Å^-1, the pattern at 1.42: left out, said
    assert "mlp-xrd_lab-unit_cell not sampled" in result.how
    assert (out / "fit.png").stat().st_size > 0
    assert (out / f"candidate_{result.candidates[1].index:03d}.cif").is_file()
    text = report(result, taken=False)
    assert "rwp_screen  rwp_refined" in text and "no particle candidates" in text
    assert "Hamilton's R-ratio test" in result.how


def test_pdf_model_for_an_xrd_file_is_refused_naming_the_model_kind(rutile_xy, tmp_path, capsys):
    path = rutile_xy[0]
    out = tmp_path / "run"
    code = main(["sample", "--xrd", str(path), "--composition", "TiO2", "--model",
                 "mlp-xpdf-pos_abs", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == ["invdesign: error: --model mlp-xpdf-pos_abs (mlp-xpdf-pos_abs) is a PDF model "
                   "(task xPDF->pos_abs); a --xrd file needs an XRD (xrd->... or xrd_lab->...) "
                   "model: leave out --model to use mlp-xrd_lab-unit_cell"]
    assert not out.exists()


def test_other_kind_or_particle_model_for_an_xrd_run_is_refused(rutile_xy, tmp_path):
    """The SAXS model (another kind) and an XRD particle model (an untrained xrd_lab->pos_abs MLP
    saved here) are refused before anything is written."""
    torch.manual_seed(0)
    gen = build_generator("mlp", TaskSpec.parse("xrd_lab->pos_abs"), hidden=16, aux_hidden=16,
                          species_vocab=[8, 22])
    particle = save_checkpoint(tmp_path / "xrd-particle", gen)
    with pytest.raises(InvdesignError, match=r"is a SAXS model \(task saxs_lab->pos_abs\); a "
                                             r"--xrd file needs an XRD"):
        sample({"xrd": rutile_xy[0]}, composition="TiO2", model="mlp-saxs_lab-pos_abs",
               out=tmp_path / "run")
    with pytest.raises(InvdesignError, match=r"makes particles; a --xrd run ranks crystals: give "
                                             "a unit-cell model"):
        sample({"xrd": rutile_xy[0]}, composition="TiO2", checkpoint=particle,
               out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_xrd_model_asked_for_is_refused_when_the_data_miss_its_grid(rutile_xy, tmp_path):
    """The pattern starts at q 1.42 Å^-1 (2θ 20° with Cu Kα1): the XRD model's grid starts at
    1.1. Asked for by name it is refused naming the file; as the default it is left out with a
    note (`test_rutile_pattern_ranks_rutile_first_and_writes_its_fitted_cif`)."""
    with pytest.raises(DataFormatError, match=r"rutile\.xy: .*1\.1"):
        sample({"xrd": rutile_xy[0]}, composition="TiO2", model="mlp-xrd_lab-unit_cell",
               out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_xrd_model_samples_join_the_pool(tmp_path):
    """A TiO2 anatase pattern from 2θ 10° (q 0.71 Å^-1) covers the XRD model's grid: the shipped
    model's unit cells are screened with the library's, named in the summary with its hash."""
    path = _write_xy(tmp_path / "anatase.xy", _cell("anatase"), 10.0, 200.0)
    out = tmp_path / "run"
    result = sample({"xrd": path}, composition="TiO2", n=4, aflow=False, energies=False,
                    out=out)
    sampled = [c for c in result.candidates if c.source == "unit_cell_model"]
    assert 1 <= len(sampled) <= 4
    assert all(c.structure.kind == "unit_cell" and c.crystal is not None for c in sampled)
    assert result.best.structure_type == "anatase"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "mlp-xrd_lab-unit_cell" and len(summary["checkpoint_hash"]) == 64
    assert "samples of mlp-xrd_lab-unit_cell" in result.how
    assert "smoothed to the model's resolution" in result.how


def test_xrd_without_a_composition_is_refused(rutile_xy):
    path = rutile_xy[0]
    with pytest.raises(InvdesignError, match="give --composition"):
        sample({"xrd": path})


def test_pdf_run_crystals_get_the_xrd_rwp(rutile_xy):
    path, _, truth_rwp = rutile_xy
    cands = [Candidate(index=i, structure=_cell(name), rw=0.5, scale=1.0)
             for i, name in enumerate(("anatase", "rutile"))]
    assert extra_rwp(cands, read_pattern(path, kind="xrd"), top=1) == 1
    assert "xrd_rwp" in cands[0].scores and "xrd_rwp" not in cands[1].scores
    assert extra_rwp(cands, read_pattern(path, kind="xrd"), top=2) == 2
    assert cands[1].scores["xrd_rwp"] <= truth_rwp + 1e-4 and cands[0].scores["xrd_rwp"] > 0.3


def test_metal_pattern_ranks_its_packing_first(tmp_path):
    """A Pt fcc pattern (nn 2.775 Å) ranks fcc first among the library's and the packings'
    lattices, its screened cell at the pattern's lattice constant."""
    path = _write_xy(tmp_path / "pt.xy", lattice_cell("fcc", 78, 2.775), 20.0, 100.0)
    result = sample({"xrd": path}, composition="Pt", aflow=False)
    assert result.best.structure_type == "fcc"
    assert {c.structure_type for c in result.candidates} >= {"fcc", "hcp", "bcc"}
    assert {c.source for c in result.candidates} <= {"library", "packing", "unit_cell_model"}
    assert result.best.final.cell[0, 0] == pytest.approx(2.775 * math.sqrt(2.0), rel=1e-3)


def test_a_cell_the_screen_misses_is_refined_from_its_indexed_lattice(tmp_path):
    """Columbite TiO2 stretched 20 % along a and shrunk 16 % along b: beyond the screen's scans
    from the radii-scaled cell, so without indexing another type is the one refined; its peak
    positions index the columbite cell, which is then refined from there and ranks first."""
    true = _cell("columbite_tio2").to_pymatgen()
    a, b, c, alpha, beta, gamma = true.lattice.parameters
    true.lattice = Lattice.from_parameters(1.2 * a, 0.84 * b, c, alpha, beta, gamma)
    path = _write_xy(tmp_path / "columbite.xy", Structure.from_pymatgen(true), 20.0, 300.0)
    lines: list[str] = []
    result = sample({"xrd": path}, composition="TiO2", aflow=False, refine=True, refine_top=1,
                    energies=False, progress=lines.append)
    best = result.best
    # its screen from the indexed cell is the best screen; the two most significantly indexed
    # cells of the rest are refined from their indexed cells too, and the progress says so
    assert best.rw == min(c.rw for c in result.candidates)
    assert sum("from its indexed cell (significance" in line for line in lines) == 2
    assert best.structure_type == "columbite_tio2" and best.rw_refined < 0.05
    assert best.scores["index_significance"] > 10
    assert sorted(best.final.to_pymatgen().lattice.abc) == pytest.approx(
        sorted(true.lattice.abc), rel=1e-3)
    assert "index the pattern's peak positions significantly" in result.how
