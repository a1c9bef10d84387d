"""Powder readers: each format on a small file written here, exact values read."""

from __future__ import annotations

import math

import numpy as np
import pytest

from invdesign.core.errors import DataFormatError
from invdesign.io.measured import read_pattern
from invdesign.io.powder import read_powder_table

TTH = [10.0 + 0.05 * i for i in range(12)]
COUNTS = [100.0, 110.0, 130.0, 400.0, 900.0, 420.0, 140.0, 115.0, 105.0, 102.0, 101.0, 100.0]


def _q(two_theta: float, wavelength: float) -> float:
    return 4 * math.pi * math.sin(math.radians(two_theta) / 2) / wavelength


def test_two_column_xy_gives_two_theta_counts_and_the_header_wavelength(tmp_path):
    path = tmp_path / "scan.xy"
    rows = "".join(f"{t:.2f} {c:.1f}\n" for t, c in zip(TTH, COUNTS, strict=True))
    path.write_text("# 2theta intensity\n# wavelength = 1.5406\n" + rows)
    p = read_pattern(path, "xrd")
    assert p.x_raw.tolist() == [round(t, 2) for t in TTH]
    assert p.y.tolist() == COUNTS
    assert p.dy is None
    assert (p.wavelength, p.sources["wavelength"], p.x_unit) == (1.5406, "header", "2theta_deg")
    assert p.x[3] == pytest.approx(_q(10.15, 1.5406), rel=1e-12)


def test_xye_third_column_is_the_uncertainty(tmp_path):
    path = tmp_path / "scan.xye"
    rows = "".join(f"{t:.2f} {c:.1f} {math.sqrt(c):.4f}\n" for t, c in zip(TTH, COUNTS,
                                                                          strict=True))
    path.write_text("# 2theta I esd\n" + rows)
    p = read_pattern(path, "xrd", wavelength=0.7093)
    assert p.dy.tolist() == [round(math.sqrt(c), 4) for c in COUNTS]
    assert (p.wavelength, p.sources["wavelength"]) == (0.7093, "option")


CIF_PROC = """data_profile
_diffrn_radiation_wavelength 1.5406
_pd_proc_ls_prof_wR_factor 0.0812
loop_
_pd_proc_point_id
_pd_proc_2theta_corrected
_pd_proc_intensity_net
_pd_calc_intensity_net
{rows}
data_phase
_cell_length_a 4.2
_chemical_formula_sum 'Mg O'

data_profile_simulated
_diffrn_radiation_wavelength 0.71073
loop_
_pd_calc_intensity_total
{calc}
"""


def test_cif_processed_profile_with_esds_and_wavelength(tmp_path):
    rows = "\n".join(f"{i + 1} {t:.3f} {c:.0f}(1{i}) {c + 5:.0f}"
                     for i, (t, c) in enumerate(zip(TTH, COUNTS, strict=True)))
    path = tmp_path / "combined.cif"
    path.write_text(CIF_PROC.format(rows=rows, calc="\n".join(["5.0"] * 12)))
    p = read_pattern(path, "xrd")
    assert p.x_raw.tolist() == [round(t, 3) for t in TTH]
    assert p.y.tolist() == COUNTS  # the measured column, not the calculated one
    assert p.dy.tolist() == [float(f"1{i}") for i in range(12)]
    assert (p.wavelength, p.sources["wavelength"], p.x_unit) == (1.5406, "header", "2theta_deg")
    assert p.header["reported_rwp"] == 0.0812
    assert p.header["block"] == "profile"
    assert p.producer == "cif"


CIF_MEAS = """data_scan
_pd_meas_2theta_range_min 10.00
_pd_meas_2theta_range_max 10.70
_pd_meas_2theta_range_inc 0.05
_pd_proc_2theta_range_min 9.98
_pd_proc_2theta_range_max 10.68
_pd_proc_2theta_range_inc 0.05
loop_
_diffrn_radiation_wavelength
_diffrn_radiation_wavelength_wt
1.54056 1.0
1.54439 0.5
loop_
_pd_meas_counts_total
_pd_proc_ls_weight
_pd_proc_intensity_bkg_calc
{rows}
"""


def test_cif_counts_on_the_measured_range_weights_and_doublet(tmp_path):
    counts = COUNTS + [99.0, 98.0, 97.0]
    weights = [0.0, 0.0] + [1.0 / c for c in counts[2:]]
    rows = "\n".join(f"{c:.1f} {w:.6g} 99.0" for c, w in zip(counts, weights, strict=True))
    rows = rows.replace("101.0 ", ". ", 1)  # point 11 has no count
    path = tmp_path / "counts.cif"
    path.write_text(CIF_MEAS.format(rows=rows))
    table = read_powder_table(path)
    kept = [2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14]
    assert table.two_theta == pytest.approx([10.0 + 0.05 * i for i in kept], abs=1e-12)
    assert table.intensity.tolist() == [counts[i] for i in kept]
    assert table.sigma == pytest.approx([1 / math.sqrt(float(f"{1 / counts[i]:.6g}"))
                                         for i in kept], rel=1e-12)
    assert (table.values["wavelength"], table.values["wavelength2"]) == (1.54056, 1.54439)
    assert table.values["intensity_tag"] == "_pd_meas_counts_total"
    assert table.notes == ("2 points with weight 0 (excluded by the authors) dropped",
                           "1 points without an intensity ('.' or '?') dropped")


def test_cif_meas_scan_column_and_proc_wavelength(tmp_path):
    rows = "\n".join(f"{t:.2f} {c:.1f}" for t, c in zip(TTH, COUNTS, strict=True))
    path = tmp_path / "scan.cif"
    path.write_text("data_x\n_pd_proc_wavelength 0.45\nloop_\n_pd_meas_2theta_scan\n"
                    "_pd_meas_intensity_total\n" + rows + "\n")
    p = read_pattern(path, "xrd")
    assert p.x_raw.tolist() == [round(t, 2) for t in TTH]
    assert p.y.tolist() == COUNTS
    assert p.wavelength == 0.45
    assert p.x[-1] == pytest.approx(_q(10.55, 0.45), rel=1e-12)


def test_cif_without_a_profile_or_with_a_range_that_does_not_fit_is_refused(tmp_path):
    path = tmp_path / "structure.cif"
    path.write_text("data_s\n_cell_length_a 4.2\nloop_\n_atom_site_label\n_atom_site_fract_x\n"
                    "Mg 0\nO 0.5\n")
    with pytest.raises(DataFormatError, match="no measured powder profile") as err:
        read_pattern(path, "xrd")
    assert "structure.cif" in str(err.value)
    bad = tmp_path / "range.cif"
    bad.write_text("data_r\n_pd_meas_2theta_range_min 10\n_pd_meas_2theta_range_max 20\n"
                   "_pd_meas_2theta_range_inc 0.05\nloop_\n_pd_meas_counts_total\n"
                   + "\n".join(f"{c:.1f}" for c in COUNTS) + "\n")
    with pytest.raises(DataFormatError, match="12 points but no 2-theta column"):
        read_pattern(bad, "xrd")


def _std_line(values: list[tuple[int, float]]) -> str:
    return "".join(f"{n:2d}{v:6.0f}" for n, v in values)


def test_gsas_std_bank(tmp_path):
    ncount = [1, 1, 2, 2, 1, 1, 4, 1, 1, 1, 1, 1]
    pairs = list(zip(ncount, COUNTS, strict=True))
    path = tmp_path / "scan.gsa"
    path.write_text("MgO test\n# Wavelength 1.5406 A\n"
                    "BANK 1 12 2 CONST 1000.00 5.00 0 0 STD\n"
                    + _std_line(pairs[:10]) + "\n" + _std_line(pairs[10:]) + "\n")
    p = read_pattern(path, "xrd")
    assert p.x_raw == pytest.approx(TTH, abs=1e-12)
    assert p.y.tolist() == COUNTS
    assert p.dy == pytest.approx([math.sqrt(c / n) for n, c in pairs], rel=1e-12)
    assert (p.wavelength, p.producer) == (1.5406, "gsas")


def test_gsas_esd_and_fxye_banks(tmp_path):
    esd = tmp_path / "scan.gss"
    pairs = [f"{c:8.1f}{c / 10:8.2f}" for c in COUNTS]
    esd.write_text("title\nBANK 1 12 3 CONS 1000.0 5.0 0 0 ESD\n" + "".join(pairs[:5]) + "\n"
                   + "".join(pairs[5:10]) + "\n" + "".join(pairs[10:]) + "\n")
    table = read_powder_table(esd)
    assert table.two_theta == pytest.approx(TTH, abs=1e-12)
    assert table.intensity.tolist() == COUNTS
    assert table.sigma.tolist() == [round(c / 10, 2) for c in COUNTS]
    assert "wavelength" not in table.values
    fxye = tmp_path / "scan.fxye"
    fxye.write_text("title\nBANK 1 12 12 CONS 1000.0 5.0 0 0 FXYE\n" + "".join(
        f"{100 * t:.1f} {c:.1f} {c / 20:.3f}\n" for t, c in zip(TTH, COUNTS, strict=True)))
    p = read_pattern(fxye, "xrd", wavelength=1.0)
    assert p.x_raw == pytest.approx(TTH, abs=1e-12)
    assert p.dy.tolist() == [round(c / 20, 3) for c in COUNTS]


def test_gsas_time_of_flight_and_bad_monotonic_data_are_refused(tmp_path):
    tof = tmp_path / "tof.gsa"
    tof.write_text("title\nBANK 1 12 2 TIME_MAP 1 1 0 0 STD\n" + _std_line([(1, 5.0)] * 10))
    with pytest.raises(DataFormatError, match="binning TIME_MAP is not read"):
        read_pattern(tof, "xrd")
    back = tmp_path / "back.fxye"
    tth = TTH[:5] + [TTH[3]] + TTH[6:]
    back.write_text("t\nBANK 1 12 12 CONS 1000.0 5.0 0 0 FXYE\n" + "".join(
        f"{100 * t:.1f} {c:.1f} 1.0\n" for t, c in zip(tth, COUNTS, strict=True)))
    with pytest.raises(DataFormatError, match=r"2-theta is not monotonic: point 6 \(10.15 deg\)"):
        read_pattern(back, "xrd", wavelength=1.0)


def test_real_combined_cif_profile_block(shared_data):
    p = read_pattern(shared_data / "xrd_iucr" / "sq3214Isup2.rtv.combined.cif", "xrd")
    assert (p.x.size, p.wavelength, p.header["intensity_tag"]) == (
        5200, 1.54059, "_pd_proc_intensity_total")
    assert np.all(np.diff(p.x_raw) > 0)
