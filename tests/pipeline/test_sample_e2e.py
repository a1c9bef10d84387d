"""`invdesign sample` end to end on the shipped examples: outputs, seeds, refusals, atomicity."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import invdesign.generators.mlp  # noqa: F401  (registers 'mlp' without importing every generator)
from invdesign.cli.main import main
from invdesign.core.errors import InvdesignError
from invdesign.io.measured import read_pattern
from invdesign.pipeline import sample

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PT = EXAMPLES / "Pt_truncoct_2nm.gr"  # 260 atoms: beyond the particle model's limit
ZNO = EXAMPLES / "ZnO_wurtzite_1nm.gr"  # small oxide: sampled by the particle model
REQUIRED = ["rank", "rw", "rw_refined", "scale", "n_atoms", "composition", "nn_distance",
            "min_distance", "valid", "model", "checkpoint_hash", "seed", "versions"]


def test_sample_writes_all_outputs(tmp_path, tiny_checkpoint, capsys, quick_pool) -> None:
    out = tmp_path / "run"
    code = main(["sample", "--pdf", str(PT), "--checkpoint", str(tiny_checkpoint), "--n", "4",
                 "--out", str(out)])
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    for expected in ["candidate_000.xyz", "candidate_003.xyz", "summary.csv", "summary.json",
                     "fit.png", "fit_rank1.fgr", "input_pdf.png"]:
        assert expected in names
    with open(out / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and all(col in rows[0] for col in REQUIRED)
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4]
    scans = [float(r["rw_scan"]) for r in rows]  # ranked by the screen's Rw (biso, qdamp fitted)
    assert scans == sorted(scans)
    assert all(float(r["rw_scan"]) <= float(r["rw"]) for r in rows)
    assert all(r["rw_refined"] == "" for r in rows)  # no --refine
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 0 and "one pool from 4 packing structures;" in summary["how"]
    assert summary["taken"]["pdf.qmax"] == "25 (header)"
    assert (out / "fit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The .fgr reads back (pdfgui layout): Gcalc + Gdiff is the measured G(r) on the fit range.
    fgr = read_pattern(out / "fit_rank1.fgr")
    data = read_pattern(PT)
    on_range = (data.x >= fgr.x[0] - 1e-9) & (data.x <= fgr.x[-1] + 1e-9)
    assert np.allclose(fgr.y, data.y[on_range], atol=2e-5 * np.abs(data.y).max())
    printed = capsys.readouterr()
    assert "pdf.qdamp: 0.04 (default)" in printed.err  # what was taken from where
    assert printed.err.count("qdamp not in the header; using 0.04") == 1  # the warning, once
    assert "composition: Pt1 (header" in printed.err
    assert printed.out.splitlines()[3].split()[0] == "rank"  # the ranked table


def test_same_seed_same_candidates(tiny_checkpoint, quick_pool) -> None:
    pattern = read_pattern(ZNO)

    def run(seed: int):
        result = sample({"pdf": pattern}, checkpoint=tiny_checkpoint, n=3, seed=seed)
        assert result.how.startswith(f"3 candidates, seed {seed}, one pool from 3 samples of "
                                     "tiny; 0 duplicates collapsed.")
        return sorted((c.index, c.structure.info["source"], c.structure.species.tolist(),
                       c.structure.positions.tobytes()) for c in result.candidates)

    first = run(0)
    assert run(0) == first
    assert run(1) != first


def test_existing_out_without_force_fails_and_keeps_it(tmp_path, tiny_checkpoint, capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    code = main(["sample", "--pdf", str(PT), "--checkpoint", str(tiny_checkpoint), "--n", "1",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "--force" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]


@pytest.mark.parametrize("content, problem", [
    ("# only words\nr G\nno numbers here\n", "numeric"),
    ("\n".join(f"{0.1 * i:.1f} {np.nan if i == 12 else 1.0}" for i in range(30)), "NaN"),
    ("\n".join(f"{0.1 * (i if i != 15 else 3):.1f} 1.0" for i in range(30)), "increasing"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, tiny_checkpoint, capsys, content,
                                         problem) -> None:
    bad = tmp_path / "bad.gr"
    bad.write_text(content)
    out = tmp_path / "run"
    code = main(["sample", "--pdf", str(bad), "--checkpoint", str(tiny_checkpoint), "--out",
                 str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and problem in err and "bad.gr" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_error_mid_run_leaves_no_partial_output(tmp_path, tiny_checkpoint, quick_pool) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "old.txt").write_text("old")
    seen: list[str] = []

    def fail_after_first_candidate(line: str) -> None:
        seen.append(line)
        if line.startswith("candidate 1/"):  # written the moment it exists, out of sight
            assert len(list(tmp_path.glob(".run.*.partial/candidate_000.xyz"))) == 1
        if line.startswith("candidate 2/"):
            raise InvdesignError("stopped on purpose")

    with pytest.raises(InvdesignError, match="on purpose"):
        sample(read_pattern(PT), checkpoint=tiny_checkpoint, n=3, out=out, force=True,
               progress=fail_after_first_candidate)
    assert any(line.startswith("candidate 1/") for line in seen)  # a candidate had been written
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.slow
def test_small_metal_particle_pool_holds_every_source(tmp_path, tiny_checkpoint) -> None:
    from collections import Counter

    from invdesign.core.structure import Structure
    from invdesign.crystals.packings import lattice_sphere
    from invdesign.physics.calculator import Instrument, MeasuredGridCalculator

    atoms = lattice_sphere("fcc", 78, 2.775, 10.0)  # 43 atoms: within the model's 200
    r = np.round(np.arange(0.0, 20.0, 0.01), 2)
    g = MeasuredGridCalculator(Instrument(qmax=24.0), r)([Structure(atoms.numbers,
                                                                    atoms.positions)])[0]
    plain = tmp_path / "pt_small.dat"  # plain two columns, no header: composition as argument
    plain.write_text("\n".join(f"{a:.2f} {b:.6g}" for a, b in zip(r, g.numpy(), strict=True)))
    result = sample(read_pattern(plain, qmax=24.0), composition="Pt",
                    checkpoint=tiny_checkpoint, n=4)
    # Measured 2026-12-02 (26-50 s wall on 2 busy cores): 4 model samples, 4 unit cells of the
    # shipped unit-cell model (1 duplicate), 3 lattices + 17 packing particles (3 duplicates,
    # e.g. a sphere that is a cuboctahedron), 8 library types of which 3 repeat the packings'
    # lattices, and the 3 best library crystals cut to discrete particles: 32 candidates.
    kinds = Counter((c.source, c.is_crystal) for c in result.candidates)
    assert kinds == {("generator", False): 4, ("unit_cell_model", True): 3, ("packing", True): 3,
                     ("packing", False): 14, ("library", True): 5, ("library", False): 3}
    assert "one pool from 4 samples of tiny, 4 samples of mlp-xpdf-unit_cell, 20 packing " \
           "structures, 8 library structures; 7 duplicates collapsed." in result.how
    assert result.taken["composition"] == "Pt1 (argument)"
    best = result.best
    # the truth itself is among the packings: the 43-atom fcc sphere (Rw 1e-4, float32 sums)
    assert (best.source, best.structure_type, best.structure.n_atoms) == ("packing", "fcc", 43)
    assert best.rw < 1e-3


def test_unavailable_device_is_a_one_line_error(tmp_path, tiny_checkpoint, capsys) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here, so --device cuda is not an error")
    code = main(["sample", "--pdf", str(PT), "--checkpoint", str(tiny_checkpoint), "--device",
                 "cuda", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "CUDA is not available" in err
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def tiny_diffusion_checkpoint(tmp_path_factory) -> Path:
    """An untrained small xPDF -> pos_abs diffusion checkpoint (pipeline plumbing only)."""
    import invdesign.generators.diffusion  # noqa: F401  (registers 'diffusion')
    from invdesign.core.tasks import TaskSpec
    from invdesign.generators.base import build_generator
    from invdesign.generators.checkpoint import save_checkpoint

    torch.manual_seed(0)
    gen = build_generator("diffusion", TaskSpec.parse("xPDF->pos_abs"), cond_dim=16,
                          species_dim=8, time_dim=16, scalar_dim=8, vector_dim=4, n_layers=1,
                          radial_hidden=16, n_radial=8, num_train_timesteps=50, k_neighbors=4,
                          species_vocab=[8, 30], sampler="ddpm", sampling_steps=20)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny_diffusion", gen)


def test_sampler_and_steps_reach_a_diffusion_model(tmp_path, tiny_diffusion_checkpoint,
                                                   quick_pool) -> None:
    out = tmp_path / "run"
    code = main(["sample", "--pdf", str(ZNO), "--checkpoint", str(tiny_diffusion_checkpoint),
                 "--n", "2", "--sampler", "ddim", "--steps", "3", "--out", str(out)])
    assert code == 0
    result = sample(ZNO, checkpoint=tiny_diffusion_checkpoint, n=2, sampler="ddim", steps=3)
    infos = [c.structure.info for c in result.candidates
             if c.structure.info["source"] == "generator"]
    assert infos and all(i["sampler"] == "ddim" and i["steps"] == 3 for i in infos)
    default = sample(ZNO, checkpoint=tiny_diffusion_checkpoint, n=2)
    infos = [c.structure.info for c in default.candidates
             if c.structure.info["source"] == "generator"]
    assert infos and all(i["sampler"] == "ddpm" and i["steps"] == 20 for i in infos)


def test_guidance_options_reach_a_diffusion_model(tmp_path, tiny_diffusion_checkpoint,
                                                  quick_pool) -> None:
    """`--guidance-scale/--guidance-start` (issue 27: guidance in `invdesign sample`) reach the
    sampler: the generator's samples say they were guided, with the asked scale and start."""
    out = tmp_path / "run"
    code = main(["sample", "--pdf", str(ZNO), "--checkpoint", str(tiny_diffusion_checkpoint),
                 "--n", "2", "--steps", "3", "--guidance-scale", "0.5", "--guidance-start", "0.6",
                 "--out", str(out)])
    assert code == 0
    result = sample(ZNO, checkpoint=tiny_diffusion_checkpoint, n=2, steps=3,
                    guidance_scale=0.5, guidance_start=0.6)
    infos = [c.structure.info for c in result.candidates
             if c.structure.info["source"] == "generator"]
    assert infos and all(i["guidance_scale"] == 0.5 and i["guidance_start"] == 0.6
                         for i in infos)
    plain = sample(ZNO, checkpoint=tiny_diffusion_checkpoint, n=2, steps=3)
    assert all("guidance_scale" not in c.structure.info for c in plain.candidates)


def test_resampling_options_reach_a_diffusion_model(tmp_path, tiny_diffusion_checkpoint,
                                                    quick_pool) -> None:
    """`--resample-every/--resample-temperature` reach the sampler with guidance on."""
    out = tmp_path / "run"
    code = main(["sample", "--pdf", str(ZNO), "--checkpoint", str(tiny_diffusion_checkpoint),
                 "--n", "2", "--steps", "3", "--guidance-scale", "0.5", "--guidance-start", "0.3",
                 "--resample-every", "1", "--resample-temperature", "0.1", "--out", str(out)])
    assert code == 0
    result = sample(ZNO, checkpoint=tiny_diffusion_checkpoint, n=2, steps=3, guidance_scale=0.5,
                    guidance_start=0.3, resample_every=1, resample_temperature=0.1)
    infos = [c.structure.info for c in result.candidates
             if c.structure.info["source"] == "generator"]
    assert infos and all(i["resample_every"] == 1 and i["resample_temperature"] == 0.1
                         for i in infos)


@pytest.mark.parametrize(("options", "message"), [
    (["--guidance-scale", "-1"], "--guidance-scale = -1 is outside [0, inf]"),
    (["--guidance-start", "1.5"], "--guidance-start = 1.5 is outside [0, 1]"),
    (["--resample-every", "-2"], "--resample-every = -2 is below 0"),
    (["--resample-temperature", "0"], "--resample-temperature = 0 is outside (0, inf]"),
])
def test_bad_guidance_is_a_one_line_error(tmp_path, tiny_diffusion_checkpoint, capsys, options,
                                          message, quick_pool) -> None:
    code = main(["sample", "--pdf", str(ZNO), "--checkpoint", str(tiny_diffusion_checkpoint),
                 *options, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("options", "message"), [
    (["--steps", "5"], "--steps: only diffusion models take sampler options"),
    (["--sampler", "ddim"], "--sampler: only diffusion models take sampler options"),
    (["--guidance-scale", "1"], "--guidance-scale: only diffusion models take sampler options"),
    (["--resample-every", "2"], "--resample-every: only diffusion models take sampler options"),
])
def test_sampler_options_on_other_models_are_a_one_line_error(tmp_path, tiny_checkpoint, capsys,
                                                              options, message,
                                                              quick_pool) -> None:
    code = main(["sample", "--pdf", str(ZNO), "--checkpoint", str(tiny_checkpoint), *options,
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().splitlines()[-1].count(message) == 1
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_bad_steps_are_a_one_line_error(tmp_path, tiny_diffusion_checkpoint, capsys,
                                        quick_pool) -> None:
    code = main(["sample", "--pdf", str(ZNO), "--checkpoint", str(tiny_diffusion_checkpoint),
                 "--steps", "0", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "sampling steps must be in 1..50, got 0" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()
    code = main(["sample", "--pdf", str(ZNO), "--checkpoint", str(tiny_diffusion_checkpoint),
                 "--sampler", "euler", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "unknown sampler 'euler'; choose from ddpm, ddim, dpmsolver" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()
