"""Exact values and messages of `invdesign.io.measured` (issue 28, item 5: mutation score).

Each test pins one value or one refusal message (file name included) of the reader, `describe`,
`check_covers`, `check_values` and `check_pattern`, so that a changed constant, comparison, index
or message text fails a test. Hand-made data only; the whole file runs in about a second.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from invdesign.core.errors import DataFormatError, InvdesignError
from invdesign.io import measured
from invdesign.io.measured import (
    MeasuredPattern,
    check_covers,
    check_pattern,
    check_values,
    read_pattern,
)

R = np.round(np.arange(1.5, 3.0, 0.1), 1)  # 15 points, first r is not 1.0 (DEFAULT_QMIN)


def _write(path: Path, rows, header: str = "") -> Path:
    path.write_text(header + "\n".join(" ".join(f"{v:g}" for v in row) for row in rows) + "\n",
                    encoding="utf-8")
    return path


def _pdf(tmp_path: Path, name: str = "a.gr", **over) -> MeasuredPattern:
    rows = np.column_stack([R, np.sin(R) + 0.1 * R])
    return read_pattern(_write(tmp_path / name, rows), "pdf", **over)


def _message(err: pytest.ExceptionInfo, path: Path | None) -> str:
    text = str(err.value)
    if path is not None:
        assert text.startswith(f"{path}: "), text
        return text[len(f"{path}: "):]
    return text


def _made(kind: str = "pdf", n: int = 12, **over) -> MeasuredPattern:
    """A pattern made in Python: x = 1.0, 1.5, ... (step 0.5)."""
    x = 1.0 + 0.5 * np.arange(n)
    values = dict(path=Path("made.gr"), kind=kind, x=x, y=np.cos(x) + 2.0, dy=None, qmin=0.5,
                  qmax=20.0, qdamp=0.03, biso=0.4, radiation="xray", wavelength=None,
                  composition=None, x_raw=x, x_unit="r_A" if kind == "pdf" else "q_A")
    values.update(over)
    return MeasuredPattern(**values)


# --------------------------------------------------------------------------- read_pattern values
def test_pdf_defaults_sources_and_notes(tmp_path):
    p = _pdf(tmp_path)
    assert p.kind == "pdf" and p.x_unit == "r_A" and p.function == "gr"
    assert (p.qmin, p.qmax, p.qdamp, p.biso) == (1.0, 30.0, 0.04, 0.3)
    assert p.sources == {"radiation": "default", "wavelength": "default",
                         "composition": "default", "qmin": "default", "qmax": "default",
                         "qdamp": "default", "biso": "default"}
    assert p.notes == (
        "radiation not stated; assuming xray (option radiation)",
        "qmax not in the header; using 30.0 Å^-1 (option qmax)",
        "qdamp not in the header; using 0.04 Å^-1 (option qdamp)",
    )


def test_xrd_q_range_defaults_to_the_data_and_has_no_pdf_notes(tmp_path):
    q = np.round(np.arange(2.0, 3.5, 0.1), 1)
    path = _write(tmp_path / "a.xy", np.column_stack([q, 5.0 + np.sin(q)]))
    p = read_pattern(path, "xrd", x_unit="q_A", radiation="xray", qdamp=0.02)
    assert p.kind == "xrd" and p.x_unit == "q_A" and p.function == "iq"
    assert (p.qmin, p.qmax) == (2.0, 3.4)
    assert p.sources["qmin"] == "data" and p.sources["qmax"] == "data"
    assert p.sources["radiation"] == "option"
    assert p.notes == ()


def test_qmin_equal_to_qmax_is_refused(tmp_path):
    with pytest.raises(DataFormatError) as err:
        _pdf(tmp_path, qmin=5.0, qmax=5.0)
    assert _message(err, tmp_path / "a.gr") == "qmin 5 and qmax 5 must satisfy 0 <= qmin < qmax"


def test_unknown_kind_and_options_messages(tmp_path):
    with pytest.raises(InvdesignError) as err:
        read_pattern(tmp_path / "a.gr", "iq")
    assert str(err.value) == "unknown pattern kind 'iq'; choose from pdf, xrd, saxs"
    with pytest.raises(InvdesignError) as err:
        read_pattern(tmp_path / "a.gr", "pdf", zeta=1, alpha=2)
    assert str(err.value) == (
        "unknown option(s) alpha, zeta; known: qmin, qmax, qdamp, biso, radiation, wavelength, "
        "composition, x_unit, metal_core")


@pytest.mark.parametrize(("word", "expected"), [("x", "xray"), ("X-Ray", "xray"),
                                                ("N", "neutron"), ("neutron", "neutron")])
def test_radiation_words(tmp_path, word, expected):
    assert _pdf(tmp_path, radiation=word).radiation == expected


def test_bad_radiation_names_the_file(tmp_path):
    with pytest.raises(DataFormatError) as err:
        _pdf(tmp_path, radiation="electron")
    assert _message(err, tmp_path / "a.gr") == (
        "radiation must be 'xray' or 'neutron', not 'electron'")


def test_bad_dict_composition_names_the_composition(tmp_path):
    with pytest.raises(InvdesignError) as err:
        _pdf(tmp_path, composition={"Au": -1})
    assert str(err.value).startswith("composition composition: amount of Au is -1; amounts must ")


def test_composition_dict_and_metal_core(tmp_path):
    assert _pdf(tmp_path, composition={"Au": 25, "S": 18}).composition == {"Au": 25.0, "S": 18.0}
    assert _pdf(tmp_path, composition="Au25 S18", metal_core=True).composition == {"Au": 25.0}


# ------------------------------------------------------------------------------ file and lines
def test_missing_file_message(tmp_path):
    with pytest.raises(DataFormatError) as err:
        read_pattern(tmp_path / "none.gr")
    assert str(err.value) == f"{tmp_path / 'none.gr'}: file not found"


def test_unreadable_file_message(tmp_path, monkeypatch):
    path = _write(tmp_path / "a.gr", np.column_stack([R, R]))

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(measured, "open", refuse, raising=False)
    with pytest.raises(DataFormatError) as err:
        read_pattern(path)
    assert str(err.value) == f"{path}: cannot read file (Permission denied)"


def test_undecodable_bytes_in_the_header_are_replaced(tmp_path):
    path = tmp_path / "latin1.gr"
    rows = "\n".join(f"{r:g} {math.sin(r) + 1:g}" for r in R)
    path.write_bytes(b"# sample \xe5\xff made at 300 K\n" + rows.encode() + b"\n")
    p = read_pattern(path, "pdf")
    assert p.x.size == 15 and p.x[0] == 1.5


def test_blank_and_comment_lines_inside_the_data_are_skipped(tmp_path):
    lines = [f"{r:g} {r * 2:g}" for r in R]
    lines.insert(5, "")
    lines.insert(9, "# a comment inside the data")
    path = tmp_path / "gaps.gr"
    path.write_text("\n".join(lines) + "\n")
    p = read_pattern(path)
    np.testing.assert_array_equal(p.x, R)
    np.testing.assert_array_equal(p.y, 2 * R)


def test_comma_separated_columns(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("\n".join(f"{r:g},{r * 3:g}" for r in R) + "\n")
    p = read_pattern(path)
    np.testing.assert_allclose(p.y, 3 * R, rtol=0, atol=1e-12)


def test_text_line_inside_the_data_names_the_line_and_its_first_40_characters(tmp_path):
    lines = [f"{r:g} {r:g}" for r in R]
    lines.insert(3, "1 2 0123456789012345678901234567890123456789XYZ")
    path = tmp_path / "a.gr"
    path.write_text("#### start data\n" + "\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as err:
        read_pattern(path)
    assert _message(err, path) == (
        "line 5 is not numeric data: '1 2 012345678901234567890123456789012345'")


def test_no_data_message(tmp_path):
    path = tmp_path / "a.gr"
    path.write_text("# only a header\nqmax = 20\n")
    with pytest.raises(DataFormatError) as err:
        read_pattern(path)
    assert _message(err, path) == "no numeric data (need at least two columns of numbers)"


def test_row_with_other_column_count_is_named_by_its_line(tmp_path):
    lines = [f"{r:g} {r:g}" for r in R]
    lines[6] = f"{R[6]:g} 1 2"
    path = tmp_path / "a.gr"
    path.write_text("# header line\n" + "\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as err:
        read_pattern(path)
    assert _message(err, path) == "line 8 has a different number of columns"


def test_ten_points_are_enough_and_nine_are_not(tmp_path):
    assert read_pattern(_write(tmp_path / "ten.gr", np.column_stack([R[:10], R[:10]]))).x.size \
        == 10
    with pytest.raises(DataFormatError) as err:
        read_pattern(_write(tmp_path / "nine.gr", np.column_stack([R[:9], R[:9]])))
    assert _message(err, tmp_path / "nine.gr") == "only 9 data points (need at least 10)"


# ----------------------------------------------------------------------------------- columns
def test_five_unlabelled_columns_are_r_g_dr_dg_and_more(tmp_path):
    rows = np.column_stack([R, 2 * R, 0 * R, 0.01 * R, 100 + R])
    p = read_pattern(_write(tmp_path / "five.gr", rows))
    np.testing.assert_array_equal(p.y, 2 * R)
    np.testing.assert_allclose(p.dy, 0.01 * R, rtol=0, atol=1e-12)


def test_pdfgui_fit_gives_gcalc_plus_gdiff_and_dgcalc(tmp_path):
    rows = np.column_stack([R, 2 * R, 0 * R, 0.01 * R, 0.5 + 0 * R])
    header = "# PDFgui fit\n#L r Gcalc dr dGcalc Gdiff\n"
    p = read_pattern(_write(tmp_path / "fit.fgr", rows, header))
    np.testing.assert_allclose(p.y, 2 * R + 0.5, rtol=0, atol=1e-12)
    np.testing.assert_allclose(p.dy, 0.01 * R, rtol=0, atol=1e-12)


def test_uncertainties_with_a_zero_are_dropped(tmp_path):
    dy = 0.01 * R
    dy[4] = 0.0
    p = read_pattern(_write(tmp_path / "a.gr", np.column_stack([R, R, dy])))
    assert p.dy is None


# ----------------------------------------------------------------------------------- ordering
def test_descending_rows_reverse_x_y_and_dy_with_a_note(tmp_path):
    rows = np.column_stack([R, 2 * R + 1, 0.01 * R])[::-1]
    p = read_pattern(_write(tmp_path / "a.gr", rows))
    np.testing.assert_array_equal(p.x, R)
    np.testing.assert_allclose(p.y, 2 * R + 1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(p.dy, 0.01 * R, rtol=0, atol=1e-12)
    assert p.notes[0] == "x was decreasing in the file; reversed"


def test_descending_rows_with_a_repeat_are_refused(tmp_path):
    x = R[::-1].copy()
    x[7] = x[6]
    path = _write(tmp_path / "a.gr", np.column_stack([x, R]))
    with pytest.raises(DataFormatError) as err:
        read_pattern(path)
    assert _message(err, path) == (
        "x is not strictly increasing: x = 2.8 at line 2 decreases (previous 2.9)")


def test_a_repeated_x_names_the_line(tmp_path):
    x = R.copy()
    x[5] = x[4]
    path = _write(tmp_path / "a.gr", np.column_stack([x, R]))
    with pytest.raises(DataFormatError) as err:
        read_pattern(path)
    assert _message(err, path) == (
        "x is not strictly increasing: x = 1.9 at line 6 repeated (previous 1.9)")


def test_a_step_back_names_the_line_and_both_values(tmp_path):
    x = R.copy()
    x[9] = 1.7  # after 1.5 .. 2.3
    path = _write(tmp_path / "a.gr", np.column_stack([x, R]), "# r G\n")
    with pytest.raises(DataFormatError) as err:
        read_pattern(path)
    assert _message(err, path) == (
        "x is not strictly increasing: x = 1.7 at line 11 decreases (previous 2.3)")


# ------------------------------------------------------------------------------------ x units
def test_xrd_without_unit_message(tmp_path):
    path = _write(tmp_path / "a.xy", np.column_stack([R, R + 5]))
    with pytest.raises(DataFormatError) as err:
        read_pattern(path, "xrd")
    assert _message(err, path) == (
        "x unit not stated in the header; give x_unit = q_A (Å^-1), q_nm (nm^-1) or "
        "2theta_deg (with wavelength)")


def test_unknown_unit_message(tmp_path):
    path = _write(tmp_path / "a.xy", np.column_stack([R, R + 5]))
    with pytest.raises(DataFormatError) as err:
        read_pattern(path, "xrd", x_unit="deg")
    assert _message(err, path) == "x_unit must be one of q_A, q_nm, 2theta_deg, not 'deg'"


def test_two_theta_without_wavelength_message(tmp_path):
    path = _write(tmp_path / "a.xy", np.column_stack([R, R + 5]))
    with pytest.raises(DataFormatError) as err:
        read_pattern(path, "xrd", x_unit="2theta_deg")
    assert _message(err, path) == (
        "x is 2-theta but no wavelength is given (option wavelength, Å)")


def test_two_theta_with_a_zero_wavelength_is_refused_by_the_conversion():
    # read_pattern refuses wavelength <= 0 before converting; the conversion refuses it too
    with pytest.raises(DataFormatError) as err:
        measured._to_q(Path("a.xy"), np.arange(10.0), "2theta_deg", 0.0)
    assert str(err.value) == "a.xy: x is 2-theta but no wavelength is given (option wavelength, Å)"


def test_two_theta_from_zero_converts_exactly(tmp_path):
    tth = np.arange(0.0, 12.0)
    path = _write(tmp_path / "a.xy", np.column_stack([tth, tth + 5]))
    p = read_pattern(path, "xrd", x_unit="2theta_deg", wavelength=0.5)
    np.testing.assert_allclose(p.x, 4 * np.pi * np.sin(np.radians(tth) / 2) / 0.5, rtol=1e-15)
    assert p.x[0] == 0.0 and p.wavelength == 0.5 and p.sources["wavelength"] == "option"
    np.testing.assert_array_equal(p.x_raw, tth)


@pytest.mark.parametrize(("tth", "shown"), [
    (np.arange(171.0, 181.0), "171..180"),  # ends at 180 (the second last is 179)
    (np.concatenate([[-1.0], np.arange(0.5, 10.0)]), "-1..9.5"),  # only the first is negative
])
def test_two_theta_outside_0_180_message(tmp_path, tth, shown):
    path = _write(tmp_path / "a.xy", np.column_stack([tth, tth + 5]))
    with pytest.raises(DataFormatError) as err:
        read_pattern(path, "xrd", x_unit="2theta_deg", wavelength=0.5)
    assert _message(err, path) == f"2-theta {shown} is outside 0..180 degrees"


def test_powder_file_notes_reach_the_pattern(tmp_path):
    path = tmp_path / "scan.fxye"
    tth = 10.0 + 0.05 * np.arange(12)
    path.write_text("title\nBANK 1 13 13 CONS 1000.0 5.0 0 0 FXYE\n" + "".join(
        f"{100 * t:.1f} {100 + i:.1f} 1.0\n" for i, t in enumerate(tth)))
    p = read_pattern(path, "xrd", wavelength=1.0)
    assert p.notes == ("BANK line announces 13 points; the file holds 12",
                       "radiation not stated; assuming xray (option radiation)")
    assert p.y.tolist() == [100.0 + i for i in range(12)]


# -------------------------------------------------------------------------------- describe
def test_describe_pdf_with_composition_and_missing_sources():
    p = _made(composition={"Au": 25.0, "S": 18.5}, wavelength=0.1,
              sources={"qmin": "header", "qmax": "option"}, notes=("one", "two"))
    assert p.describe() == [
        "made.gr: pdf from plain, 12 points, r = 1..6.5 Å",
        "  qmin = 0.5 (header)",
        "  qmax = 20.0 (option)",
        "  qdamp = 0.03 (default)",
        "  biso = 0.4 (default)",
        "  radiation = xray (default)",
        "  wavelength = 0.1 (default)",
        "  composition = Au25 S18.5 (default)",
        "  note: one",
        "  note: two",
    ]


def test_describe_xrd_without_composition_or_wavelength():
    p = _made("xrd", producer="pyfai", sources={"qdamp": "data", "biso": "option",
                                                 "radiation": "header"})
    assert p.describe() == [
        "made.gr: xrd from pyfai, 12 points, q = 1..6.5 Å^-1",
        "  qmin = 0.5 (default)",
        "  qmax = 20.0 (default)",
        "  qdamp = 0.03 (data)",
        "  biso = 0.4 (option)",
        "  radiation = xray (header)",
    ]


# ----------------------------------------------------------------------------- check_covers
def test_covers_within_one_step():
    p = _made()  # x = 1.0 .. 6.5, step 0.5
    check_covers(p, 0.5, 7.0)
    check_covers(p, 0.5 - 0.5e-9, 7.0 + 0.5e-9)  # inside the 1e-9 slack


def test_not_covered_just_beyond_the_slack_messages():
    p = _made()
    with pytest.raises(DataFormatError) as err:
        check_covers(p, 0.5 - 2e-9, 6.5)
    assert _message(err, Path("made.gr")) == (
        "r range 1..6.5 Å does not cover the model grid 0.5..6.5 Å (no zero padding; measure or "
        "crop to match)")
    with pytest.raises(DataFormatError) as err:
        check_covers(_made("xrd"), 1.0, 7.0 + 2e-9, what="the Q grid")
    assert _message(err, Path("made.gr")) == (
        "q range 1..6.5 Å^-1 does not cover the Q grid 1..7 Å^-1 (no zero padding; measure or "
        "crop to match)")


def test_covers_refuses_a_gap_larger_than_one_step_plus_slack():
    p = _made()
    with pytest.raises(DataFormatError):
        check_covers(p, 0.0, 6.5)  # 1.0 > 0 + 0.5 (also with a slack of 1.000000001)
    with pytest.raises(DataFormatError):
        check_covers(p, 1.0, 7.5)


def test_covers_at_exactly_one_step_plus_slack_passes():
    p = _made()
    lo = float(np.nextafter(0.5 - 1e-9, 1.0))
    assert lo + 0.5 + 1e-9 == 1.0  # the edge value itself (xmin == grid_min + step + 1e-9)
    check_covers(p, lo, 6.5)
    hi = 7.0 + 1e-9
    assert hi - 0.5 - 1e-9 == 6.5
    check_covers(p, 1.0, hi)


def test_covers_with_one_and_two_points():
    one = _made(n=1)  # x = [1.0]: no step
    check_covers(one, 1.0, 1.0)
    with pytest.raises(DataFormatError):
        check_covers(one, 0.6, 1.4)
    two = _made(n=2)  # x = [1.0, 1.5]: step 0.5
    check_covers(two, 0.6, 1.9)


# ----------------------------------------------------------------------------- check_values
def test_check_values_messages():
    x = np.array([-0.5, 0.5, 1.0])
    with pytest.raises(DataFormatError) as err:
        check_values("f.gr", "pdf", x, np.ones(3))
    assert str(err.value) == ("f.gr: r starts at -0.5: a negative r is not measured (the r "
                              "column must be >= 0)")
    with pytest.raises(DataFormatError) as err:
        check_values("f.xy", "xrd", np.array([]), np.array([]))
    assert str(err.value) == "f.xy: I(q) is zero everywhere (no signal)"
    with pytest.raises(DataFormatError) as err:
        check_values("f.gr", "pdf", np.arange(3.0), np.array([0.0, -2e6, 1.0]))
    assert str(err.value) == ("f.gr: |G(r)| reaches 2e+06, above the plausible 1e+06 (a broken "
                              "or mis-scaled file)")
    with pytest.raises(DataFormatError) as err:
        check_values("f.xy", "saxs", np.arange(3.0), np.array([0.0, np.nan, 1.0]))
    assert str(err.value) == "f.xy: I(q) holds NaN or inf"
    check_values("f.xy", "saxs", np.arange(3.0), np.array([0.0, 1e12, 1.0]))


# ---------------------------------------------------------------------------- check_pattern
def test_check_pattern_returns_a_valid_pattern():
    p = _made(n=10, wavelength=0.2, qmin=0.0, qdamp=1.0, biso=10.0, qmax=100.0)
    assert check_pattern(p) is p
    p = _made(n=10, qdamp=0.0, biso=0.0)
    assert check_pattern(p) is p


@pytest.mark.parametrize(("over", "message"), [
    ({"n": 9}, "pattern must be two 1-d arrays of the same length >= 10"),
    ({"y": np.ones(11)}, "pattern must be two 1-d arrays of the same length >= 10"),
    ({"x": np.ones((12, 1)), "y": np.ones((12, 1))},
     "pattern must be two 1-d arrays of the same length >= 10"),
    ({"y": np.zeros(12)}, "G(r) is zero everywhere (no signal)"),
    ({"x": np.r_[1.0, 1.0, np.arange(2.0, 12.0)]}, "x is not strictly increasing"),
    ({"x": np.r_[2.0, 1.0, np.arange(3.0, 13.0)]}, "x is not strictly increasing"),
    ({"qmin": -0.1}, "qmin (given) = -0.1 is outside [0, 100] Å^-1"),
    ({"qmin": 101.0, "sources": {"qmin": "header"}},
     "qmin (header) = 101 is outside [0, 100] Å^-1"),
    ({"qmax": 0.0, "qmin": 0.0}, "qmax (given) = 0 is outside (0, 100] Å^-1"),
    ({"qmax": 100.5}, "qmax (given) = 100.5 is outside (0, 100] Å^-1"),
    ({"qdamp": -0.01}, "qdamp (given) = -0.01 is outside [0, 1] Å^-1"),
    ({"qdamp": 1.5}, "qdamp (given) = 1.5 is outside [0, 1] Å^-1"),
    ({"biso": 10.5}, "biso (given) = 10.5 is outside [0, 10] Å^2"),
    ({"biso": -1.0}, "biso (given) = -1 is outside [0, 10] Å^2"),
    ({"wavelength": 0.0}, "wavelength (given) = 0 is outside (0, 20] Å"),
    ({"wavelength": 21.0, "sources": {"wavelength": "option"}},
     "wavelength (option) = 21 is outside (0, 20] Å"),
    ({"qmin": 20.0}, "qmin 20 and qmax 20 must satisfy 0 <= qmin < qmax"),
    ({"qmin": 25.0}, "qmin 25 and qmax 20 must satisfy 0 <= qmin < qmax"),
])
def test_check_pattern_refusals(over, message):
    over = dict(over)  # the parameter is shared by repeated runs (mutmut runs the tests again)
    n = over.pop("n", 12)
    with pytest.raises(DataFormatError) as err:
        check_pattern(_made(n=n, **over))
    assert _message(err, Path("made.gr")) == message


def test_check_pattern_refuses_a_missing_instrument_value():
    with pytest.raises(DataFormatError) as err:
        check_pattern(_made(qdamp=None))
    assert _message(err, Path("made.gr")) == (
        "qdamp (given) must be a number in [0, 1] Å^-1, not None")


def test_check_pattern_checks_values_of_xrd_as_intensities():
    with pytest.raises(DataFormatError) as err:
        check_pattern(_made("xrd", y=np.full(12, 2e12)))
    assert _message(err, Path("made.gr")) == (
        "|I(q)| reaches 2e+12, above the plausible 1e+12 (a broken or mis-scaled file)")
    p = _made("xrd", y=np.full(12, 2e6))
    assert check_pattern(p) is p
