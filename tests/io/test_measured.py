"""Reading measured patterns: the real files in ../shared/data/measured and hand-made ones."""

from __future__ import annotations

import math

import numpy as np
import pytest

from invdesign.core.errors import DataFormatError, InvdesignError
from invdesign.io import (
    check_covers,
    metal_core,
    parse_composition,
    plot_model_input,
    read_pattern,
    write_fgr,
)


# ------------------------------------------------------------- real files (header values as seen)
def test_pt_nanoparticle_xpdfsuite_header(shared_data):
    p = read_pattern(shared_data / "measured" / "Pt-nanoparticle-JQ_S1.gr")
    assert p.producer == "pdfgetx3"
    assert p.qmax == pytest.approx(21.998245281) and round(p.qmax) == 22
    assert p.header["qmaxinst"] == 22.0
    assert p.qmin == 1.0 and p.radiation == "xray" and p.wavelength == 0.1
    assert p.composition == {"Pt": 1.0}
    assert p.header["dataformat"] == "Qnm" and p.header["rpoly"] == 0.9
    assert (p.header["rmin"], p.header["rmax"], p.header["rstep"]) == (0.0, 50.0, 0.01)
    assert p.x.size == 5001 and p.x[0] == 0.0 and p.x[-1] == 50.0
    assert p.y[1] == pytest.approx(0.00144704) and p.dy is None
    assert p.qdamp == 0.04 and p.sources["qdamp"] == "default"
    assert any("qdamp" in note for note in p.notes)
    assert p.sources["qmax"] == "header" and p.sources["composition"] == "header"


def test_ni_xray_pdfgetx2_header(shared_data):
    p = read_pattern(shared_data / "measured" / "Ni-xray.gr")
    assert p.producer == "pdfgetx2" and p.radiation == "xray"
    assert (p.qmin, p.qmax) == (1.0, 40.0)
    assert p.wavelength == 0.126514 and p.composition == {"Ni": 1.0}
    assert (p.header["rmin"], p.header["rmax"], p.header["rstep"]) == (0.0, 20.0, 0.01)
    assert p.x.size == 2000 and p.x[0] == 0.01 and p.x[-1] == 20.0
    assert p.y[0] == pytest.approx(-7.734561e-02) and p.dy[0] == pytest.approx(3.134926e-02)


def test_ni_neutron_pdfgetn_header(shared_data):
    p = read_pattern(shared_data / "measured" / "Ni-neutron.gr")
    assert p.producer == "pdfgetn" and p.radiation == "neutron"
    assert (p.qmin, p.qmax) == (0.95, 27.0)
    assert p.composition == {"Ni": 1.0} and p.header["rmax"] == 20.0
    assert p.x.size == 2000 and p.y[0] == 1.240 and p.dy[0] == 0.6764


def test_cdse_pdfgetx2_header(shared_data):
    p = read_pattern(shared_data / "measured" / "CdSe-bulk.gr")
    assert (p.qmin, p.qmax) == (0.6, 14.0)
    assert p.composition == {"Cd": 1.0, "Se": 1.0}
    assert p.wavelength == 0.142479 and p.radiation == "xray"
    assert p.x.size == 4500 and p.x[-1] == 45.0


def test_structure_file_is_not_a_pattern(shared_data):
    with pytest.raises(DataFormatError, match="Ni.stru"):
        read_pattern(shared_data / "measured" / "Ni.stru")


def test_options_override_header_and_input_is_untouched(shared_data, tmp_path):
    src = shared_data / "measured" / "Pt-nanoparticle-JQ_S1.gr"
    copy = tmp_path / "pt.gr"
    copy.write_bytes(src.read_bytes())
    before = (copy.read_bytes(), copy.stat().st_mtime_ns)
    p = read_pattern(copy, qmax=20.0, qdamp=0.03, composition="Pt140 S60 C300", metal_core=True)
    assert (p.qmax, p.qdamp) == (20.0, 0.03)
    assert p.sources["qmax"] == p.sources["qdamp"] == "option"
    assert p.composition == {"Pt": 140.0}
    assert not any("qdamp" in note for note in p.notes)
    assert (copy.read_bytes(), copy.stat().st_mtime_ns) == before
    assert sorted(tmp_path.iterdir()) == [copy]
    assert any("qmax = 20.0 (option)" in line for line in p.describe())


# ------------------------------------------------------------------ compositions
def test_composition_with_ligands_and_metal_core():
    comp = parse_composition("Au144 S60 C480 H540")
    assert comp == {"Au": 144.0, "S": 60.0, "C": 480.0, "H": 540.0}
    assert metal_core(comp) == {"Au": 144.0}
    assert parse_composition("CdSe") == {"Cd": 1.0, "Se": 1.0}
    with pytest.raises(InvdesignError, match="contains no metal"):
        metal_core(parse_composition("C60"))
    with pytest.raises(InvdesignError, match="unknown element"):
        parse_composition("Xx3")


# ------------------------------------------------------------------ hand-made formats
def _gr_lines(r: np.ndarray) -> list[str]:
    return [f"{a:.3f} {math.sin(3 * a):.6f}" for a in r]


def test_pdfgetx3_plain_and_three_columns(tmp_path):
    r = np.round(np.arange(0.5, 10.0, 0.1), 3)
    x3 = tmp_path / "x3.gr"
    x3.write_text("[DEFAULT]\nversion = 2.1\n\n[PDF]\nmode = neutron\ncomposition = Au144 S60\n"
                  "qmin = 0.8\nqmax = 25.5\nqdamp = 0.021\n#### start data\n#S 1\n"
                  "#L r($\\AA$)  G($\\AA^{-2}$)\n" + "\n".join(_gr_lines(r)) + "\n")
    p = read_pattern(x3)
    assert p.producer == "pdfgetx3" and p.radiation == "neutron"
    assert (p.qmin, p.qmax, p.qdamp) == (0.8, 25.5, 0.021) and p.sources["qdamp"] == "header"
    assert p.composition == {"Au": 144.0, "S": 60.0}
    np.testing.assert_allclose(p.x, r)

    plain = tmp_path / "plain.dat"
    plain.write_text("\n".join(f"{a:.3f} {math.cos(a):.5f} 0.01" for a in r) + "\n")
    p = read_pattern(plain)
    assert p.producer == "plain"
    assert p.sources["qmax"] == "default" and p.sources["radiation"] == "default"
    np.testing.assert_allclose(p.dy, 0.01)


def test_pdfgetn_style_aliases_qsig_and_stype(tmp_path):
    r = np.round(np.arange(0.5, 10.0, 0.1), 3)
    path = tmp_path / "n.gr"
    path.write_text("stype=N\nqmax=26.5\nqsig=0.023\nqalp=0.01\n#### start data\n"
                    + "\n".join(_gr_lines(r)) + "\n")
    p = read_pattern(path)
    assert p.radiation == "neutron" and p.sources["radiation"] == "header"
    assert (p.qmax, p.qdamp) == (26.5, 0.023) and p.sources["qdamp"] == "header"
    assert p.header["qbroad"] == 0.01 and not p.notes


def test_fgr_round_trip_gives_observed_curve(tmp_path):
    r = np.round(np.arange(1.0, 6.0, 0.01), 3)
    obs, calc = np.sin(2 * r), 0.9 * np.sin(2 * r)
    path = write_fgr(tmp_path / "fit.fgr", r, calc, obs, radiation="neutron", qmax=26.0,
                     qdamp=0.03, fit_range=(1.0, 6.0))
    p = read_pattern(path)
    assert p.producer == "pdfgui" and p.radiation == "neutron"
    assert (p.qmax, p.qdamp) == (26.0, 0.03)
    np.testing.assert_allclose(p.y, obs, atol=1e-7)
    assert [f.name for f in tmp_path.iterdir()] == ["fit.fgr"]


def test_xrd_two_theta_with_pyfai_header_is_converted(tmp_path):
    tth = np.arange(10.0, 60.0, 0.25)
    path = tmp_path / "a.xy"
    path.write_text("# == pyFAI calibration ==\n# Wavelength: 1.5406e-10 m\n#  2th_deg  I\n"
                    + "\n".join(f"{t:.3f} {100 + t:.2f}" for t in tth) + "\n")
    p = read_pattern(path, kind="xrd")
    assert p.x_unit == "2theta_deg" and p.wavelength == pytest.approx(1.5406)
    np.testing.assert_allclose(p.x, 4 * np.pi * np.sin(np.radians(tth) / 2) / 1.5406)
    np.testing.assert_allclose(p.x_raw, tth)
    assert p.sources["qmax"] == "data" and p.qmax == pytest.approx(p.x[-1])


def test_fit2d_chi_needs_wavelength_then_converts(tmp_path):
    tth = np.arange(2.0, 20.0, 0.1)
    path = tmp_path / "a.chi"
    path.write_text("sample\n2-Theta Angle (Degrees)\nIntensity\n" + f"{tth.size}\n"
                    + "\n".join(f"{t:.3f} {5 + t:.2f}" for t in tth) + "\n")
    with pytest.raises(DataFormatError, match="no wavelength"):
        read_pattern(path, kind="xrd")
    p = read_pattern(path, kind="xrd", wavelength=0.5)
    assert p.x[-1] == pytest.approx(4 * np.pi * np.sin(np.radians(tth[-1]) / 2) / 0.5)


def test_saxs_in_inverse_nm_and_descending_rows(tmp_path):
    q = np.arange(0.1, 3.0, 0.02)[::-1]
    path = tmp_path / "s.dat"
    path.write_text("# q_nm^-1 I sigma\n" + "\n".join(f"{a:.3f} {1 / (1 + a):.5f} 0.1" for a in q))
    p = read_pattern(path, kind="saxs")
    np.testing.assert_allclose(p.x, np.sort(q) / 10)
    assert p.x_unit == "q_nm" and any("reversed" in n for n in p.notes)


def test_plot_model_input_writes_png(tmp_path):
    path = tmp_path / "p.gr"
    path.write_text("\n".join(_gr_lines(np.arange(0.0, 10.0, 0.05))))
    p = read_pattern(path, qmax=20.0, qdamp=0.03)
    grid = np.arange(0.0, 10.0, 0.1)
    out = plot_model_input(p, grid, (np.sin(3 * grid) + 1) / 2, tmp_path / "fig" / "input.png")
    assert out.read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------- refusals (one line, naming the file)
BAD_FILES = {
    "empty.gr": ("# header only\nqmax = 20\n", "no numeric data"),
    "words.gr": ("r G\nabc def\n", "no numeric data"),
    "nan.gr": ("\n".join([f"{i * 0.1:.1f} 1.0" for i in range(12)] + ["1.2 nan"]), "NaN or inf"),
    "inf.gr": ("\n".join([f"{i * 0.1:.1f} 1.0" for i in range(12)] + ["1.2 inf"]), "NaN or inf"),
    "dup.gr": ("\n".join([f"{i * 0.1:.1f} 1.0" for i in range(12)] + ["1.1 2.0"]), "repeated"),
    "zigzag.gr": ("\n".join(f"{x} 1.0" for x in [0.1, 0.2, 0.3, 0.25, 0.4, 0.5, 0.6, 0.7, 0.8,
                                                   0.9, 1.0, 1.1]), "decreases"),
    "short.gr": ("0.1 1\n0.2 2\n0.3 3\n", "only 3 data points"),
    "ragged.gr": ("\n".join([f"{i * 0.1:.1f} 1.0" for i in range(12)] + ["1.2 1.0 3.0"]),
                  "different number of columns"),
    "marker_last.gr": ("\n".join([f"{i * 0.1:.1f} 1.0" for i in range(12)] + ["#### start data"]),
                       "no numeric data"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_malformed_files_are_refused(tmp_path, name):
    text, message = BAD_FILES[name]
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataFormatError, match=message) as info:
        read_pattern(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_corrupt_line_inside_data_is_refused(tmp_path):
    path = tmp_path / "c.gr"
    rows = [f"{i * 0.1:.1f} 1.0" for i in range(20)]
    rows[10] = "1.0 garbage"
    path.write_text("#### start data\n" + "\n".join(rows))
    with pytest.raises(DataFormatError, match="line 12 is not numeric"):
        read_pattern(path)


def test_xrd_without_unit_and_bad_options_are_refused(tmp_path):
    path = tmp_path / "x.xy"
    path.write_text("\n".join(f"{10 + i * 0.5} {i}" for i in range(30)))
    with pytest.raises(DataFormatError, match="x unit not stated"):
        read_pattern(path, kind="xrd")
    assert read_pattern(path, kind="xrd", x_unit="q_A").x[0] == 10.0
    with pytest.raises(InvdesignError, match="unknown option"):
        read_pattern(path, kind="xrd", qmaks=3)
    with pytest.raises(InvdesignError, match="unknown pattern kind"):
        read_pattern(path, kind="sans")
    with pytest.raises(DataFormatError, match="radiation"):
        read_pattern(path, kind="xrd", x_unit="q_A", radiation="electron")
    with pytest.raises(DataFormatError, match="file not found"):
        read_pattern(tmp_path / "missing.gr")


def test_check_covers_refuses_short_range(tmp_path):
    path = tmp_path / "g.gr"
    path.write_text("\n".join(_gr_lines(np.round(np.arange(0.0, 30.0, 0.01), 3))))
    p = read_pattern(path)
    check_covers(p, 0.0, 29.99)
    with pytest.raises(DataFormatError, match=r"does not cover the model grid 0\.\.60") as info:
        check_covers(p, 0.0, 60.0)
    assert str(info.value).startswith(str(path))


@pytest.mark.parametrize("name", ["empty.gr", "nan.gr", "dup.gr", "zigzag.gr"])
def test_malformed_files_through_the_cli(tmp_path, capsys, name):
    from invdesign.cli.main import main

    path = tmp_path / name
    path.write_text(BAD_FILES[name][0])
    out = tmp_path / "out"
    assert main(["sample", "--pdf", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"invdesign: error: {path}") and BAD_FILES[name][1] in err
    assert "\n" not in err and "Traceback" not in err
    assert not out.exists() and path.read_text() == BAD_FILES[name][0]
