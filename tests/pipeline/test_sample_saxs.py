"""`sample --saxs` without a PDF: the size answer of a sphere fit (diameter, polydispersity) in the
report and summary.json; with a composition, the SAXS model's particles (and packings at that size
for a metal); the size only without one."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from scipy.special import gammaln

from invdesign.core.errors import InvdesignError
from invdesign.pipeline import sample
from invdesign.pipeline.report import report

Q = np.geomspace(0.005, 0.5, 200)  # Å^-1
MEAN_RADIUS, PD = 15.0, 0.1  # Å, Schulz σ / mean


def _schulz_population(q: np.ndarray, mean: float, p: float) -> np.ndarray:
    """<V^2 P(q)>_n / <V>_n of Schulz-distributed spheres by direct summation over 4000 radii
    (numpy, not sasmodels), as tests/evaluators/forward/test_saxs_fit.py."""
    z = 1.0 / p ** 2 - 1.0
    r = np.linspace(mean * max(1 - 6 * p, 0.02), mean * (1 + 8 * p), 4000)
    number = np.exp((z + 1) * math.log(z + 1) + z * np.log(r / mean) - (z + 1) * r / mean
                    - math.log(mean) - gammaln(z + 1))
    qr = np.outer(q, r)
    volume = 4.0 / 3.0 * math.pi * r ** 3
    amplitude = 3.0 * (np.sin(qr) - qr * np.cos(qr)) / qr ** 3 * volume
    return (amplitude ** 2 @ number) / (volume @ number)


@pytest.fixture(scope="module")
def spheres_dat(tmp_path_factory) -> Path:
    """I(q) of 30 Å (mean diameter) Schulz spheres, 10 % polydisperse, on a flat background, 1 %
    noise, two columns with the q unit in the header."""
    clean = 1e-4 * _schulz_population(Q, MEAN_RADIUS, PD) + 0.02
    y = clean * (1 + 0.01 * np.random.default_rng(1).standard_normal(Q.size))
    path = tmp_path_factory.mktemp("saxs") / "spheres.dat"
    path.write_text("# x_unit = q_A\n"
                    + "\n".join(f"{a:.6g} {b:.6g}" for a, b in zip(Q, y, strict=True)))
    return path


def test_saxs_size_answer_within_5_percent_without_candidates(spheres_dat, tmp_path):
    out = tmp_path / "run"
    lines: list[str] = []
    result = sample({"saxs": spheres_dat}, out=out, progress=lines.append)
    size = result.answers["saxs_size"]
    assert abs(size["diameter"] / (2 * MEAN_RADIUS) - 1) < 0.05
    assert abs(size["polydispersity"] / PD - 1) < 0.05
    assert size["distribution"] == "schulz"
    assert result.candidates == []
    assert ("no structure candidates: no composition given: the SAXS answer is the size only"
            in lines)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["saxs_size"]["diameter"] == pytest.approx(size["diameter"])
    assert summary["candidates"] == []
    text = report(result, taken=False)
    assert f"size (SAXS): diameter {size['diameter']:.1f} Å" in text
    assert "no structure candidates" in text


def test_compound_gets_the_saxs_model_particles(spheres_dat):
    """No packings for a compound; the shipped SAXS model's particles, conditioned on the curve
    and the composition, ranked by their Debye I(q)."""
    result = sample({"saxs": spheres_dat}, composition="TiO2", n=4, energies=False)
    cands = result.candidates
    assert 1 <= len(cands) <= 4 and {c.source for c in cands} == {"generator"}
    assert all(c.structure.kind == "particle" for c in cands)
    assert result.model == "mlp-saxs_lab-pos_abs"
    assert "4 samples of mlp-saxs_lab-pos_abs" in result.how
    assert [c.rw for c in cands] == sorted(c.rw for c in cands)


def test_metal_packings_at_the_saxs_size_ranked_by_debye_iq(spheres_dat, tmp_path):
    result = sample({"saxs": spheres_dat}, composition="Au", out=tmp_path / "run")
    cands = result.candidates
    assert len(cands) >= 4 and {c.source for c in cands} == {"packing", "generator"}
    assert all(c.structure.kind == "particle" for c in cands)
    assert [c.rank for c in cands] == list(range(1, len(cands) + 1))
    assert [c.rw for c in cands] == sorted(c.rw for c in cands)
    assert (tmp_path / "run" / "fit.png").is_file()
    # the fcc sphere is cut at the fitted diameter with Au's nearest-neighbour distance (ase's
    # reference fcc, a = 4.08 Å)
    diameter = result.answers["saxs_size"]["diameter"]
    fcc = next(c for c in cands if c.structure_type == "fcc")
    assert fcc.structure.info["diameter"] == round(diameter, 2)
    assert fcc.structure.info["nn"] == round(4.08 / math.sqrt(2.0), 4)


def test_pdf_model_for_a_saxs_file_is_refused(spheres_dat):
    with pytest.raises(InvdesignError, match=r"a --saxs file needs a SAXS \(saxs->\.\.\. or "
                                             r"saxs_lab->\.\.\.\) model: leave out --model to "
                                             "use mlp-saxs_lab-pos_abs"):
        sample({"saxs": spheres_dat}, model="mlp-xpdf-pos_abs")


def test_default_saxs_model_left_out_with_a_note_when_the_data_miss_its_grid(tmp_path):
    """A curve measured to q = 0.3 Å^-1 does not reach the end of the SAXS model's grid (0.49):
    the default model is left out and the run says so; asked for by name, it is refused."""
    q = np.geomspace(0.005, 0.3, 120)
    path = tmp_path / "short.dat"
    path.write_text("# x_unit = q_A\n" + "\n".join(
        f"{a:.6g} {b:.6g}" for a, b in zip(q, 1e-4 * _schulz_population(q, MEAN_RADIUS, PD)
                                           + 0.02, strict=True)))
    result = sample({"saxs": path}, composition="TiO2", energies=False)
    assert result.candidates == [] and result.model == "known structures"
    assert "mlp-saxs_lab-pos_abs not sampled" in result.how and "short.dat" in result.how
    with pytest.raises(InvdesignError, match=r"short\.dat: .*0\.49"):
        sample({"saxs": path}, composition="TiO2", model="mlp-saxs_lab-pos_abs")


def test_saxs_file_simulated_from_an_atomistic_particle_gives_its_size(tmp_path):
    """I(q) of a 820-atom Au sphere (radius 15 Å cut from fcc) by DebyeCalculator's Debye sum,
    written as a SAXS file: the size answer is the particle's equal-volume diameter (its atoms'
    bulk volume as one sphere) within 5 %, with no polydispersity to speak of."""
    from debyecalculator import DebyeCalculator  # noqa: PLC0415 - lazy: slow import

    a = 4.078
    atoms = bulk("Au", "fcc", a=a, cubic=True).repeat(10)
    centre = atoms.positions.mean(axis=0)
    particle = atoms[np.linalg.norm(atoms.positions - centre, axis=1) <= 15.0]
    particle.pbc, particle.cell = False, None
    q, iq = DebyeCalculator(qmin=0.02, qmax=0.5, qstep=0.002, biso=0.3, device="cpu").iq(particle)
    path = tmp_path / "au_particle.dat"
    path.write_text("# x_unit = q_A\n" + "\n".join(
        f"{x:.6g} {y:.6g}" for x, y in zip(np.asarray(q), np.asarray(iq), strict=True)))
    size = sample({"saxs": path}).answers["saxs_size"]
    equal_volume = (6 * len(particle) * a ** 3 / 4 / math.pi) ** (1 / 3)
    assert len(particle) > 500
    assert abs(size["diameter"] / equal_volume - 1) < 0.05
    assert size["polydispersity"] < 0.05
