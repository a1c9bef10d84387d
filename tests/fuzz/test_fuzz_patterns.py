"""Generated `.gr` files through `read_pattern`: a valid pattern or one `InvdesignError`, never
another exception; the file is never written to (issue 22)."""

from __future__ import annotations

import hashlib
import math

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from invdesign.core.errors import InvdesignError
from invdesign.io.measured import read_pattern

FAST = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                report_multiple_bugs=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

NUMBER_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**6, 10**6).map(str),
    st.sampled_from(["1e999", "-1e999", "nan", "inf", "-0", "1e-320", "0x10", "", "abc", "1,5"]),
)
HEADER_KEYS = ["qmin", "qmax", "qdamp", "qsig", "qbroad", "wavelength", "rmin", "rmax", "rstep",
               "rpoly", "biso", "mode", "composition", "dataformat"]
HEADER_LINE = st.one_of(
    st.builds(lambda k, v, sep: f"{k}{sep}{v}", st.sampled_from(HEADER_KEYS), NUMBER_TEXT,
              st.sampled_from([" = ", "=", ": ", " "])),
    st.sampled_from(["[DEFAULT]", "[PDF]", "#### start data", "#S 1", "#L r G", "# comment",
                     "mode = xray", "mode = neutron", "mode = gamma", "composition = Pt",
                     "composition = Xx9", "composition = Pt1e30", "dataformat = QA",
                     "dataformat = Qnm", "##### PDFgui"]),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
    .map(lambda t: t.replace("\n", " ").replace("\r", " ")),
)
VALUE = st.one_of(st.floats(-1e3, 1e3), st.floats(allow_nan=True, allow_infinity=True),
                  st.sampled_from([0.0, 1e300, -1e300, 5e-324]))


PLAUSIBLE = st.sampled_from(["0.0", "0.04", "1.0", "25.0", "30.0", "0.1665", "0.4"])


@st.composite
def gr_files(draw) -> str:
    """Text of a `.gr`-like file: a random header (mostly plausible values), then rows of 1..5
    columns whose r column is mostly increasing, else decreasing, shuffled, repeated or random,
    with NaN/inf/huge values sprinkled in sometimes."""
    header = draw(st.lists(st.one_of(
        HEADER_LINE,
        st.builds(lambda k, v: f"{k} = {v}", st.sampled_from(HEADER_KEYS), PLAUSIBLE)),
        max_size=6))
    n = draw(st.one_of(st.integers(0, 12), *[st.integers(10, 60)] * 4))
    ncol = draw(st.sampled_from([1, 2, 2, 2, 2, 2, 3, 4, 5]))
    step = draw(st.sampled_from([0.01, 0.1, 0.1, 0.5, 0.0, -0.1]))
    start = draw(st.sampled_from([0.0, 0.0, 0.5, -1.0, 1e-3, 30.0]))
    x = start + step * np.arange(n)
    order = draw(st.sampled_from(["keep"] * 4 + ["reverse", "shuffle", "repeat", "random"]))
    if order == "reverse":
        x = x[::-1]
    elif order == "shuffle":
        x = np.array(draw(st.permutations(list(x)))) if n else x
    elif order == "repeat" and n > 2:
        x[n // 2] = x[n // 2 - 1]
    elif order == "random":
        x = np.array(draw(st.lists(VALUE, min_size=n, max_size=n)))
    with np.errstate(invalid="ignore", over="ignore"):
        columns = [x] + [np.sin(x + k) * draw(st.sampled_from([1.0, 1.0, 0.0, 1e-3, 1e6]))
                         for k in range(1, ncol)]
    table = np.stack(columns, axis=1) if n else np.zeros((0, ncol))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 3]))):  # sprinkle bad values
        if n:
            table[draw(st.integers(0, n - 1)), draw(st.integers(0, ncol - 1))] = draw(VALUE)
    sep = draw(st.sampled_from([" ", "\t", ", ", "  "]))
    rows = [sep.join(repr(float(v)) for v in row) for row in table]
    if rows and draw(st.integers(0, 3)) == 0:
        rows.insert(draw(st.integers(0, len(rows))), draw(st.sampled_from(
            ["abc", "1 2 3 4 5 6", "1", "# note", "", "nan nan", "1e999 1"])))
    return "\n".join(header + rows) + draw(st.sampled_from(["\n", "", "\n\n"]))


def _read_checked(path, valid_pattern, **options) -> None:
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        pattern = read_pattern(path, kind="pdf", **options)
    except InvdesignError as exc:
        event(f"refused: {type(exc).__name__}")
        assert str(exc) and "\n" not in str(exc), f"multi-line message: {exc!r}"
    else:
        event("accepted")
        valid_pattern(pattern)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before, "input file changed"


@FAST
@given(text=gr_files())
def test_generated_gr_file_is_valid_or_refused(tmp_path_factory, valid_pattern, text):
    path = tmp_path_factory.getbasetemp() / "fuzz.gr"
    path.write_text(text, encoding="utf-8")
    _read_checked(path, valid_pattern)


@FAST
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_are_valid_or_refused(tmp_path_factory, valid_pattern, data):
    path = tmp_path_factory.getbasetemp() / "fuzz-bytes.gr"
    path.write_bytes(data)
    _read_checked(path, valid_pattern)


def _good_gr(path) -> None:
    r = np.round(np.arange(0.0, 30.0, 0.05), 4)
    g = np.sin(3 * r) * np.exp(-r / 10)
    path.write_text("qmax = 25.0\n#### start data\n" + "".join(
        f"{float(a)!r} {float(b)!r}\n" for a, b in zip(r, g, strict=True)))


OPTION = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([0.0, -0.0, -1.0, 1e-9, 1e9, 1e308]))


@FAST
@given(qmin=OPTION, qmax=OPTION, qdamp=OPTION, biso=OPTION, wavelength=OPTION,
       composition=st.one_of(st.none(), st.sampled_from(["Pt", "CdSe", "Pt1e12", "Xx", "Pt-1",
                                                         "Pt0", "Au144 S60", "Pt nan"])))
def test_option_values_on_a_valid_file(tmp_path_factory, valid_pattern, qmin, qmax, qdamp, biso,
                                       wavelength, composition):
    path = tmp_path_factory.getbasetemp() / "good.gr"
    if not path.exists():
        _good_gr(path)
    _read_checked(path, valid_pattern, qmin=qmin, qmax=qmax, qdamp=qdamp, biso=biso,
                  wavelength=wavelength, composition=composition)


@st.composite
def corrupted_good_files(draw) -> str:
    """The valid base file with one corruption: a row swapped, repeated or dropped, a value
    replaced (NaN, inf, huge, negative r), G zeroed, the file cut short, or a header line added."""
    r = np.round(np.arange(0.0, 30.0, 0.05), 4)
    table = np.stack([r, np.sin(3 * r) * np.exp(-r / 10)], axis=1)
    header = ["qmax = 25.0"]
    i = draw(st.integers(0, len(r) - 2))
    kind = draw(st.sampled_from(["swap", "repeat", "drop", "value", "shift", "zero", "cut",
                                 "header", "none"]))
    if kind == "swap":
        table[[i, i + 1]] = table[[i + 1, i]]
    elif kind == "repeat":
        table = np.insert(table, i, table[i], axis=0)
    elif kind == "drop":
        table = np.delete(table, i, axis=0)
    elif kind == "value":
        table[i, draw(st.integers(0, 1))] = draw(VALUE)
    elif kind == "shift":
        table[:, 0] -= draw(st.floats(-40, 40))
    elif kind == "zero":
        table[:, 1] = 0.0
    elif kind == "cut":
        table = table[: draw(st.integers(0, 30))]
    elif kind == "header":
        header.append(draw(HEADER_LINE))
    rows = [f"{float(a)!r} {float(b)!r}" for a, b in table]
    return "\n".join([*header, "#### start data", *rows]) + "\n"


@FAST
@given(text=corrupted_good_files())
def test_corrupted_valid_file_is_valid_or_refused(tmp_path_factory, valid_pattern, text):
    path = tmp_path_factory.getbasetemp() / "corrupted.gr"
    path.write_text(text, encoding="utf-8")
    _read_checked(path, valid_pattern)


def test_good_file_reads_as_written(tmp_path):
    """The base of the option test is itself valid (so refusals there come from the options)."""
    path = tmp_path / "good.gr"
    _good_gr(path)
    p = read_pattern(path)
    assert p.x.size == 600 and p.x[0] == 0.0 and p.x[-1] == 29.95 and p.qmax == 25.0
    assert math.isclose(p.y[10], math.sin(1.5) * math.exp(-0.05))
