"""Reader values on hand-made files whose asymmetry would expose a swapped or half-applied step
(no `../shared` needed: these run on every checkout)."""

from __future__ import annotations

import numpy as np
import pytest

from invdesign.io import read_pattern

R = np.round(np.arange(0.5, 30.0, 0.01), 2)


def _g(r: np.ndarray) -> np.ndarray:
    """A G(r) with no symmetry in r: a damped sine plus a slope."""
    return np.sin(2.3 * r) * np.exp(-r / 15) + 0.01 * r


def test_rows_in_descending_r_are_reversed_together_with_their_values(tmp_path):
    path = tmp_path / "descending.gr"
    rows = np.column_stack([R, _g(R)])[::-1]
    path.write_text("\n".join(f"{r:.2f} {g:.8f}" for r, g in rows) + "\n")
    pattern = read_pattern(path, "pdf", qmax=25.0, qdamp=0.04)
    np.testing.assert_array_equal(pattern.x, R)
    np.testing.assert_allclose(pattern.y, _g(R), atol=1e-8)
    assert any("reversed" in note for note in pattern.notes)


def test_descending_rows_keep_their_uncertainties_aligned(tmp_path):
    path = tmp_path / "descending_dy.gr"
    dy = 0.001 * (1 + R)
    rows = np.column_stack([R, _g(R), np.zeros_like(R), dy])[::-1]
    path.write_text("\n".join(" ".join(f"{v:.8f}" for v in row) for row in rows) + "\n")
    pattern = read_pattern(path, "pdf", qmax=25.0, qdamp=0.04)
    np.testing.assert_allclose(pattern.y, _g(R), atol=1e-8)
    if pattern.dy is not None:
        np.testing.assert_allclose(pattern.dy, dy, atol=1e-8)


PDFGETX2_HEADER = """\
History written: Tue Feb  8 11:46:14 2005
produced by me
####### Get_XPDF #######

##### Experiment_Setup
title=TiO2 test
## X-Ray   radiationtype=3
wavelength=0.126514    fluxcorrectionfactor=1.00000
##### Sample_Setup information    num_atoms=2
#L symbol valence fractions z user_f1 user_f2 user_macoef
  Ti    4.00   1.000000    22   0.000000   0.000000   0.000000
  O    -2.00   2.000000     8   0.000000   0.000000   0.000000
geometry=2    mut=0.10590000    numberdensity=0.109910

##### Calculation
qmax=24.0000    qmin=0.500000
#S 1    G(r)
#L r    G(r)    d_r    d_Gr
"""


def test_pdfgetx2_composition_reads_the_fractions_column_not_the_valence(tmp_path):
    path = tmp_path / "tio2.gr"
    body = "\n".join(f"{r:.6e} {g:.6e} 0.0 0.01" for r, g in zip(R, _g(R), strict=True))
    path.write_text(PDFGETX2_HEADER + body + "\n")
    pattern = read_pattern(path, "pdf", qdamp=0.04)
    assert pattern.producer == "pdfgetx2"
    assert pattern.composition == pytest.approx({"Ti": 1.0, "O": 2.0})
    assert (pattern.radiation, pattern.qmax, pattern.qmin) == ("xray", 24.0, 0.5)
