"""Values refused where they enter the readers (issue 22): header values and options finite and in
range, patterns no instrument gives (negative r, all zero, 1e300), composition amounts bounded.
Each refusal is one line naming the file (or the option) and the problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from invdesign.core.errors import DataFormatError, InvdesignError
from invdesign.io.composition import check_amounts, parse_composition
from invdesign.io.measured import check_values, read_pattern

R = np.round(np.arange(0.0, 30.0, 0.01), 4)  # Å


def _gr(path: Path, r: np.ndarray = R, g: np.ndarray | None = None, header: str = "") -> Path:
    g = np.sin(3 * r) * np.exp(-r / 8) if g is None else g
    path.write_text(header + "".join(f"{a:.4f} {b:.6g}\n" for a, b in zip(r, g, strict=True)))
    return path


def _refused(path: Path, **options) -> str:
    with pytest.raises(DataFormatError) as info:
        read_pattern(path, **options)
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{path}: ")
    return text[len(f"{path}: "):]


@pytest.mark.parametrize(("options", "message"), [
    ({"qdamp": float("nan")}, "qdamp (option) must be a finite number in [0, 1] Å^-1, not nan"),
    ({"biso": float("inf")}, "biso (option) must be a finite number in [0, 10] Å^2, not inf"),
    ({"biso": 50.0}, "biso (option) = 50 is outside [0, 10] Å^2"),
    ({"qmax": float("inf")}, "qmax (option) must be a finite number in (0, 100] Å^-1, not inf"),
    ({"qmax": 0.0}, "qmax (option) = 0 is outside (0, 100] Å^-1"),
    ({"qmin": -1.0}, "qmin (option) = -1 is outside [0, 100] Å^-1"),
    ({"qmin": 30.0, "qmax": 20.0}, "qmin 30 and qmax 20 must satisfy 0 <= qmin < qmax"),
    ({"wavelength": 0.0}, "wavelength (option) = 0 is outside (0, 20] Å"),
    ({"wavelength": float("nan")},
     "wavelength (option) must be a finite number in (0, 20] Å, not nan"),
])
def test_bad_instrument_options_are_refused(tmp_path, options, message) -> None:
    assert _refused(_gr(tmp_path / "x.gr"), **options) == message


def test_header_values_must_be_finite_and_in_range(tmp_path) -> None:
    inf = _gr(tmp_path / "inf.gr", header="qmax = 25\nqdamp = 1e999\n")
    assert _refused(inf) == "header value qdamp = inf is not a finite number"
    unused = _gr(tmp_path / "rpoly.gr", header="rpoly = -1e999\n")  # shown in reports: refused too
    assert _refused(unused) == "header value rpoly = -inf is not a finite number"
    big = _gr(tmp_path / "big.gr", header="qdamp = 3\n")
    assert _refused(big) == "qdamp (header) = 3 is outside [0, 1] Å^-1"
    # an option replaces a bad header value (options beat the header)
    assert read_pattern(big, qdamp=0.05).qdamp == 0.05


def test_patterns_no_instrument_gives_are_refused(tmp_path) -> None:
    zero = _gr(tmp_path / "zero.gr", g=np.zeros_like(R))
    assert _refused(zero) == "G(r) is zero everywhere (no signal)"
    huge = np.sin(R)
    huge[500] = 1e300
    assert (_refused(_gr(tmp_path / "huge.gr", g=huge))
            == "|G(r)| reaches 1e+300, above the plausible 1e+06 (a broken or mis-scaled file)")
    negative = _gr(tmp_path / "neg.gr", r=R - 1.0)
    assert (_refused(negative) == "r starts at -1: a negative r is not measured "
            "(the r column must be >= 0)")
    q = np.round(np.arange(-0.5, 8.0, 0.01), 4)
    xrd = _gr(tmp_path / "neg.xy", r=q, g=1 + q**2, header="# q_A^-1 I\n")
    assert _refused(xrd, kind="xrd") == ("q starts at -0.5: a negative q is not measured "
                                         "(the q column must be >= 0)")


def test_largest_plausible_values_are_accepted(tmp_path) -> None:
    g = np.sin(R) * 1e6  # the limit itself
    p = read_pattern(_gr(tmp_path / "edge.gr", g=g), qdamp=1.0, biso=10.0, qmin=0.0, qmax=100.0)
    assert (p.qdamp, p.biso, p.qmin, p.qmax) == (1.0, 10.0, 0.0, 100.0)
    assert float(np.abs(p.y).max()) == pytest.approx(1e6, rel=1e-5)


def test_check_values_refuses_non_finite_arrays() -> None:
    x = np.arange(10.0)
    with pytest.raises(DataFormatError, match=r"^p.gr: G\(r\) holds NaN or inf$"):
        check_values("p.gr", "pdf", x, np.full(10, np.nan))
    with pytest.raises(DataFormatError, match=r"^p.xy: I\(q\) is zero everywhere"):
        check_values("p.xy", "saxs", x, np.zeros(10))


@pytest.mark.parametrize(("text", "message"), [
    ("Pt1e9", "composition 'Pt1e9': amount of Pt is 1e+09; amounts must be finite, positive and "
              "at most 1e+06"),
    ("Pt1e400", "composition 'Pt1e400': amount of Pt is inf; amounts must be finite, positive "
                "and at most 1e+06"),
    ("Pt0", "composition 'Pt0' has no positive amounts"),
])
def test_composition_amounts_are_bounded(text, message) -> None:
    with pytest.raises(InvdesignError) as info:
        parse_composition(text)
    assert str(info.value) == message


def test_composition_dicts_are_checked_too(tmp_path) -> None:
    assert check_amounts({"Pt": 1e6, "Ni": "0.5"}, "x") == {"Pt": 1e6, "Ni": 0.5}
    for comp, message in [
        ({"Pt": float("nan")}, "composition c: amount of Pt is nan; amounts must be finite"),
        ({"Pt": -1}, "composition c: amount of Pt is -1; amounts must be finite"),
        ({"Pt": "many"}, "composition c: amount of Pt is not a number ('many')"),
        ({"Qq": 1}, "composition c: unknown element 'Qq'"),
    ]:
        with pytest.raises(InvdesignError) as info:
            check_amounts(comp, "c")
        assert str(info.value).startswith(message)
    path = _gr(tmp_path / "x.gr")
    with pytest.raises(InvdesignError, match="amount of Pt is inf"):
        read_pattern(path, composition={"Pt": float("inf")})
    header = _gr(tmp_path / "h.gr", header="composition = Pt1e400\n")
    assert _refused(header).startswith("header composition 'Pt1e400': amount of Pt is inf")
